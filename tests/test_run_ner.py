"""run_ner.py end to end: a tiny model on CoNLL-2003-layout files written here (train, eval,
predict, the outputs' formats, resumption, the best checkpoint, several replicas, bad input), and
the real MiniLM weights against random weights on the bundled data/demo_tagging set.

main() runs in-process with explicit flags, as the command line would.
"""
import json
import os
import random
import shutil
import types

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import metrics
import run_ner
import tagging_data
from errors import InputError
from script_main import built_model, read_results, run_script_main
from test_modeling import tiny_pretrained_model
from test_run_classifier import assert_nothing_half_written, eval_events

SEQ, STRIDE = 16, 4
PEOPLE = ["Ada", "Bruno", "Cleo", "Dario"]
TOWNS = ["Riverton", "Ashford", "Glenrock"]          # two pieces each in the vocabulary below
FILLER = ["lives", "in", "works", "for", "the", "met", "at", "and", "mill", ".", ","]
VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ada", "bruno", "cleo", "dario", "river",
          "##ton", "ash", "##ford", "glen", "##rock", "club", "bank", "of"] + FILLER)
TAGS = ["O", "B-LOC", "B-ORG", "B-PER", "I-ORG"]   # the training file's, O first


# -- Data in CoNLL-2003's layout: word, part of speech, chunk, entity ---------------------------

def tagged_sentence(rng):
    """[(word, tag)] of one sentence (IOB2)."""
    person, town, other = rng.choice(PEOPLE), rng.choice(TOWNS), rng.choice(TOWNS)
    return rng.choice([
        [(person, "B-PER"), ("lives", "O"), ("in", "O"), (town, "B-LOC"), (".", "O")],
        [(person, "B-PER"), ("works", "O"), ("for", "O"), ("the", "O"), (town, "B-ORG"),
         ("club", "I-ORG"), (".", "O")],
        [(person, "B-PER"), ("met", "O"), (rng.choice(PEOPLE), "B-PER"), ("at", "O"),
         ("the", "O"), ("bank", "B-ORG"), ("of", "I-ORG"), (other, "I-ORG"), (".", "O")],
    ])


def long_sentence(rng, n):
    """Sentences joined with commas: more pieces than one window holds."""
    words = []
    for _ in range(n):
        words += tagged_sentence(rng)[:-1] + [(",", "O")]
    return words[:-1] + [(".", "O")]


def conll_text(sentences, with_tags=True):
    lines = ["-DOCSTART- -X- -X- O", ""]
    for k, sentence in enumerate(sentences):
        if k == len(sentences) // 2:
            lines += ["-DOCSTART- -X- -X- O", ""]
        for word, tag in sentence:
            pos = "NNP" if tag != "O" else "XX"
            lines.append(f"{word} {pos} I-NP {tag}" if with_tags else word)
        lines.append("")
    return "\n".join(lines) + "\n"


def write_data(directory, seed=0, n_train=40, n_dev=12, test_tags=False):
    """train.txt, valid.txt (CoNLL-2003's names) and test.txt; the test file holds the dev
    sentences, without tags unless `test_tags`. Returns {split: [[(word, tag)]]}."""
    rng = random.Random(seed)
    data = {"train": [tagged_sentence(rng) for _ in range(n_train)] + [long_sentence(rng, 3)],
            "dev": [tagged_sentence(rng) for _ in range(n_dev)] + [long_sentence(rng, 4)]}
    os.makedirs(directory, exist_ok=True)
    for name, split, with_tags in (("train.txt", "train", True), ("valid.txt", "dev", True),
                                   ("test.txt", "dev", test_tags)):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(conll_text(data[split], with_tags))
    return data


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """vocab.txt, bert_config.json and an init checkpoint of a tiny "pretrained" model."""
    return types.SimpleNamespace(**tiny_pretrained_model(tmp_path_factory.mktemp("model"),
                                                         VOCAB))


