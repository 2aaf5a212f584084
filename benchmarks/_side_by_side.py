"""Ours (TensorFlow) and a peer (torch) measured side by side, each in a worker process of its own.

Used by train_throughput.py and extract_features_speed.py. In one process the two frameworks'
thread pools (TensorFlow's Eigen and inter-op pools, torch's OpenMP team) would share the cores and
slow each other down, which would flatter whichever side is measured second. So each side runs in a
worker process, spawned and started once, that builds its benches and then serves the parent's
commands over a Pipe; while one worker runs, the other waits on its pipe. The parent times nothing
itself: a worker times its own run (wall clock and its own CPU), and the parent reads from
/proc/stat how much CPU all processes used meanwhile, so that runs disturbed by other processes are
flagged (_machine.busy_note).

`malloc="heap"` starts the workers with glibc keeping freed memory (MALLOC_MMAP_MAX_=0 and a 1 TiB
MALLOC_TRIM_THRESHOLD_): by default glibc mmaps and unmaps every large torch tensor, so each torch
step page-faults in fresh memory, at a cost that depends on the kernel's state (see
train_throughput.py's docstring).

In a worker, a `Side` (a subclass per benchmark) holds one bench per dtype and answers the parent's
commands: each command is the name of one of its methods, called with the command's arguments, and
the method's return value is the reply. "run" is timed; "close" ends the worker.
"""
import multiprocessing
import os
import sys
import time

from absl import flags

from _machine import busy_cpu_seconds, other_cpu_share, process_cpu_seconds

# Read by glibc when a worker process starts.
HEAP_MALLOC_ENV = dict(MALLOC_MMAP_MAX_="0", MALLOC_TRIM_THRESHOLD_=str(2**40))


class Side:
    """One framework's benches in its worker, one per dtype, and the commands they serve.

    A subclass sets `classes` ({"ours": class, "peer": class}; `class(dtype, *args)` builds a
    bench), implements `run(dtype, ...)` (one timed run; its return value is the run's result)
    and adds commands of its own as methods.
    """
    classes = {}

    def __init__(self, framework, dtypes):
        self.framework, self.dtypes = framework, dtypes
        self.benches = {}

    def build(self, *args):
        """Builds {dtype: bench} with `self.classes[framework](dtype, *args)`."""
        cls = self.classes[self.framework]
        self.benches = {dtype: cls(dtype, *args) for dtype in self.dtypes}

    def close(self):
        for bench in self.benches.values():
            if hasattr(bench, "close"):
                bench.close()


def describe(framework, peer_extras):
    """The framework's version and threads (ours: TensorFlow; peer: torch and transformers, then
    `peer_extras`, what else the peer's line should say). Imports only that framework."""
    if framework == "ours":
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        threads = tf.config.threading.get_intra_op_parallelism_threads()
        return f"tensorflow {tf.__version__} (intra-op threads: {threads or 'default'})"
    import torch  # pylint: disable=import-outside-toplevel
    import transformers  # pylint: disable=import-outside-toplevel
    return (f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers "
            f"{transformers.__version__}, {peer_extras}")


def _serve(side_class, framework, args, argv, conn):
    """A worker's life: parses the parent's flags, builds `side_class(framework, *args)` and
    answers (command, *arguments) until "close". "run" replies (result, seconds, own CPU
    seconds)."""
    flags.FLAGS(argv)
    side = side_class(framework, *args)
    while True:
        command, *arguments = conn.recv()
        if command == "run":
            start, cpu = time.perf_counter(), process_cpu_seconds()
            result = side.run(*arguments)
            conn.send((result, time.perf_counter() - start, process_cpu_seconds() - cpu))
        elif command == "close":
            side.close()
            conn.send(None)
            return
        else:
            conn.send(getattr(side, command)(*arguments))


class Workers:
    """One worker process per framework, each serving a `side_class(framework, *args)`.

    Use as a context manager: leaving it closes the workers (also after an error).
    """

    def __init__(self, side_class, frameworks, args=(), malloc="heap"):
        context = multiprocessing.get_context("spawn")
        self.processes, self.conns = {}, {}
        for framework in frameworks:
            parent_end, child_end = context.Pipe()
            self.conns[framework] = parent_end
            self.processes[framework] = context.Process(
                target=_serve, args=(side_class, framework, tuple(args), list(sys.argv), child_end),
                daemon=True)
            saved = dict(os.environ)
            if malloc == "heap":
                os.environ.update(HEAP_MALLOC_ENV)
            try:
                self.processes[framework].start()
            finally:
                os.environ.clear()
                os.environ.update(saved)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def call(self, frameworks, command, *args):
        """Sends the command to every worker in `frameworks` before waiting for any (so that
        they work at the same time); returns {framework: reply}."""
        for framework in frameworks:
            self.conns[framework].send((command, *args))
        return {framework: self.conns[framework].recv() for framework in frameworks}

    def run(self, framework, *args):
        """One timed run of `framework`'s Side.run(*args): (its result, seconds, the share of the
        CPUs other processes used meanwhile or None, see _machine.other_cpu_share)."""
        busy_before = busy_cpu_seconds()
        self.conns[framework].send(("run", *args))
        result, seconds, own_cpu = self.conns[framework].recv()
        share = other_cpu_share(busy_before, busy_cpu_seconds(), own_cpu, seconds)
        return result, seconds, share

    def close(self):
        for framework, process in self.processes.items():
            try:
                self.conns[framework].send(("close",))
                self.conns[framework].recv()
            except (OSError, EOFError):
                pass
            process.join(timeout=30)
