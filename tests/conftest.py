"""Shared pytest set-up: make the top-level modules importable and keep TensorFlow quiet."""
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so tests can run MirroredStrategy with two replicas on one CPU. This must
# happen before TensorFlow initialises its devices, hence here.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


# The demo's test alone takes about half the suite's wall time. `python3 dev.py test` runs the suite
# on two pytest-xdist workers, one test file at a time each, in collection order
# (--no-loadscope-reorder): the demo's file goes first, so one worker runs it while the other
# works through the rest of the suite, instead of starting it last.
RUN_FIRST = ("test_demo.py",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in RUN_FIRST)  # stable: otherwise as collected


@pytest.fixture(autouse=True)
def _absl_logger_level_unset():
    """Each test starts with the "absl" logger at NOTSET, as in a fresh process. absl.app sets it from
    --verbosity (WARNING by default) when a test runs a command line in this process; left so, it hides
    INFO records from the next tests' caplog, and those tests passed or failed by suite order."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.NOTSET)
    yield
    absl_logger.setLevel(level)


# The real MiniLM weights (tests/real_model.py) in the original checkpoint layout and as a TF Hub
# encoder, made once per test session for the test modules that use them.


@pytest.fixture(scope="session")
def minilm_checkpoint(tmp_path_factory):
    """real_model.converted_minilm: {root, vocab_file, bert_config_file, init_checkpoint}."""
    from real_model import converted_minilm  # pylint: disable=import-outside-toplevel
    return converted_minilm(tmp_path_factory.mktemp("minilm_bert"))


@pytest.fixture(scope="session")
def minilm_encoder(minilm_checkpoint, tmp_path_factory):
    """The converted MiniLM exported as a TF Hub encoder (saved_models.export_encoder)."""
    import modeling  # pylint: disable=import-outside-toplevel
    import saved_models  # pylint: disable=import-outside-toplevel
    files = minilm_checkpoint
    export_dir = tmp_path_factory.mktemp("minilm_encoder") / "encoder"
    saved_models.export_encoder(str(export_dir),
                                modeling.BertConfig.from_json_file(files["bert_config_file"]),
                                files["init_checkpoint"], files["vocab_file"], do_lower_case=True)
    return export_dir
