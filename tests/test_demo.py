"""The README's demo command, shortened: the pretraining scripts end to end, then run again."""
import os
import queue
import subprocess
import sys
import threading

import pytest
import tensorflow as tf

import checkpoints
import soft_labels
from script_main import read_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The demo is stopped only when it goes silent for this long: a hang, not a slow machine. Every
# script it runs logs at least once per training loop (at most 50 steps; a MiniLM loop takes well
# under a minute on two idle cores) and every step starts and ends with a line, so even a machine
# several times slower than that stays far inside the limit, however long the whole run takes.
SILENCE_LIMIT_SECONDS = 600


def run_demo(out, steps, *more_flags):
    """Runs the demo with `steps` pretraining steps and one epoch of each fine-tuning; returns
    (exit status, its output and its scripts' logs as one text)."""
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "demo.py"), f"--output_dir={out}",
         f"--num_train_steps={steps}", "--fine_tune_epochs=1", "--squad_epochs=1", *more_flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return watch(process, SILENCE_LIMIT_SECONDS)


def watch(process, silence_limit):
    """(exit status, output) of `process`, whose stdout is a text pipe; kills it and fails the
    test when no line comes for `silence_limit` seconds."""
    lines = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    output = []
    while True:
        try:
            line = lines.get(timeout=silence_limit)
        except queue.Empty:
            process.kill()
            process.wait()
            pytest.fail(f"no output for {silence_limit} s; the last lines:\n"
                        + "".join(output[-30:]))
        if line is None:
            return process.wait(), "".join(output)
        output.append(line)


