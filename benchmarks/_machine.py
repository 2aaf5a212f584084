"""What the benchmarks read about the machine while they run.

Every benchmark prints `print_cpu()`'s line first: the machines it runs on differ (AVX-512 with
native bfloat16, or only AVX2), and a figure means little without the instruction sets behind it.
"""
import os

# A run is "quiet" when other processes used at most this share of the CPUs during it.
QUIET = 0.10


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


def print_cpu():
    """Prints the line every benchmark's output starts with: `cpu: <cpu_description()>`."""
    print(f"cpu: {cpu_description()}", flush=True)


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


def process_cpu_seconds():
    """User plus system CPU time of this process so far; differences time a run's own CPU use."""
    times = os.times()
    return times.user + times.system


def other_cpu_share(busy_before, busy_after, own_cpu_seconds, seconds):
    """The share (0 to 1) of all CPUs that other processes used during a run of `seconds` that
    itself took `own_cpu_seconds`, from busy_cpu_seconds() before and after; None if unknown."""
    if busy_before is None or busy_after is None:
        return None
    return max(0.0, (busy_after - busy_before - own_cpu_seconds) / (seconds * os.cpu_count()))


def busy_note(share):
    """The note a benchmark appends to a run's line: other processes' CPU share, flagged above
    QUIET (on a shared machine such a run is disturbed); empty where the share is unknown."""
    if share is None:
        return ""
    return (f"  other processes' CPU {share:.0%}"
            + ("  (busy machine: treat with care)" if share > QUIET else ""))
