"""Distillation with run_classifier.py, end to end on tiny models: a teacher labels a transfer set
(--do_label_transfer), a smaller student with its own vocabulary learns from the soft labels
(--teacher_soft_labels) and follows the teacher more closely than before; regression distils the
teacher's value; every mismatch between the file and the student is a clear error."""
import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import classification
import modeling
import soft_labels
from test_modeling import tiny_config
from script_main import read_results
from test_run_classifier import (SEQ, WORDS, assert_nothing_half_written, base_flags,  # noqa: F401
                                 env, read_rows, run_main, train_glue, write_tsv)

N_TEACHER_TRAIN, N_TRANSFER = 48, 64


def keyword_sentences(rng, n):
    """Sentences of 3-8 words; label "1" when one of them is "red" (a signal a tiny model finds)."""
    out = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 8))]
        if i % 2:
            words[rng.randrange(len(words))] = "red"
        else:
            words = [w if w != "red" else "blue" for w in words]
        out.append((" ".join(words) + " .", "1" if "red" in words else "0"))
    return out


@pytest.fixture(scope="module")
def teacher(env, tmp_path_factory):
    """A fine-tuned SST-2-layout teacher, and its soft labels on two transfer files: its own
    training file (gold labels) and unlabelled sentences."""
    root = tmp_path_factory.mktemp("teacher")
    rng = random.Random(3)
    train, dev = keyword_sentences(rng, N_TEACHER_TRAIN), keyword_sentences(rng, 8)
    unlabelled = [text for text, _ in keyword_sentences(rng, N_TRANSFER)]
    data = root / "data"
    write_tsv(str(data / "train.tsv"), ["sentence", "label"], train)
    write_tsv(str(data / "dev.tsv"), ["sentence", "label"], dev)
    write_tsv(str(data / "test.tsv"), ["index", "sentence"], list(enumerate(unlabelled)))
    transfer = write_tsv(str(root / "unlabelled.tsv"), ["sentence"], [[t] for t in unlabelled])
    out = root / "teacher"
    run_main(**base_flags(env, data, out, task_name="sst-2", do_train="true", do_predict="true",
                          train_batch_size=8, num_train_epochs=30.0, learning_rate=1e-3))
    # The teacher pass: no --data_dir, the model from --output_dir.
    transfer_files = f"{data / 'train.tsv'},{transfer}"
    run_main(task_name="sst-2", do_label_transfer="true", transfer_file=transfer_files,
             output_dir=str(out), vocab_file=env.vocab_file,
             bert_config_file=env.bert_config_file, max_seq_length=SEQ, predict_batch_size=16)
    return dict(data=data, out=out, train=train, unlabelled=unlabelled,
                transfer_files=transfer_files, soft=out / "soft_labels.jsonl")


@pytest.fixture(scope="module")
def student_model(tmp_path_factory):
    """A smaller "pretrained" student with its own vocabulary: other ids, and upper-case entries
    the teacher's vocabulary lacks."""
    root = tmp_path_factory.mktemp("student_model")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Cat", "."] + sorted(WORDS,
                                                                               reverse=True)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = tiny_config(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=24)
    config.to_json_file(str(root / "bert_config.json"))
    tf.random.set_seed(1)
    checkpoints.save(str(root / "bert_model.ckpt"),
                     checkpoints.named_variables(modeling.BertPretrainer(config)))
    return dict(vocab_file=str(root / "vocab.txt"), bert_config_file=str(root / "bert_config.json"),
                init_checkpoint=str(root / "bert_model.ckpt"))


def student_flags(env, teacher, student_model, out, **overrides):
    return base_flags(env, teacher["data"], out, **dict(
        dict(task_name="sst-2", do_train="true", do_eval="true",
             teacher_soft_labels=str(teacher["soft"]), train_batch_size=8, learning_rate=3e-3,
             num_train_epochs=8.0, **student_model), **overrides))