def base_flags(env, data_dir, output_dir, **overrides):
    return dict(dict(data_dir=str(data_dir), output_dir=str(output_dir),
                     vocab_file=env.vocab_file, bert_config_file=env.bert_config_file,
                     init_checkpoint=env.init_checkpoint, max_seq_length=SEQ, doc_stride=STRIDE,
                     train_batch_size=8, eval_batch_size=8, predict_batch_size=8,
                     learning_rate=2e-3, num_train_epochs=3.0, iterations_per_loop=10),
                **overrides)


def run_main(**flag_values):
    return run_script_main(run_ner, **flag_values)


def read_columns(path):
    """The sentences of a predictions file: [[fields of each line]]."""
    sentences, current = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                current.append(line.split())
            else:
                sentences.append(current)
                current = []
    assert not current, "the file ends without a blank line"
    return sentences


@pytest.fixture(scope="module")
def trained(env, tmp_path_factory):
    """One run of everything: training with evaluation every 5 steps, eval, predict."""
    root = tmp_path_factory.mktemp("ner")
    data = write_data(root / "data")
    out = root / "out"
    run_main(**base_flags(env, root / "data", out, do_train="true", do_eval="true",
                          do_predict="true", eval_every_steps=5, save_checkpoints_steps=5))
    return types.SimpleNamespace(data=data, data_dir=root / "data", out=out)


# -- One run, all outputs -------------------------------------------------------------------------

def test_outputs_follow_the_input_word_for_word(trained):
    dev = read_columns(trained.out / "dev_predictions.txt")
    assert [[line[:2] for line in s] for s in dev] == [
        [[w, t] for w, t in s] for s in trained.data["dev"]]
    assert all(len(line) == 3 and line[2] in TAGS for s in dev for line in s)
    # The test file (the dev words without tags): `word predicted`, the same predictions.
    test = read_columns(trained.out / "test_predictions.txt")
    assert [[line[0] for line in s] for s in test] == [[w for w, _ in s]
                                                       for s in trained.data["dev"]]
    assert [[line[1] for line in s] for s in test] == [[line[2] for line in s] for s in dev]
    assert not (trained.out / "test_results.txt").exists()
    # The long sentence was split into windows, and still has one prediction per word.
    assert len(dev[-1]) > SEQ
    assert tagging_data.read_tag_list(str(trained.out)) == TAGS
    assert_nothing_half_written(trained.out)


def test_eval_results_are_the_metrics_of_the_dev_predictions(trained):
    results = read_results(trained.out / "eval_results.txt")
    dev = read_columns(trained.out / "dev_predictions.txt")
    expected = metrics.tagging_metrics([[line[1] for line in s] for s in dev],
                                       [[line[2] for line in s] for s in dev], TAGS)
    assert set(results) == {f"eval_{k}" for k in expected} | {"eval_loss", "global_step"}
    for name, value in expected.items():
        assert results[f"eval_{name}"] == pytest.approx(value), name
    assert {"eval_PER_f1", "eval_LOC_support", "eval_ORG_recall"} <= set(results)
    words = sum(len(s) for s in dev)
    assert results["eval_LOC_support"] + results["eval_PER_support"] + \
        results["eval_ORG_support"] == results["eval_gold_entities"]
    assert results["global_step"] == 16   # 43 windows (the long sentence has 3) / 8 x 3 epochs
    # The task is easy: the tiny model learns it (chance is far below).
    assert results["eval_f1"] > 0.6 and results["eval_accuracy"] > 0.8, results
    assert 0 < results["eval_loss"] < np.log(len(TAGS)) and words > 100


