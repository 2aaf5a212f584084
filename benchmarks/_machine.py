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
