"""run_classifier.py end to end on a tiny model, for every GLUE task, XNLI and the generic task.

The data files are written here in each task's layout (a few rows each). main() runs in-process
with explicit flags, as the command line would (TensorFlow is imported once, and the XLA-compiled
model pieces are reused from run to run, so each run after the first takes a second or two). Every
run trains 2 steps; the test set repeats the dev set's texts, so test_results.tsv holds the
predictions on the dev examples and the numbers in eval_results.txt can be recomputed from it with
metrics.compute.
"""
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

import checkpoints
import classifier_data
import common_flags
import metrics
import modeling
import run_classifier
from script_main import built_model, read_results, run_script_main
from test_modeling import tiny_config

SEQ = 32
N_TRAIN, N_DEV = 8, 5  # 8 training examples in batches of 4: 2 steps per epoch
WORDS = ("the a cat dog bird fish horse sat ran flew swam slept on under near by mat tree river "
         "road hill red blue green big small old young quickly slowly and then is was").split()
NLI = ["contradiction", "entailment", "neutral"]
QNLI = ["entailment", "not_entailment"]
BINARY = ["0", "1"]
LABELS = {"cola": BINARY, "sst-2": BINARY, "mrpc": BINARY, "sts-b": None, "qqp": BINARY,
          "mnli": NLI, "qnli": QNLI, "rte": QNLI, "wnli": BINARY, "xnli": NLI, "ax": NLI}
METRICS = {"cola": ("mcc", "accuracy"), "sts-b": ("pearson", "spearman"),
           "mrpc": ("f1", "accuracy"), "qqp": ("f1", "accuracy")}
SUBMISSIONS = {"cola": ["CoLA.tsv"], "sst-2": ["SST-2.tsv"], "mrpc": ["MRPC.tsv"],
               "sts-b": ["STS-B.tsv"], "qqp": ["QQP.tsv"], "mnli": ["MNLI-m.tsv", "MNLI-mm.tsv"],
               "qnli": ["QNLI.tsv"], "rte": ["RTE.tsv"], "wnli": ["WNLI.tsv"],
               "xnli": ["XNLI-zh.tsv"], "ax": ["AX.tsv"]}


# -- Data in each task's layout -------------------------------------------------------------------

def sentence(rng, n=None):
    return " ".join(rng.choice(WORDS) for _ in range(n or rng.randint(3, 8))) + " ."


def rows(rng, n, labels, pair=True):
    """[(text_a, text_b, label)]: labels cycle so that a dev set has every class."""
    out = []
    for i in range(n):
        label = f"{rng.uniform(0, 5):.3f}" if labels is None else labels[i % len(labels)]
        out.append((sentence(rng), sentence(rng) if pair else None, label))
    return out