def test_teacher_writes_soft_labels_keyed_by_example(env, teacher):
    soft = soft_labels.read(str(teacher["soft"]))
    n = N_TEACHER_TRAIN + N_TRANSFER
    assert soft.header["num_examples"] == n and soft.kind == "classification"
    assert soft.labels == ["0", "1"] and soft.header["task"] == "sst-2"
    assert soft.header["teacher"].endswith("model.ckpt-180") and soft.header["global_step"] == 180
    assert soft.header["transfer_files"] == teacher["transfer_files"].split(",")
    assert [e.guid for e in soft.examples] == (
        [f"transfer1-{i}" for i in range(N_TEACHER_TRAIN)]
        + [f"transfer2-{i}" for i in range(N_TRANSFER)])
    # Gold labels where the transfer file has them; the texts as read.
    assert [(e.text_a, e.label) for e in soft.examples[:N_TEACHER_TRAIN]] == teacher["train"]
    assert [(e.text_a, e.label) for e in soft.examples[N_TEACHER_TRAIN:]] == [
        (text, None) for text in teacher["unlabelled"]]
    # The logits are those behind the teacher's own --do_predict probabilities on the same texts.
    probabilities = np.array(read_rows(teacher["out"] / "test_results.tsv"), np.float64)
    logits = soft.logits[N_TEACHER_TRAIN:].astype(np.float64)
    expected = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)
    # A teacher that predicts both classes: agreement with it is not a matter of one class.
    assert 0.25 < np.mean(soft.logits.argmax(-1)) < 0.75
    assert_nothing_half_written(teacher["out"])


def test_student_learns_to_agree_with_the_teacher(env, teacher, student_model, tmp_path):
    out = tmp_path / "student"
    run_main(**student_flags(env, teacher, student_model, out))
    results = read_results(out / "distillation_results.txt")
    n = N_TEACHER_TRAIN + N_TRANSFER
    assert results["num_examples"] == n and results["global_step"] == n // 8 * 8
    assert results["teacher_agreement"] >= 0.85, results
    assert results["teacher_agreement"] > results["teacher_agreement_at_start"] + 0.2, results
    assert set(read_results(out / "eval_results.txt")) >= {"eval_accuracy", "eval_loss"}
    # The student is the small model: its classifier is [2, 16].
    reader = tf.train.load_checkpoint(str(out))
    assert reader.get_variable_to_shape_map()["output_weights"] == [2, 16]
    # Recomputed independently: the student labels the same transfer files itself; its
    # predicted classes agree with the teacher's on the reported share of examples.
    run_main(task_name="sst-2", do_label_transfer="true", transfer_file=teacher["transfer_files"],
             output_dir=str(out), max_seq_length=SEQ, predict_batch_size=16,
             vocab_file=student_model["vocab_file"],
             bert_config_file=student_model["bert_config_file"])
    mine = soft_labels.read(str(out / "soft_labels.jsonl"))
    theirs = soft_labels.read(str(teacher["soft"]))
    assert [e.guid for e in mine.examples] == [e.guid for e in theirs.examples]
    agreement = np.mean(mine.logits.argmax(-1) == theirs.logits.argmax(-1))
    assert agreement == pytest.approx(results["teacher_agreement"])
    assert_nothing_half_written(out)


def test_distillation_loss_mixes_in_gold_labels_where_there_are_some():
    logits = tf.constant([[2.0, -1.0], [0.5, 0.5], [-1.0, 1.0]])
    features = {"teacher_logits": tf.constant([[0.0, 1.0], [1.0, 0.0], [3.0, 0.0]]),
                "label_ids": tf.constant([0, 0, 1]), "has_label": tf.constant([1, 0, 1])}

    def model(features, training):
        return logits
    _, soft = modeling.soft_classification_loss(logits, features["teacher_logits"], 2.0)
    _, gold = modeling.classification_loss(logits, features["label_ids"])
    for w in (0.0, 0.3, 1.0):
        loss = classification.distillation_loss_fn(classification.CLASSIFICATION, 2.0, w)(
            model, features, True)
        weights = np.array([w, 0.0, w])
        expected = np.mean((1 - weights) * soft.numpy() + weights * gold.numpy())
        assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_regression_distils_the_teachers_value(env, tmp_path_factory, tmp_path):
    data, trained = train_glue(env, "sts-b", tmp_path_factory)
    data_dir = trained.parent / "data"
    # The teacher labels its dev file (laid out as the training file, scores kept as gold).
    run_main(**base_flags(env, data_dir, trained, task_name="sts-b", do_label_transfer="true",
                          transfer_file=str(data_dir / "dev.tsv")))
    soft = soft_labels.read(str(trained / "soft_labels.jsonl"))
    assert soft.kind == "regression" and soft.labels is None and soft.logits.shape == (5, 1)
    assert [e.label for e in soft.examples] == [float(y) for _, _, y in data["dev"]]
    # write_glue's test file repeats the dev texts: the teacher's predictions on them.
    predicted = np.array(read_rows(trained / "test_results.tsv"), np.float64)[:, 0]
    np.testing.assert_allclose(soft.logits[:, 0], predicted, rtol=1e-4, atol=1e-5)
    out = tmp_path / "student"
    run_main(**base_flags(env, data_dir, out, task_name="sts-b", do_train="true",
                          teacher_soft_labels=str(trained / "soft_labels.jsonl"),
                          train_batch_size=5, num_train_epochs=20.0, learning_rate=3e-3))
    results = read_results(out / "distillation_results.txt")
    assert results["teacher_mse"] < 0.5 * results["teacher_mse_at_start"], results
    with pytest.raises(ValueError, match="--distill_temperature applies to classification"):
        run_main(**base_flags(env, data_dir, tmp_path / "t", task_name="sts-b", do_train="true",
                              teacher_soft_labels=str(trained / "soft_labels.jsonl"),
                              distill_temperature=2.0))


