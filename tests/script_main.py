"""Runs a script's main() in this process, with flags parsed as its command line would be, and
reads the results files scripts write."""
import os

from absl import flags
from absl.testing import flagsaver


def run_script_main(module, **flag_values):
    """module.main() after parsing `--name=value` for each flag; flags are restored afterwards."""
    argv = [os.path.basename(module.__file__)] + [f"--{k}={v}" for k, v in flag_values.items()]
    with flagsaver.flagsaver():
        flags.FLAGS.unparse_flags()
        flags.FLAGS(argv)
        return module.main(argv[:1])


def read_results(path):
    """{key: float} from a results file of "key = value" lines (eval_results.txt and the like)."""
    with open(path) as f:
        return {k: float(v) for k, v in (line.rstrip("\n").split(" = ") for line in f)}