def write_tsv(path, header, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in ([header] if header else []) + lines:
            f.write("\t".join(str(cell) for cell in line) + "\n")
    return path


# Per task: (train/dev header, labelled row, test header, test row); None header = no header line.
STSB_META = ["main-captions", "MSRvid", "2012test", "0001", "none", "none"]
LAYOUTS = {
    "cola": (None, lambda i, a, b, y: [f"gj0{i % 9}", y, "" if y == "1" else "*", a],
             ["index", "sentence"], lambda i, a, b: [i, a]),
    "sst-2": (["sentence", "label"], lambda i, a, b, y: [a, y],
              ["index", "sentence"], lambda i, a, b: [i, a]),
    "mrpc": (["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
             lambda i, a, b, y: [y, 100 + i, 200 + i, a, b],
             ["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
             lambda i, a, b: [i, 100 + i, 200 + i, a, b]),
    "sts-b": (["index", "genre", "filename", "year", "old_index", "source1", "source2",
               "sentence1", "sentence2", "score"], lambda i, a, b, y: [i] + STSB_META + [a, b, y],
              ["index", "genre", "filename", "year", "old_index", "source1", "source2",
               "sentence1", "sentence2"], lambda i, a, b: [i] + STSB_META + [a, b]),
    "qqp": (["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
            lambda i, a, b, y: [i, 2 * i, 2 * i + 1, a, b, y],
            ["id", "question1", "question2"], lambda i, a, b: [1000 + i, a, b]),
    "mnli": (["index", "promptID", "genre", "sentence1", "sentence2", "label1", "gold_label"],
             lambda i, a, b, y: [i, 7 * i, "fiction", a, b, y, y],
             ["index", "promptID", "genre", "sentence1", "sentence2"],
             lambda i, a, b: [i, 7 * i, "fiction", a, b]),
    "qnli": (["index", "question", "sentence", "label"], lambda i, a, b, y: [i, a, b, y],
             ["index", "question", "sentence"], lambda i, a, b: [i, a, b]),
    "rte": (["index", "sentence1", "sentence2", "label"], lambda i, a, b, y: [i, a, b, y],
            ["index", "sentence1", "sentence2"], lambda i, a, b: [i, a, b]),
}
LAYOUTS["wnli"] = LAYOUTS["rte"]
SETS = {"mnli": (["dev_matched", "dev_mismatched"], ["test_matched", "test_mismatched"])}


def write_glue(task, directory, seed=0):
    """Writes train, dev and test files of a GLUE task; returns {split: [(a, b, label)]}.

    Each test file holds its dev file's texts, in order."""
    rng = random.Random(seed)
    header, row, test_header, test_row = LAYOUTS[task]
    pair = task not in ("cola", "sst-2")
    data = {"train": rows(rng, N_TRAIN, LABELS[task], pair)}
    write_tsv(os.path.join(directory, "train.tsv"), header,
              [row(i, a, b, y) for i, (a, b, y) in enumerate(data["train"])])
    dev_sets, test_sets = SETS.get(task, (["dev"], ["test"]))
    for dev, test in zip(dev_sets, test_sets):
        data[dev] = rows(rng, N_DEV, LABELS[task], pair)
        write_tsv(os.path.join(directory, f"{dev}.tsv"), header,
                  [row(i, a, b, y) for i, (a, b, y) in enumerate(data[dev])])
        write_tsv(os.path.join(directory, f"{test}.tsv"), test_header,
                  [test_row(i, a, b) for i, (a, b, _) in enumerate(data[dev])])
    return data


def write_xnli(directory, seed=0):
    """XNLI's layout: multinli/multinli.train.zh.tsv, xnli.dev.tsv and xnli.test.tsv (several
    languages, filtered to zh)."""
    rng = random.Random(seed)
    train = rows(rng, N_TRAIN, NLI)
    write_tsv(os.path.join(directory, "multinli", "multinli.train.zh.tsv"),
              ["premise", "hypo", "label"],
              [[a, b, "contradictory" if y == "contradiction" else y] for a, b, y in train])
    dev = rows(rng, N_DEV, NLI)
    header = ["language", "gold_label", "sentence1", "sentence2"]
    lines = []
    for a, b, y in dev:
        lines += [["de", y, a + " de", b], ["zh", y, a, b]]
    write_tsv(os.path.join(directory, "xnli.dev.tsv"), header, lines)
    write_tsv(os.path.join(directory, "xnli.test.tsv"), header, lines)
    return {"train": train, "dev": dev}


# -- Model files and running main() ---------------------------------------------------------------

@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """vocab.txt, bert_config.json and a released-style init checkpoint (bert/* and cls/*), in a
    folder named like a released cased model (its name contradicts --do_lower_case=True)."""
    root = tmp_path_factory.mktemp("model") / "cased_L-12_H-768_A-12"
    root.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "de"] + WORDS
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = tiny_config(vocab_size=len(vocab))
    config.to_json_file(str(root / "bert_config.json"))
    tf.random.set_seed(0)
    init = checkpoints.named_variables(modeling.BertPretrainer(config))
    checkpoints.save(str(root / "bert_model.ckpt"), init)
    return types.SimpleNamespace(
        root=root, vocab_file=str(root / "vocab.txt"), config=config,
        bert_config_file=str(root / "bert_config.json"),
        init_checkpoint=str(root / "bert_model.ckpt"),
        init={n: v.numpy() for n, v in init.items()}, outputs={})


def base_flags(env, data_dir, output_dir, **overrides):
    return dict(dict(data_dir=str(data_dir), output_dir=str(output_dir),
                     vocab_file=env.vocab_file, bert_config_file=env.bert_config_file,
                     init_checkpoint=env.init_checkpoint, max_seq_length=SEQ,
                     train_batch_size=4, eval_batch_size=8, predict_batch_size=8,
                     learning_rate=1e-3, num_train_epochs=1.0, iterations_per_loop=10),
                **overrides)


def run_main(**flag_values):
    """Runs run_classifier.main() with these flags, as the command line would."""
    return run_script_main(run_classifier, **flag_values)


def read_rows(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t") for line in f]


def assert_nothing_half_written(directory):
    leftovers = [name for name in os.listdir(directory) if ".tmp" in name]
    assert not leftovers, leftovers


def train_glue(env, task, tmp_path_factory):
    """Trains, evaluates and predicts `task` once per module; returns (data, output_dir)."""
    if task not in env.outputs:
        root = tmp_path_factory.mktemp(task)
        data = write_xnli(root / "data") if task == "xnli" else write_glue(task, root / "data")
        out = root / "output"
        # The original README's MRPC command line (with a tiny model's sizes), plus --do_predict.
        run_main(task_name=task.upper(), do_train="true", do_eval="true", do_predict="true",
                 data_dir=root / "data", vocab_file=env.vocab_file,
                 bert_config_file=env.bert_config_file, init_checkpoint=env.init_checkpoint,
                 max_seq_length=SEQ, train_batch_size=4, learning_rate=2e-5,
                 num_train_epochs=1.0, output_dir=out)
        env.outputs[task] = (data, out)
    return env.outputs[task]


# -- Every GLUE task, and XNLI --------------------------------------------------------------------

def expected_keys(task):
    names = METRICS.get(task, ("accuracy",))
    return {f"eval_{name}" for name in names} | {"eval_loss", "global_step", "loss"}


def check_predictions(task, out, dev, suffix, results):
    """test_results*.tsv (the dev texts) against eval_results: metrics, loss, submission."""
    labels = LABELS[task]
    probabilities = np.array(read_rows(out / f"test_results{suffix}.tsv"), dtype=np.float64)
    assert probabilities.shape == ((N_DEV, 1) if labels is None else (N_DEV, len(labels)))
    if labels is None:  # regression: the value; the loss is the mean squared error
        predictions, gold = probabilities[:, 0], np.array([float(y) for _, _, y in dev])
        loss = np.mean((predictions - gold) ** 2)
    else:
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        predictions = probabilities.argmax(axis=1)
        gold = np.array([labels.index(y) for _, _, y in dev])
        loss = -np.mean(np.log(probabilities[np.arange(N_DEV), gold]))
    names = METRICS.get(task, ("accuracy",))
    for name, value in metrics.compute(names, gold, predictions).items():
        assert results[f"eval_{name}"] == pytest.approx(value, abs=1e-6), name
    assert results["eval_loss"] == pytest.approx(loss, rel=1e-4)
    assert results["loss"] == pytest.approx(loss, rel=1e-4)  # one batch: the same mean
    return predictions


def check_submission(task, path, predictions, ids):
    lines = read_rows(path)
    assert lines[0] == ["index", "prediction"] and len(lines) == N_DEV + 1
    assert [line[0] for line in lines[1:]] == [str(i) for i in ids]
    if LABELS[task] is None:
        expected = [float(np.clip(p, 0.0, 5.0)) for p in predictions]
        np.testing.assert_allclose([float(line[1]) for line in lines[1:]], expected, rtol=1e-6)
    else:
        assert [line[1] for line in lines[1:]] == [LABELS[task][p] for p in predictions]


@pytest.mark.parametrize("task", ["cola", "sst-2", "mrpc", "sts-b", "qqp", "mnli", "qnli", "rte",
                                  "wnli", "xnli"])
def test_glue_task_trains_evaluates_and_predicts(env, task, tmp_path_factory):
    data, out = train_glue(env, task, tmp_path_factory)
    dev_sets, _ = SETS.get(task, (["dev"], ["test"]))
    for dev, suffix in zip(dev_sets, ["", "_mismatched"]):
        results = read_results(out / f"eval_results{suffix}.txt")
        assert set(results) == expected_keys(task)
        assert results["global_step"] == 2
        predictions = check_predictions(task, out, data[dev], suffix, results)
    for name, suffix in zip(SUBMISSIONS[task], ["", "_mismatched"]):
        ids = [1000 + i for i in range(N_DEV)] if task == "qqp" else list(range(N_DEV))
        predictions = np.array(read_rows(out / f"test_results{suffix}.tsv"), dtype=np.float64)
        predictions = predictions[:, 0] if LABELS[task] is None else predictions.argmax(1)
        check_submission(task, out / name, predictions, ids)
    # The encoder came from --init_checkpoint: two steps at 2e-5 barely move it; cls/* was not used.
    stored = checkpoints.read(str(out))
    for name in ("bert/encoder/layer_1/output/dense/kernel", "bert/embeddings/word_embeddings"):
        assert np.max(np.abs(stored[name] - env.init[name])) < 1e-3, name
    names = dict(checkpoints.list_variables(str(out)))
    num_labels = 1 if LABELS[task] is None else len(LABELS[task])
    assert names["output_weights"] == [num_labels, 32] and names["output_bias"] == [num_labels]
    assert "bert/pooler/dense/kernel/adam_m" in names and "global_step" in names
    assert not [n for n in names if n.startswith("cls/")]
    info = json.loads((out / "task.json").read_text())   # what export_saved_model.py reads
    assert info == dict(task=info["task"], kind="regression" if LABELS[task] is None
                        else "classification", labels=LABELS[task],
                        text_pairs=task not in ("cola", "sst-2"), multi_label_threshold=0.5,
                        label_separator=",", do_lower_case=True, max_seq_length=SEQ)
    assert sorted(n for n in os.listdir(out) if n.endswith(".tf_record")) == sorted(
        ["train.tf_record", "eval.tf_record", "predict.tf_record"]
        + (["eval_mismatched.tf_record", "predict_mismatched.tf_record"] if task == "mnli"
           else []))
    assert_nothing_half_written(out)


def test_case_flag_contradicting_the_checkpoint_name_is_a_warning(env, caplog):
    caplog.set_level(logging.WARNING)
    common_flags.warn_if_case_mismatch(
        types.SimpleNamespace(do_lower_case=True, init_checkpoint=env.init_checkpoint))
    assert "cased_L-12_H-768_A-12 is a cased model" in caplog.text
    caplog.clear()
    common_flags.warn_if_case_mismatch(
        types.SimpleNamespace(do_lower_case=False, init_checkpoint=env.init_checkpoint))
    assert not caplog.text


def test_ax_is_predicted_with_an_mnli_model(env, tmp_path_factory, tmp_path):
    _, mnli_out = train_glue(env, "mnli", tmp_path_factory)
    rng = random.Random(5)
    pairs = rows(rng, N_DEV, NLI)
    write_tsv(str(tmp_path / "diagnostic" / "diagnostic.tsv"), ["index", "sentence1", "sentence2"],
              [[i, a, b] for i, (a, b, _) in enumerate(pairs)])
    out = tmp_path / "ax"
    run_main(**base_flags(env, tmp_path, out, task_name="AX", do_predict="true",
                          init_checkpoint=mnli_out))
    probabilities = np.array(read_rows(out / "test_results.tsv"), dtype=np.float64)
    assert probabilities.shape == (N_DEV, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    check_submission("ax", out / "AX.tsv", probabilities.argmax(1), range(N_DEV))
    with pytest.raises(ValueError, match="has no training data"):
        run_main(**base_flags(env, tmp_path, tmp_path / "ax_train", task_name="ax",
                              do_train="true"))


# -- The generic task -----------------------------------------------------------------------------

def test_generic_tsv_keeps_the_label_order_it_was_trained_with(env, tmp_path):
    rng = random.Random(1)
    data = {split: rows(rng, n, ["pos", "neg", "mixed"]) for split, n in
            (("train", N_TRAIN), ("dev", N_DEV))}
    for split in ("train", "dev"):
        write_tsv(str(tmp_path / "data" / f"{split}.tsv"), ["id", "first", "second", "tag"],
                  [[i, a, b, y] for i, (a, b, y) in enumerate(data[split])])
    write_tsv(str(tmp_path / "data" / "test.tsv"), ["id", "first", "second"],
              [[f"t{i}", a, b] for i, (a, b, _) in enumerate(data["dev"])])
    out = tmp_path / "out"
    generic = dict(task_name="generic", text_a_column="first", text_b_column="second",
                   label_column="tag", index_column="id")
    run_main(**base_flags(env, tmp_path / "data", out, do_train="true", do_eval="true",
                          do_predict="true", labels="pos,neg,mixed", **generic))
    assert (out / "label_list.txt").read_text() == "pos\nneg\nmixed\n"  # not sorted: as given
    results = read_results(out / "eval_results.txt")
    assert set(results) == {"eval_accuracy", "eval_f1_macro", "eval_loss", "global_step", "loss"}
    probabilities = np.array(read_rows(out / "test_results.tsv"), dtype=np.float64)
    gold = [["pos", "neg", "mixed"].index(y) for _, _, y in data["dev"]]
    expected = metrics.compute(("accuracy", "f1_macro"), gold, probabilities.argmax(1),
                               num_classes=3)
    assert results["eval_f1_macro"] == pytest.approx(expected["f1_macro"])
    submission = read_rows(out / "test_predictions.tsv")
    assert submission[1:] == [[f"t{i}", ["pos", "neg", "mixed"][p]]
                              for i, p in enumerate(probabilities.argmax(1))]
    # Predicting again without --labels: the order comes from label_list.txt, not from sorting
    # the training file's labels.
    os.remove(out / "test_predictions.tsv")
    run_main(**base_flags(env, tmp_path / "data", out, do_predict="true", **generic))
    assert read_rows(out / "test_predictions.tsv") == submission


def test_generic_jsonl_multi_label(env, tmp_path):
    rng = random.Random(2)
    names = ["animal", "colour", "motion"]

    def record(i):
        tags = [name for j, name in enumerate(names) if (i >> j) & 1] or ["motion"]
        return {"text": sentence(rng), "tags": tags}

    train = [record(i) for i in range(N_TRAIN)]
    dev = [record(i + 3) for i in range(N_DEV)]
    for split, records in (("train", train), ("dev", dev), ("test", dev)):
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    run_main(**base_flags(env, tmp_path, out, task_name="generic", text_a_column="text",
                          label_column="tags", multi_label="true", do_train="true",
                          do_eval="true", do_predict="true"))
    assert (out / "label_list.txt").read_text() == "animal\ncolour\nmotion\n"
    assert json.loads((out / "task.json").read_text())["kind"] == "multi_label"
    results = read_results(out / "eval_results.txt")
    assert set(results) == {"eval_f1_micro", "eval_exact_match", "eval_loss", "global_step",
                            "loss"}
    probabilities = np.array(read_rows(out / "test_results.tsv"), dtype=np.float64)
    assert probabilities.shape == (N_DEV, 3) and np.all((probabilities > 0) & (probabilities < 1))
    gold = np.array([[int(name in r["tags"]) for name in names] for r in dev])
    predictions = (probabilities >= 0.5).astype(int)
    for name, value in metrics.compute(("f1_micro", "exact_match"), gold, predictions).items():
        assert results[f"eval_{name}"] == pytest.approx(value), name
    # Sigmoid cross entropy, averaged over the labels and the examples.
    xent = -(gold * np.log(probabilities) + (1 - gold) * np.log(1 - probabilities))
    assert results["eval_loss"] == pytest.approx(xent.mean(), rel=1e-4)
    submission = read_rows(out / "test_predictions.tsv")
    assert submission[1:] == [[str(i), ",".join(n for n, on in zip(names, row) if on)]
                              for i, row in enumerate(predictions)]


def identity(path):
    stat = os.stat(path)
    return stat.st_ino, stat.st_mtime_ns


# -- Resume and the best checkpoint ---------------------------------------------------------------

def test_resume_continues_from_the_checkpoint_and_reuses_the_caches(env, tmp_path_factory,
                                                                     tmp_path):
    data, trained = train_glue(env, "sst-2", tmp_path_factory)
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = checkpoints.read(str(out / "model.ckpt-2"))
    caches = {name: identity(out / name) for name in os.listdir(out) if name.endswith("_record")}
    data_dir = trained.parent / "data"
    run_main(**base_flags(env, data_dir, out, task_name="sst-2", do_train="true",
                          do_eval="true", num_train_epochs=2.0))
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(out))) == 4
    assert read_results(out / "eval_results.txt")["global_step"] == 4
    again = checkpoints.read(str(out / "model.ckpt-2"))
    for name, value in before.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)
    assert {name: identity(out / name) for name in caches} == caches
    # Changing --do_lower_case rebuilds them; training is already done.
    run_main(**base_flags(env, data_dir, out, task_name="sst-2", do_train="true",
                          num_train_epochs=2.0, do_lower_case="false"))
    assert identity(out / "train.tf_record") != caches["train.tf_record"]
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(out))) == 4