def test_best_checkpoint_is_the_best_evaluation_and_reproduces_it(env, trained, tmp_path):
    events = eval_events(trained.out / "eval")
    assert sorted(events) == [5, 10, 15, 16]
    scores = [events[step]["eval_f1"] for step in (5, 10, 15, 16)]
    best_step = [5, 10, 15, 16][int(np.argmax(scores))]   # the first of equals
    best = trained.out / "best"
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(best))) == best_step
    recorded = read_results(best / "eval_results.txt")
    assert recorded["global_step"] == best_step
    assert recorded["eval_f1"] == pytest.approx(max(scores))   # TensorBoard keeps float32
    assert tagging_data.read_tag_list(str(best)) == TAGS
    names = dict(checkpoints.list_variables(str(best)))
    assert names["output_weights"] == [len(TAGS), 32] and names["output_bias"] == [len(TAGS)]
    assert not [n for n in names if n.endswith(("adam_m", "adam_v"))]
    # Evaluated from --init_checkpoint=<out>/best in a new directory: the tags come from there.
    again = tmp_path / "again"
    run_main(**base_flags(env, trained.data_dir, again, do_eval="true",
                          init_checkpoint=best))
    results = read_results(again / "eval_results.txt")
    for key in ("eval_f1", "eval_accuracy", "eval_loss", "global_step"):
        assert results[key] == pytest.approx(recorded[key], rel=1e-5), key


def test_two_mirrored_replicas_predict_every_word_in_order(env, trained, tmp_path):
    out = tmp_path / "mirrored"
    shutil.copytree(trained.out, out)
    os.remove(out / "dev_predictions.txt")
    # 13 dev sentences in batches of 8 over two replicas: the last batch is split unevenly.
    run_main(**base_flags(env, trained.data_dir, out, do_eval="true",
                          distribution_strategy="mirrored"))
    assert read_columns(out / "dev_predictions.txt") == read_columns(
        trained.out / "dev_predictions.txt")
    mirrored, single = (read_results(d / "eval_results.txt") for d in (out, trained.out))
    assert mirrored == pytest.approx(single, rel=1e-5)


def identity(path):
    stat = os.stat(path)
    return stat.st_ino, stat.st_mtime_ns


def test_training_resumes_and_reuses_the_caches(env, trained, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained.out, out)
    before = checkpoints.read(str(out / "model.ckpt-16"))
    caches = {name: identity(out / name) for name in ("train.tf_record", "eval.tf_record",
                                                      "predict.tf_record")}
    run_main(**base_flags(env, trained.data_dir, out, do_train="true", do_eval="true",
                          do_predict="true", num_train_epochs=4.0))
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(out))) == 21
    assert read_results(out / "eval_results.txt")["global_step"] == 21
    for name, value in before.items():
        np.testing.assert_array_equal(checkpoints.read(str(out / "model.ckpt-16"))[name], value)
    assert {name: identity(out / name) for name in caches} == caches
    # Another --doc_stride makes other windows: the caches are rebuilt, training is done.
    run_main(**base_flags(env, trained.data_dir, out, do_train="true", num_train_epochs=4.0,
                          doc_stride=6))
    assert identity(out / "train.tf_record") != caches["train.tf_record"]
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(out))) == 21


# -- Other files and tags -------------------------------------------------------------------------

def test_a_labelled_test_file_and_json_lines(env, tmp_path):
    data = write_data(tmp_path / "conll", seed=1, n_train=16, n_dev=6, test_tags=True)
    jsonl = tmp_path / "jsonl"
    jsonl.mkdir()
    for name, split in (("train.jsonl", "train"), ("dev.jsonl", "dev"), ("test.jsonl", "dev")):
        with open(jsonl / name, "w", encoding="utf-8") as f:
            for s in data[split]:
                f.write(json.dumps({"tokens": [w for w, _ in s],
                                                 "tags": [t for _, t in s]}) + "\n")
    # Trained on the CoNLL files; then the same model on the JSON Lines files.
    conll, jsonl_out = tmp_path / "out_conll", tmp_path / "out_jsonl"
    run_main(**base_flags(env, tmp_path / "conll", conll, do_train="true", do_eval="true",
                          do_predict="true", num_train_epochs=1.0))
    run_main(**base_flags(env, jsonl, jsonl_out, do_eval="true", do_predict="true",
                          init_checkpoint=conll))
    for out in (conll, jsonl_out):
        test = read_results(out / "test_results.txt")
        dev = read_results(out / "eval_results.txt")
        assert test == pytest.approx({"test" + k[4:] if k.startswith("eval_") else k: v
                                      for k, v in dev.items()}, rel=1e-5)
        assert read_columns(out / "test_predictions.txt") == read_columns(
            out / "dev_predictions.txt")
    assert read_columns(conll / "test_predictions.txt") == read_columns(
        jsonl_out / "test_predictions.txt")


