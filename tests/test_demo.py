"""The README's demo command, shortened: the pretraining scripts end to end, then run again."""
import os
import subprocess
import sys

import tensorflow as tf

import checkpoints
import soft_labels
from script_main import read_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_demo(out, steps):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "demo.py"), f"--output_dir={out}",
         f"--num_train_steps={steps}", "--fine_tune_epochs=1", "--squad_epochs=1"],
        capture_output=True, text=True, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=900)


def test_demo_runs_end_to_end_and_continues_where_it_stopped(tmp_path):
    out = tmp_path / "demo"
    first = run_demo(out, 300)
    # 300 steps are too few to beat the most-frequent-token baseline (exit status 0 says the
    # model did; the full demo's 2000 steps do, by far), but the masked-LM loss must be well below
    # that of a uniform guess, ln(vocab size) = 6.9: the pipeline learns.
    assert first.returncode in (0, 1), first.stdout[-3000:] + first.stderr[-4000:]
    assert "held-out masked-LM accuracy" in first.stdout and "->" in first.stdout
    # The three fine-tuning runs, one of them from the real MiniLM weights converted to the
    # original layout; MiniLM must beat random weights even after one epoch.
    accuracies = {}
    for name in ("classifier", "classifier_from_scratch", "classifier_from_minilm"):
        accuracies[name] = read_results(out / name / "eval_results.txt")["eval_accuracy"]
        assert "fine-tuned from " in first.stdout and f"{accuracies[name]:.3f}" in first.stdout
    assert accuracies["classifier_from_minilm"] > accuracies["classifier_from_scratch"] + 0.2
    # Question answering from MiniLM and from random weights: the official F1 in each. One epoch
    # (24 steps) is too few to tell them apart reliably; the full demo's six are plenty (MiniLM
    # F1 61, 77 and 81 in three runs, random weights 12-16), and its exit status says so.
    f1 = {}
    for name in ("squad_from_minilm", "squad_from_scratch"):
        f1[name] = read_results(out / name / "eval_results.txt")["f1"]
        assert (out / name / "null_odds.json").exists()
    assert "dev F1 (official SQuAD 2.0 metric): %.1f" % f1["squad_from_minilm"] in first.stdout
    # Distillation: MiniLM fine-tuned on 500 labels labels them and 4,000 corpus sentences, and
    # teaches BERT-Tiny. After 300 pretraining steps and 62 fine-tuning steps BERT-Tiny learns
    # nothing yet, from gold or soft labels (like step 6b here: dev accuracy 0.5); that the
    # student comes to agree with its teacher is tests/test_distillation.py's to show, and the
    # full demo's (98.5% agreement, 49.2% before).
    distillation = out / "distillation"
    soft = soft_labels.read(str(distillation / "teacher" / "soft_labels.jsonl"))
    assert len(soft.examples) == 4500 and soft.labels == ["0", "1"]
    assert soft.examples[499].label is not None and soft.examples[500].label is None
    teacher = read_results(distillation / "teacher" / "eval_results.txt")
    assert teacher["eval_accuracy"] > 0.9  # MiniLM learns the task from 500 labels in 31 steps
    agreement = read_results(distillation / "student" / "distillation_results.txt")
    assert agreement["num_examples"] == 4500 and "teacher_agreement_at_start" in agreement
    student, gold = (read_results(distillation / name / "eval_results.txt") for name in
                     ("student", "student_gold_labels"))
    assert student["global_step"] == gold["global_step"] == 62  # the same budget
    assert "BERT-Tiny distilled from it %.3f" % student["eval_accuracy"] in first.stdout
    names = dict(checkpoints.list_variables(str(out / "minilm" / "bert_model.ckpt")))
    assert names["bert/encoder/layer_5/attention/self/query/kernel"] == [384, 384]
    heldout = read_results(out / "heldout_eval" / "eval_results.txt")
    assert heldout["masked_lm_loss"] < 5.5 and heldout["global_step"] == 300
    for name in ("vocab.txt", "bert_config.json", "data/train.tfrecord", "data/heldout.tfrecord",
                 "pretraining/eval_results.txt", "heldout_eval/eval_results.txt"):
        assert (out / name).exists(), name
    latest = tf.train.latest_checkpoint(str(out / "pretraining"))
    assert checkpoints.step_of(latest) == 300
    names = dict(checkpoints.list_variables(latest))
    assert "bert/encoder/layer_1/output/LayerNorm/gamma" in names
    assert "cls/predictions/output_bias/adam_m" in names

    # Run again with more steps: data steps are skipped, pretraining resumes at step 300.
    second = run_demo(out, 400)
    assert second.returncode in (0, 1), second.stdout[-3000:] + second.stderr[-4000:]
    # vocab, two record files, MiniLM, the teacher's soft labels
    assert second.stdout.count("(done before") == 5
    assert "Resuming from" in second.stderr and "model.ckpt-300" in second.stderr
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(out / "pretraining"))) == 400