def test_a_seed_repeats_a_run(env, tmp_path_factory, tmp_path):
    """--seed: the same seed twice ends in the same weights, another seed in others (the head's
    new weights, dropout and the order of the examples all come from it)."""
    _, trained = train_glue(env, "sst-2", tmp_path_factory)
    final = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        out = tmp_path / name
        run_main(**base_flags(env, trained.parent / "data", out, task_name="sst-2",
                              do_train="true", num_train_epochs=2.0, seed=seed))
        final[name] = checkpoints.read(tf.train.latest_checkpoint(str(out)))
    assert final["a"].keys() == final["c"].keys()
    for name, value in final["a"].items():
        np.testing.assert_array_equal(final["b"][name], value, err_msg=name)
    differ = [name for name, value in final["a"].items()
              if not np.array_equal(final["c"][name], value)]
    assert "output_weights" in differ and "bert/pooler/dense/kernel" in differ, differ


def eval_events(directory):
    """{step: {tag: value}} from the TensorBoard event files in `directory`."""
    values = {}
    for path in tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents*")):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                values.setdefault(event.step, {})[value.tag] = float(
                    tf.make_ndarray(value.tensor))
    return values


def test_eval_every_n_steps_keeps_the_best_checkpoint(env, tmp_path):
    # STS-B: its main metric (Pearson) changes with every step, so the best is a real choice.
    data_dir = tmp_path / "data"
    write_glue("sts-b", data_dir, seed=7)
    out = tmp_path / "out"
    run_main(**base_flags(env, data_dir, out, task_name="sts-b", do_train="true",
                          num_train_epochs=2.0, eval_every_steps=1, learning_rate=5e-3,
                          save_checkpoints_steps=2))
    events = eval_events(out / "eval")
    assert sorted(events) == [1, 2, 3, 4]
    scores = [events[step]["eval_pearson"] for step in (1, 2, 3, 4)]
    assert len(set(scores)) == 4
    best_step = 1 + int(np.argmax(scores))
    best_dir = out / "best"
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(best_dir))) == best_step
    assert len(tf.io.gfile.glob(str(best_dir / "model.ckpt-*.index"))) == 1
    results = read_results(best_dir / "eval_results.txt")
    assert set(results) == expected_keys("sts-b") and results["global_step"] == best_step
    assert results["eval_pearson"] == pytest.approx(max(scores))
    assert json.loads((best_dir / "task.json").read_text())["kind"] == "regression"
    names = dict(checkpoints.list_variables(str(best_dir)))
    assert names["output_weights"] == [1, 32] and "global_step" in names
    assert not [n for n in names if n.endswith(("adam_m", "adam_v"))]
    # The kept weights give the recorded results (evaluated from --init_checkpoint=<out>/best).
    again = tmp_path / "again"
    run_main(**base_flags(env, data_dir, again, task_name="sts-b", do_eval="true",
                          init_checkpoint=best_dir))
    recomputed = read_results(again / "eval_results.txt")
    for key in ("eval_pearson", "eval_spearman", "eval_loss", "global_step"):
        assert recomputed[key] == pytest.approx(results[key], rel=1e-5), key