def test_watch_stops_a_silent_process():
    quiet = subprocess.Popen([sys.executable, "-c", "print('started', flush=True); "
                              "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    with pytest.raises(pytest.fail.Exception, match="no output for 2 s"):
        watch(quiet, 2)
    assert quiet.returncode is not None  # killed, not left running
    talking = subprocess.Popen([sys.executable, "-c", "import time\nfor i in range(4):\n"
                                "    print(i, flush=True); time.sleep(1)"],
                               stdout=subprocess.PIPE, text=True)
    assert watch(talking, 2) == (0, "0\n1\n2\n3\n")  # 4 s in all, never 2 s silent


def test_demo_runs_end_to_end_and_continues_where_it_stopped(tmp_path):
    out = tmp_path / "demo"
    status, first = run_demo(out, 300)
    # 300 steps are too few for the checks to hold reliably (next-sentence accuracy is at its
    # baseline; exit status 0 says all held; the demo's 2,000 steps pass them by far), but the
    # masked-LM loss must be well below that of a uniform guess, ln(vocab size) = 6.9: the
    # pipeline learns.
    assert status in (0, 1), first[-6000:]
    assert "held-out masked-LM accuracy" in first and "->" in first
    assert "Checks (exit status 0 when all hold):" in first
    assert ("  yes  " in first or "  NO   " in first) and "next-sentence accuracy" in first
    # The three fine-tuning runs, one of them from the real MiniLM weights converted to the
    # original layout; MiniLM must beat random weights even after one epoch.
    accuracies = {}
    for name in ("classifier", "classifier_from_scratch", "classifier_from_minilm"):
        accuracies[name] = read_results(out / name / "eval_results.txt")["eval_accuracy"]
        assert "fine-tuned from " in first and f"{accuracies[name]:.3f}" in first
    assert accuracies["classifier_from_minilm"] > accuracies["classifier_from_scratch"] + 0.2
    # Question answering from MiniLM and from random weights: the official F1 in each. One epoch
    # is too few to tell them apart reliably; the demo's six are plenty (README: the figures),
    # and its exit status says so.
    f1 = {}
    for name in ("squad_from_minilm", "squad_from_scratch"):
        f1[name] = read_results(out / name / "eval_results.txt")["f1"]
        assert (out / name / "null_odds.json").exists()
    assert "dev F1 (official SQuAD 2.0 metric): %.1f" % f1["squad_from_minilm"] in first
    check_distillation(out, first)
    # Named entities from MiniLM and from random weights (run_ner.py's test of real weights: 400
    # training sentences, one epoch of 25 steps, the same budget for both; dev people and towns
    # partly unseen in training): the entity F1 of each, and MiniLM far ahead (dev F1 0.952 against
    # 0.646 in the README's run, 0.985 against 0.643 in development runs of run_ner.py).
    ner = {name: read_results(out / name / "eval_results.txt")
           for name in ("ner_from_minilm", "ner_from_scratch")}
    assert ner["ner_from_minilm"]["global_step"] == ner["ner_from_scratch"]["global_step"] == 25
    ner = {name: results["eval_f1"] for name, results in ner.items()}
    assert ("dev entity F1 (exact span and type, as conlleval): %.3f" % ner["ner_from_minilm"]
            in first)
    assert ner["ner_from_minilm"] > 0.9 and ner["ner_from_minilm"] > ner["ner_from_scratch"] + 0.2
    assert (out / "ner_from_minilm" / "test_predictions.txt").exists()
    # The exported classifier, loaded as a server would load it, on the raw test sentences: the
    # probabilities of run_classifier.py's test_results.tsv (the check is in the demo's list).
    assert (out / "classifier_saved_model" / "saved_model.pb").exists()
    assert "  yes  exported classifier on raw text gives run_classifier.py's test" in first
    # The sweep of step 12: four trials, one of them the best, whose checkpoint is in best/.
    with open(out / "sweep" / "sweep_results.tsv", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    assert sorted((int(row[1]), float(row[2])) for row in rows) == [
        (16, 1e-4), (16, 3e-4), (32, 1e-4), (32, 3e-4)], rows
    assert [row[3] for row in rows].count("yes") == 1
    assert (out / "sweep" / "best" / "checkpoint").exists()
    assert (out / "sweep" / "sweep_results.png").exists() and "sweep: 4 trials" in first
    # Every training run, the sweep's trials included, got the demo's --seed.
    training = [line for line in first.splitlines() if line.startswith("    $ ") and any(
        name in line for name in ("run_pretraining.py", "run_classifier.py", "run_squad.py",
                                  "run_ner.py"))]
    assert len(training) >= 12 and all("--seed=12345" in line for line in training), training
    check_pretraining(out, 300)

    # Run again with more steps, up to the pretraining checks: the data steps are skipped,
    # pretraining resumes at step 300, and the held-out evaluation is of step 400.
    status, second = run_demo(out, 400, "--stop_after=5")
    assert status in (0, 1), second[-6000:]
    assert second.count("(done before") == 3  # vocab, two record files
    assert "Resuming from" in second and "model.ckpt-300" in second
    assert "[6-12] not run (--stop_after=5)" in second and "[6a]" not in second
    checks = second[second.index("Checks (exit status 0 when all hold):"):]
    assert "masked-LM accuracy" in checks and "classification" not in checks
    check_pretraining(out, 400)


def check_distillation(out, output):
    """Distillation: MiniLM fine-tuned on 500 labels labels them and 4,000 corpus sentences (in
    the run that trains it), and teaches BERT-Tiny. After only 300 pretraining steps BERT-Tiny
    may learn little, from gold or soft labels; that the student comes to agree with its teacher
    is tests/test_distillation.py's to show, and the demo's (README: the figures)."""
    distillation = out / "distillation"
    soft = soft_labels.read(str(distillation / "teacher" / "soft_labels.jsonl"))
    assert len(soft.examples) == 4500 and soft.labels == ["0", "1"]
    assert soft.examples[499].label is not None and soft.examples[500].label is None
    teacher = read_results(distillation / "teacher" / "eval_results.txt")
    # MiniLM learns the task from 500 labels in the default run's 93 steps (whatever
    # --fine_tune_epochs says; after 31 steps its accuracy was 0.88 in one run).
    assert teacher["eval_accuracy"] > 0.9
    assert teacher["global_step"] == 93
    agreement = read_results(distillation / "student" / "distillation_results.txt")
    assert agreement["num_examples"] == 4500 and "teacher_agreement_at_start" in agreement
    student, gold = (read_results(distillation / name / "eval_results.txt") for name in
                     ("student", "student_gold_labels"))
    # The same budget, the default run's whatever --fine_tune_epochs says: 8 epochs of 500.
    assert student["global_step"] == gold["global_step"] == 125
    assert "BERT-Tiny distilled from it %.3f" % student["eval_accuracy"] in output


def check_pretraining(out, steps):
    """The pretraining outputs and checkpoint (original variable names) after `steps` steps."""
    names = dict(checkpoints.list_variables(str(out / "minilm" / "bert_model.ckpt")))
    assert names["bert/encoder/layer_5/attention/self/query/kernel"] == [384, 384]
    heldout = read_results(out / "heldout_eval" / "eval_results.txt")
    assert heldout["masked_lm_loss"] < 5.5 and heldout["global_step"] == steps
    for name in ("vocab.txt", "bert_config.json", "data/train.tfrecord", "data/heldout.tfrecord",
                 "pretraining/eval_results.txt", "heldout_eval/eval_results.txt"):
        assert (out / name).exists(), name
    latest = tf.train.latest_checkpoint(str(out / "pretraining"))
    assert checkpoints.step_of(latest) == steps
    names = dict(checkpoints.list_variables(latest))
    assert "bert/encoder/layer_1/output/LayerNorm/gamma" in names
    assert "cls/predictions/output_bias/adam_m" in names
