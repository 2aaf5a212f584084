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