# -- Bad input: a clear message before anything is written ---------------------------------------

def write_sst2(directory, train=None, dev=None, test=True):
    rng = random.Random(6)
    header = ["sentence", "label"]
    write_tsv(str(directory / "train.tsv"), header,
              train if train is not None else [[sentence(rng), i % 2] for i in range(N_TRAIN)])
    write_tsv(str(directory / "dev.tsv"), header,
              dev if dev is not None else [[sentence(rng), i % 2] for i in range(N_DEV)])
    if test:
        write_tsv(str(directory / "test.tsv"), ["index", "sentence"],
                  [[i, sentence(rng)] for i in range(N_DEV)])


def run_failing(env, data_dir, out, error, match, **flag_values):
    all_modes = dict(do_train="true", do_eval="true", do_predict="true")
    with pytest.raises(error, match=match):
        run_main(**base_flags(env, data_dir, out, **dict(all_modes, **flag_values)))
    assert not os.path.exists(out) or os.listdir(out) == []


def test_unknown_label_in_dev_names_file_and_line(env, tmp_path):
    write_sst2(tmp_path, dev=[["a cat sat .", "1"], ["a dog ran .", "2"]])
    run_failing(env, tmp_path, tmp_path / "out", classifier_data.DataError,
                rf"{tmp_path / 'dev.tsv'}:3: unknown label '2'", task_name="sst-2")
    # The generic task's labels come from the training file.
    write_tsv(str(tmp_path / "dev.tsv"), ["sentence", "label"],
              [["a cat sat .", "1"], ["a dog ran .", "0"], ["the end .", "maybe"]])
    run_failing(env, tmp_path, tmp_path / "out", classifier_data.DataError,
                rf"{tmp_path / 'dev.tsv'}:4: unknown label 'maybe'", task_name="generic",
                text_a_column="sentence", label_column="label")


