"""Shared pytest set-up: make the top-level modules importable and keep TensorFlow quiet."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so tests can run MirroredStrategy with two replicas on one CPU. This must
# happen before TensorFlow initialises its devices, hence here.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


# The real MiniLM weights (tests/real_model.py) in the original checkpoint layout and as a TF Hub
# encoder, made once per test session for the test modules that use them.

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def minilm_checkpoint(tmp_path_factory):
    """{"bert_config.json", "vocab.txt", "bert_model.ckpt": path} of the converted MiniLM."""
    import convert_hf_checkpoint  # pylint: disable=import-outside-toplevel
    from real_model import real_model_dir  # pylint: disable=import-outside-toplevel
    root = tmp_path_factory.mktemp("minilm_bert")
    convert_hf_checkpoint.convert_hf_to_bert(str(root), hf_model_dir=real_model_dir())
    return {name: str(root / name) for name in ("bert_config.json", "vocab.txt",
                                                "bert_model.ckpt")}


@pytest.fixture(scope="session")
def minilm_encoder(minilm_checkpoint, tmp_path_factory):
    """The converted MiniLM exported as a TF Hub encoder (saved_models.export_encoder)."""
    import modeling  # pylint: disable=import-outside-toplevel
    import saved_models  # pylint: disable=import-outside-toplevel
    files = minilm_checkpoint
    export_dir = tmp_path_factory.mktemp("minilm_encoder") / "encoder"
    saved_models.export_encoder(str(export_dir),
                                modeling.BertConfig.from_json_file(files["bert_config.json"]),
                                files["bert_model.ckpt"], files["vocab.txt"], do_lower_case=True)
    return export_dir
