"""The README's demo command, shortened: pretrains, evaluates, reloads and fills in blanks."""
import os
import subprocess
import sys

import tensorflow as tf

import checkpoints

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "demo.py"), f"--output_dir={out}",
         "--num_train_steps=200"], capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    # Exit status 0 means held-out masked-LM accuracy beat the most-frequent-token baseline.
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "held-out masked-LM accuracy" in result.stdout and "->" in result.stdout
    for name in ("vocab.txt", "bert_config.json", "eval_results.txt", "checkpoint"):
        assert (out / name).exists(), name
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(out))) == 200
    names = dict(checkpoints.list_variables(str(out)))
    assert "bert/encoder/layer_1/output/LayerNorm/gamma" in names
    assert "cls/predictions/output_bias/adam_m" in names