def test_missing_test_file_fails_before_training(env, tmp_path):
    write_sst2(tmp_path, test=False)
    run_failing(env, tmp_path, tmp_path / "out", FileNotFoundError,
                str(tmp_path / "test.tsv"), task_name="sst-2")


def test_empty_train_file_and_wrong_column_count_name_the_file(env, tmp_path):
    write_sst2(tmp_path, train=[])
    (tmp_path / "train.tsv").write_text("")
    run_failing(env, tmp_path, tmp_path / "out", classifier_data.DataError,
                rf"{tmp_path / 'train.tsv'}: empty file", task_name="sst-2")
    write_sst2(tmp_path, train=[["a cat sat .", "1"], ["a dog", "ran .", "0"]])
    run_failing(env, tmp_path, tmp_path / "out", classifier_data.DataError,
                rf"{tmp_path / 'train.tsv'}:3: 3 columns, expected 2", task_name="sst-2")


def test_flag_errors(env, tmp_path):
    write_sst2(tmp_path)
    run_failing(env, tmp_path, tmp_path / "o1", ValueError, "At least one of",
                task_name="sst-2", do_train="false", do_eval="false", do_predict="false")
    run_failing(env, tmp_path, tmp_path / "o2", ValueError, "only apply to --task_name=generic",
                task_name="sst-2", label_column="label")
    run_failing(env, tmp_path, tmp_path / "o3", ValueError, "unknown task 'nope'",
                task_name="nope")
    run_failing(env, tmp_path, tmp_path / "o4", ValueError, "only trained up to sequence length",
                task_name="sst-2", max_seq_length=128)
    run_failing(env, tmp_path, tmp_path / "o5", ValueError,
                r"8 training examples / --train_batch_size=32 x --num_train_epochs=1.0 is less "
                r"than one step", task_name="sst-2", train_batch_size=32)
    run_failing(env, tmp_path, tmp_path / "o6", ValueError, "needs --do_train",
                task_name="sst-2", do_train="false", eval_every_steps=10)
    run_failing(env, tmp_path, tmp_path / "o7", ValueError, "nothing to evaluate: no checkpoint",
                task_name="sst-2", do_train="false", init_checkpoint="")