def test_parts_of_speech_give_accuracy_only(env, trained, tmp_path):
    out = tmp_path / "pos"
    run_main(**base_flags(env, trained.data_dir, out, do_train="true", do_eval="true",
                          num_train_epochs=1.0, tag_column=1))
    assert tagging_data.read_tag_list(str(out)) == ["NNP", "XX"]
    assert set(read_results(out / "eval_results.txt")) == {"eval_accuracy", "eval_loss",
                                                           "global_step"}
    assert read_columns(out / "dev_predictions.txt")[0][0][:2] == [
        trained.data["dev"][0][0][0], "NNP"]


# -- Bad input ------------------------------------------------------------------------------------

def test_a_dev_tag_outside_the_tag_set_names_file_and_line(env, tmp_path):
    write_data(tmp_path / "data", n_train=4, n_dev=2)
    path = tmp_path / "data" / "valid.txt"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(" ", 1)[0] + " B-MISC"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=f"{path}:4: tag 'B-MISC' is not in the tag set of the "
                                         r"model \(O, B-LOC"):
        run_main(**base_flags(env, tmp_path / "data", tmp_path / "out", do_train="true",
                              do_eval="true"))
    assert not os.path.exists(tmp_path / "out" / "train.tf_record")
    # --tags names a tag set that holds it.
    run_main(**base_flags(env, tmp_path / "data", tmp_path / "out", do_train="true",
                          do_eval="true", num_train_epochs=1.0, tags=",".join(TAGS + ["B-MISC"])))
    assert tagging_data.read_tag_list(str(tmp_path / "out")) == TAGS + ["B-MISC"]
    # The trained model keeps its tags: others are refused.
    with pytest.raises(InputError, match="differ from those of the model in --output_dir"):
        run_main(**base_flags(env, tmp_path / "data", tmp_path / "out", do_eval="true",
                              tags=",".join(TAGS + ["B-MISC", "I-MISC"])))


def test_flag_errors(env, tmp_path):
    write_data(tmp_path / "data", n_train=4, n_dev=2)
    cases = [
        (dict(do_eval="true", init_checkpoint=""), "nothing to evaluate: no checkpoint"),
        (dict(do_eval="true", eval_every_steps=5), "--eval_every_steps=5 needs --do_train"),
        (dict(do_train="true", doc_stride=0), "--doc_stride=0 must be at least 1"),
        (dict(do_train="true", max_seq_length=2), "--max_seq_length=2 leaves no room"),
        (dict(do_train="true", vocab_file=""), "--vocab_file is required"),
        (dict(do_train="true", tags="O,O"), "a tag is named twice"),
    ]
    for overrides, message in cases:
        with pytest.raises(InputError, match=message):
            run_main(**base_flags(env, tmp_path / "data", tmp_path / "out", **overrides))
    for data_dir, message in (("", "--data_dir is required"), (tmp_path, "No such file")):
        with pytest.raises((InputError, FileNotFoundError), match=message):
            run_main(**base_flags(env, data_dir, tmp_path / "out", do_train="true"))


def test_gradient_checkpointing_flag_reaches_the_model(env, tmp_path):
    # What the option does: tests/test_gradient_checkpointing.py.
    write_data(tmp_path / "data")
    for value in (False, True):
        model = built_model(run_ner, **base_flags(env, tmp_path / "data", tmp_path / "out",
                                                  do_train="true", gradient_checkpointing=value))
        assert model.bert.gradient_checkpointing is value
