"""Runs a script's main() in this process, with flags parsed as its command line would be, and
reads the results files scripts write."""
import contextlib
import os

import pytest
from absl import flags
from absl.testing import flagsaver

import common_flags
import training


@contextlib.contextmanager
def _parsed(module, flag_values):
    """The argv absl passes module.main() after parsing `--name=value` for each flag; flags are
    restored afterwards."""
    argv = [os.path.basename(module.__file__)] + [f"--{k}={v}" for k, v in flag_values.items()]
    with flagsaver.flagsaver():
        flags.FLAGS.unparse_flags()
        flags.FLAGS(argv)
        yield argv[:1]


def run_script_main(module, **flag_values):
    """module.main() with the script's own flag defaults, as common_flags.run_main calls it;
    exceptions propagate."""
    with _parsed(module, flag_values) as argv:
        common_flags.apply_script_flags(module.__name__)
        return module.main(argv)


def built_model(module, **flag_values):
    """The model module.main() builds for training.Runner with these flags; main() stops there
    (a cheap check of what a script passes its model)."""
    class Built(Exception):
        pass

    def build_and_stop(self, strategy, build_fn, output_dir):
        raise Built(build_fn())

    with pytest.MonkeyPatch.context() as patch, pytest.raises(Built) as stopped:
        patch.setattr(training.Runner, "__init__", build_and_stop)
        run_script_main(module, **flag_values)
    return stopped.value.args[0]


def run_script_command(module, **flag_values):
    """The exit status of module.main() run as the command line runs it (common_flags.run_main):
    an expected error is printed as one `ERROR:` line on stderr and gives 1."""
    with _parsed(module, flag_values) as argv:
        return common_flags.run_main(module.main, argv)


def error_line(stdout, stderr):
    """The one line of `stderr` that starts with "ERROR:", asserting that there is exactly one and
    that no traceback was printed."""
    assert "Traceback" not in stdout and "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def read_results(path):
    """{key: float} from a results file of "key = value" lines (eval_results.txt and the like)."""
    with open(path) as f:
        return {k: float(v) for k, v in (line.rstrip("\n").split(" = ") for line in f)}