def test_gradient_checkpointing_flag_reaches_the_model(env, tmp_path):
    # What the option does: tests/test_gradient_checkpointing.py.
    write_glue("sst-2", tmp_path / "data")
    for value in (False, True):
        model = built_model(run_classifier, **base_flags(
            env, tmp_path / "data", tmp_path / "out", task_name="sst-2", do_train="true",
            gradient_checkpointing=value))
        assert model.bert.gradient_checkpointing is value


def test_two_mirrored_replicas_evaluate_and_predict_every_example_in_order(env, tmp_path_factory,
                                                                             tmp_path):
    _, trained = train_glue(env, "sst-2", tmp_path_factory)
    out = tmp_path / "mirrored"
    shutil.copytree(trained, out, ignore=shutil.ignore_patterns("eval_results.txt",
                                                                "test_results.tsv"))
    # 5 examples in a batch of 8: one replica gets 3, the other 2.
    run_main(**base_flags(env, trained.parent / "data", out, task_name="sst-2", do_eval="true",
                          do_predict="true", distribution_strategy="mirrored"))
    expected = read_results(trained / "eval_results.txt")
    for key, value in read_results(out / "eval_results.txt").items():
        assert value == pytest.approx(expected[key], rel=1e-5), key
    np.testing.assert_allclose(np.array(read_rows(out / "test_results.tsv"), dtype=np.float64),
                               np.array(read_rows(trained / "test_results.tsv"), dtype=np.float64),
                               rtol=1e-5)


