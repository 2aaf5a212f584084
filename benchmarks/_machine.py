"""What the benchmarks read about the machine while they run."""
import os


def busy_cpu_seconds():
    """CPU time all processes have used (from /proc/stat), or None where unavailable.

    The difference over a run, minus the benchmark's own CPU time, is what other processes took:
    the benchmarks flag runs where that was large.
    """
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_description():
    """CPU model, count and the instruction-set flags that decide oneDNN's and XLA's kernels."""
    model, wanted = "unknown CPU", ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni",
                                    "amx_bf16", "amx_tile")
    found = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    found = set(value.split())
                    break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} CPUs; flags: "
            + (" ".join(flag for flag in wanted if flag in found) or "none of interest"))
