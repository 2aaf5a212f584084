"""What the inference benchmarks share: real English sentences and the MiniLM weights in the
original checkpoint layout (the worker processes are benchmarks/_side_by_side.py's)."""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def build_sentences(count):
    """`count` real English sentences (6 to 60 words), spread evenly over the corpus that
    benchmarks/tokenization_speed.py's build_corpus() collects (pydoc help topics and
    standard-library docstrings; no download, deterministic for a given Python version)."""
    from tokenization_speed import build_corpus  # pylint: disable=import-outside-toplevel

    text = " ".join(build_corpus())
    seen, sentences = set(), []
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        sentence = " ".join(sentence.split())
        if 6 <= len(sentence.split()) <= 60 and "|||" not in sentence and sentence not in seen:
            seen.add(sentence)
            sentences.append(sentence)
    if len(sentences) < count:
        raise RuntimeError(f"the corpus has only {len(sentences)} sentences; asked for {count}")
    step = len(sentences) / count
    return [sentences[int(i * step)] for i in range(count)]


def convert_model(work_dir):
    """The MiniLM weights (tests/real_model.py) in the original checkpoint layout, via
    convert_hf_checkpoint.py, in <work_dir>/minilm_bert (made once)."""
    from real_model import real_model_dir  # pylint: disable=import-outside-toplevel
    out = os.path.join(work_dir, "minilm_bert")
    if not os.path.exists(os.path.join(out, "bert_model.ckpt.index")):
        subprocess.run([sys.executable, os.path.join(REPO, "convert_hf_checkpoint.py"),
                        f"--hf_model_dir={real_model_dir()}", f"--output_dir={out}"],
                       check=True, capture_output=True)
    return out