# -- The bundled demo task ------------------------------------------------------------------------

DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data",
                        "demo_classification")


def test_demo_task_is_up_to_date_and_loads_as_sst2_and_as_generic(tmp_path):
    script = os.path.join(os.path.dirname(DEMO_DIR), "make_demo_classification.py")
    subprocess.run([sys.executable, script, "--output_dir", str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("train.tsv", "dev.tsv", "test.tsv", "transfer.tsv"):
        with open(tmp_path / name, "rb") as new, open(os.path.join(DEMO_DIR, name), "rb") as old:
            assert new.read() == old.read(), name
    sst2 = classifier_data.get_task("sst-2")
    generic = classifier_data.get_task("generic", text_a_column="sentence", label_column="label")
    for task in (sst2, generic):
        train = task.train_examples(DEMO_DIR)
        dev, test = task.dev_sets(DEMO_DIR)["dev"], task.test_sets(DEMO_DIR)["test"]
        assert (len(train), len(dev), len(test)) == (2000, 500, 500)
        assert task.labels == ["0", "1"]
        assert 0.45 < sum(e.label == "1" for e in train) / len(train) < 0.55
        transfer = task.transfer_examples(os.path.join(DEMO_DIR, "transfer.tsv"))
        assert len(transfer) == 4000 and all(e.label is None for e in transfer)
    texts = [e.text_a for e in train + dev + transfer] + [e.text_a for e in test]
    assert len(set(texts)) == len(texts)
    assert all(text[-1] in ".!?" for text in texts)


def test_demo_shuffle_keeps_the_words_and_the_final_punctuation():
    sys.path.insert(0, os.path.dirname(DEMO_DIR))
    try:
        import make_demo_classification as demo
    finally:
        sys.path.pop(0)
    r = random.Random(0)
    for sentence in ("The rain kept Ivo at home for two days.", "Ada met Bo.", "a b a b?"):
        for _ in range(20):
            shuffled = demo.shuffle_words(r, sentence)
            assert shuffled != sentence and shuffled[-1] == sentence[-1]
            assert shuffled[0].isupper() or not sentence[0].isupper()
            assert sorted(shuffled[:-1].lower().split()) == sorted(sentence[:-1].lower().split())
