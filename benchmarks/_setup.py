"""Imported first by every benchmark script, for these effects only: TensorFlow's C++ INFO lines
off, transformers offline (nothing is downloaded), and the repository's modules, the benchmarks'
helpers (`_machine`, `_side_by_side`, ...) and tests/' fixtures importable. A variable already set
in the environment is left as it is."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for _path in (REPO, HERE, os.path.join(REPO, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