def failing(env, teacher, student_model, out, error, match, left=(), **overrides):
    """The run fails with `match`; nothing but `left` was written."""
    with pytest.raises(error, match=match):
        run_main(**student_flags(env, teacher, student_model, out, **overrides))
    assert not os.path.exists(out) or sorted(os.listdir(out)) == sorted(left)


def test_soft_labels_that_do_not_fit_the_student_are_errors(env, teacher, student_model,
                                                           tmp_path):
    cut = tmp_path / "cut.jsonl"
    lines = teacher["soft"].read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[:-1]))
    failing(env, teacher, student_model, tmp_path / "o1", soft_labels.SoftLabelsError,
            rf"{cut}: 111 examples, but the header says 112", teacher_soft_labels=str(cut))
    failing(env, teacher, student_model, tmp_path / "o2", soft_labels.SoftLabelsError,
            r"the teacher's labels \['0', '1'\] are not the task's labels \['0', '1', '2'\]",
            task_name="generic", text_a_column="sentence", label_column="label", labels="0,1,2")
    failing(env, teacher, student_model, tmp_path / "o3", soft_labels.SoftLabelsError,
            "the teacher is a classification model, the student's task 'sts-b' is regression",
            task_name="sts-b")
    # A gold label the student's task does not know names the soft-label file and line.
    odd = tmp_path / "odd.jsonl"
    head, first, *rest = lines
    odd.write_text(head + json.dumps(dict(json.loads(first), label="7")) + "\n" + "".join(rest))
    failing(env, teacher, student_model, tmp_path / "o4", Exception,
            rf"{odd}, line 2 \(example transfer1-0\): unknown label '7'",
            left=["label_list.txt"], teacher_soft_labels=str(odd))


def test_student_with_the_classes_in_another_order(env, teacher, student_model, tmp_path):
    out = tmp_path / "student"
    run_main(**student_flags(env, teacher, student_model, out, task_name="generic",
                             text_a_column="sentence", label_column="label", labels="1,0",
                             do_eval="false", num_train_epochs=4.0))
    assert (out / "label_list.txt").read_text() == "1\n0\n"
    results = read_results(out / "distillation_results.txt")
    assert results["teacher_agreement"] > results["teacher_agreement_at_start"], results


def test_a_resumed_student_keeps_its_starting_agreement(env, teacher, student_model, tmp_path):
    out = tmp_path / "student"
    run_main(**student_flags(env, teacher, student_model, out, do_eval="false",
                             num_train_epochs=1.0))
    first = read_results(out / "distillation_results.txt")
    assert first["global_step"] == 14
    run_main(**student_flags(env, teacher, student_model, out, do_eval="false",
                             num_train_epochs=2.0))
    second = read_results(out / "distillation_results.txt")
    assert second["global_step"] == 28
    assert second["teacher_agreement_at_start"] == first["teacher_agreement_at_start"]


def test_distillation_flag_errors(env, teacher, student_model, tmp_path):
    cases = [(dict(do_train="false"), "--teacher_soft_labels is for training a student"),
             (dict(teacher_soft_labels="", distill_temperature=2.0),
              "--distill_temperature and --gold_label_weight need --teacher_soft_labels"),
             (dict(distill_temperature=0.0), "--distill_temperature=0.0 must be positive"),
             (dict(gold_label_weight=1.5), r"--gold_label_weight=1.5 must be in \[0, 1\]"),
             (dict(transfer_file="x.tsv"), "--do_label_transfer and --transfer_file go together"),
             (dict(do_train="false", do_eval="false", teacher_soft_labels="",
                   do_label_transfer="true"),
              "--do_label_transfer and --transfer_file go together")]
    for i, (overrides, message) in enumerate(cases):
        failing(env, teacher, student_model, tmp_path / f"o{i}", ValueError, message,
                **overrides)
