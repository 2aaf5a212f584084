"""run_squad.py end to end on a tiny model: SQuAD 1.1 and 2.0, caches, evaluation, bad input.

The fixture is written here: paragraphs about people in towns, one answer per question, answers
that carry case and sit next to punctuation ("Riverton." -> "Riverton"), long paragraphs that
need several windows at --max_seq_length=48 --doc_stride=16, and, for 2.0, questions about a
fact the paragraph does not give. main() runs in-process with explicit flags, as the command line
would; one test runs the script as a subprocess with the original README's flags.
"""
import json
import os
import random
import subprocess
import sys
import types

import pytest
import tensorflow as tf

import checkpoints
import modeling
import run_squad
import squad_metrics
from script_main import built_model, read_results, run_script_main
from test_modeling import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ = 48
NAMES = "Ada Bela Carl Dora Emil Fenna Gus Hana Ivo Jana".split()
TOWNS = "Riverton Ashford Dunmore Yarrow Glenrock".split()
TRADES = "baker potter farmer doctor".split()
FILLER = ("the market is open on most days and the road to the hill is long . people walk "
          "there in the morning and come back in the evening .")


def paragraph(rng, i, long=False, impossible=False):
    """One SQuAD paragraph about one person, with its questions."""
    name, town, trade = NAMES[i % len(NAMES)], rng.choice(TOWNS), rng.choice(TRADES)
    sentences = [f"{name} lives in {town}.", f"{name} works as a {trade}, and likes it."]
    if long:  # the answer sentences sit after a stretch longer than one window
        sentences = [FILLER, FILLER] + sentences
    context = " ".join(sentences)
    qas = [qa(f"q{i}-town", f"Where does {name} live?", context, town),
           qa(f"q{i}-trade", f"What does {name} work as?", context, trade)]
    if impossible:
        qas.append({"id": f"q{i}-age", "question": f"How old is {name}?", "answers": [],
                    "is_impossible": True})
    return {"context": context, "qas": qas}


def qa(qid, question, context, answer):
    start = context.index(" " + answer) + 1
    assert context[start:start + len(answer)] == answer
    return {"id": qid, "question": question,
            "answers": [{"text": answer, "answer_start": start}], "is_impossible": False}


def squad_file(path, n, version_2, seed=0):
    rng = random.Random(seed)
    paragraphs = [paragraph(rng, i, long=i % 4 == 3, impossible=version_2 and i % 2 == 0)
                  for i in range(n)]
    if not version_2:
        for p in paragraphs:
            for q in p["qas"]:
                del q["is_impossible"]
    data = {"version": "v2.0" if version_2 else "1.1",
            "data": [{"title": "people", "paragraphs": paragraphs}]}
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    words = set(FILLER.split()) | {"lives", "in", "works", "as", "a", ",", "and", "likes", "it",
                                   ".", "where", "does", "live", "?", "what", "work", "how",
                                   "old", "is"}
    words |= {w.lower() for w in NAMES + TOWNS + TRADES}
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = tiny_config(vocab_size=len(vocab), max_position_embeddings=512)
    config.to_json_file(str(root / "bert_config.json"))
    tf.random.set_seed(0)
    checkpoints.save(str(root / "bert_model.ckpt"),
                     checkpoints.named_variables(modeling.BertPretrainer(config)))
    return types.SimpleNamespace(vocab_file=str(root / "vocab.txt"),
                                 bert_config_file=str(root / "bert_config.json"),
                                 init_checkpoint=str(root / "bert_model.ckpt"))


def base_flags(env, output_dir, **overrides):
    return dict(dict(output_dir=str(output_dir), vocab_file=env.vocab_file,
                     bert_config_file=env.bert_config_file, init_checkpoint=env.init_checkpoint,
                     max_seq_length=SEQ, doc_stride=16, max_query_length=12,
                     train_batch_size=8, predict_batch_size=16, learning_rate=3e-3,
                     num_train_epochs=1.0, iterations_per_loop=20),
                **overrides)


def run_main(**flag_values):
    return run_script_main(run_squad, **flag_values)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def questions(path):
    return [q for a in read_json(path)["data"] for p in a["paragraphs"] for q in p["qas"]]


def assert_nothing_half_written(directory):
    leftovers = [name for name in os.listdir(directory) if ".tmp" in name]
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def squad_v1(env, tmp_path_factory):
    """Predicts with the initial weights, then trains (on the dev questions themselves, so the
    tiny model can learn them) and predicts again."""
    tmp = tmp_path_factory.mktemp("v1")
    data = squad_file(tmp / "dev-v1.1.json", 24, version_2=False)
    untrained = tmp / "untrained"
    run_main(**base_flags(env, untrained, do_predict=True, predict_file=data))
    out = tmp / "trained"
    run_main(**base_flags(env, out, do_train=True, train_file=data, do_predict=True,
                          predict_file=data, num_train_epochs=40.0))
    return types.SimpleNamespace(data=data, untrained=untrained, out=out)


def test_v1_writes_the_original_outputs_and_the_official_metrics(squad_v1):
    out, data = squad_v1.out, squad_v1.data
    predictions = read_json(out / "predictions.json")
    ids = [q["id"] for q in questions(data)]
    assert list(predictions) == ids
    nbest = read_json(out / "nbest_predictions.json")
    assert list(nbest) == ids
    for entries in nbest.values():
        assert list(entries[0]) == ["text", "probability", "start_logit", "end_logit"]
        assert sum(e["probability"] for e in entries) == pytest.approx(1.0, abs=1e-5)
        assert entries == sorted(entries, key=lambda e: -(e["start_logit"] + e["end_logit"]))
    assert all(predictions[qid] == nbest[qid][0]["text"] for qid in ids)
    assert not (out / "null_odds.json").exists()
    results = read_results(out / "eval_results.txt")
    official = squad_metrics.evaluate(read_json(data)["data"], predictions)
    assert results["exact_match"] == pytest.approx(official["exact_match"])
    assert results["f1"] == pytest.approx(official["f1"])
    assert results["global_step"] == int(len(ids) / 8 * 40.0)
    names = dict(checkpoints.list_variables(str(out)))
    assert names["cls/squad/output_weights"] == [2, 32] and names["cls/squad/output_bias"] == [2]
    assert "cls/squad/output_weights/adam_m" in names and "global_step" in names
    for name in ("train.tf_record", "eval.tf_record", "eval.tf_record.features.jsonl"):
        assert (out / name).exists(), name
    assert_nothing_half_written(out)


def test_v1_training_learns_the_answers(squad_v1):
    """Answers come out as written in the paragraph (case kept, the full stop dropped), and
    training beats the untrained model by far."""
    before = read_results(squad_v1.untrained / "eval_results.txt")
    after = read_results(squad_v1.out / "eval_results.txt")
    assert after["f1"] > 80.0 and after["f1"] > before["f1"] + 40.0, (before, after)
    predictions = read_json(squad_v1.out / "predictions.json")
    towns = [predictions[q["id"]] for q in questions(squad_v1.data) if q["id"].endswith("town")]
    assert sum(town in TOWNS for town in towns) >= len(towns) - 1, towns


def test_long_paragraphs_are_read_in_several_windows(squad_v1):
    windows = [json.loads(line) for line in
               open(squad_v1.out / "eval.tf_record.features.jsonl", encoding="utf-8")]
    per_question = {}
    for w in windows:
        per_question[w["example_index"]] = per_question.get(w["example_index"], 0) + 1
    assert max(per_question.values()) >= 3 and min(per_question.values()) == 1
    assert all(len(w["tokens"]) <= SEQ for w in windows)


def test_prediction_reuses_the_cache_and_rebuilds_it_when_the_windows_change(
        env, squad_v1, tmp_path, caplog):
    out = squad_v1.out
    before = read_json(out / "predictions.json")
    stamp = os.path.getmtime(out / "eval.tf_record")
    with caplog.at_level("INFO"):
        run_main(**base_flags(env, out, do_predict=True, predict_file=squad_v1.data))
    assert "Reused" in caplog.text and os.path.getmtime(out / "eval.tf_record") == stamp
    assert read_json(out / "predictions.json") == before
    # Another --doc_stride makes other windows: the cache is rebuilt, in another directory so
    # the module's outputs stay as they were.
    other = tmp_path / "other"
    run_main(**base_flags(env, other, do_predict=True, predict_file=squad_v1.data,
                          init_checkpoint=str(out)))
    n = sum(1 for _ in open(other / "eval.tf_record.features.jsonl"))
    run_main(**base_flags(env, other, do_predict=True, predict_file=squad_v1.data,
                          init_checkpoint=str(out), doc_stride=8))
    assert sum(1 for _ in open(other / "eval.tf_record.features.jsonl")) > n


def test_v2_null_answers_threshold_and_breakdown(env, tmp_path):
    data = squad_file(tmp_path / "dev-v2.0.json", 12, version_2=True)
    out = tmp_path / "v2"
    run_main(**base_flags(env, out, do_train=True, train_file=data, do_predict=True,
                          predict_file=data, version_2_with_negative=True,
                          num_train_epochs=30.0))
    predictions = read_json(out / "predictions.json")
    null_odds = read_json(out / "null_odds.json")
    assert list(null_odds) == list(predictions)
    for qid, diff in null_odds.items():
        assert (predictions[qid] == "") == (diff > 0.0), (qid, diff, predictions[qid])
    results = read_results(out / "eval_results.txt")
    for key in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1",
                "best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh", "global_step"):
        assert key in results, key
    assert results["HasAns_total"] + results["NoAns_total"] == results["total"] == len(null_odds)
    official = squad_metrics.evaluate(read_json(data)["data"], predictions, null_odds, 0.0, True)
    assert results["f1"] == pytest.approx(official["f1"])
    assert results["f1"] > 60.0, results
    # The threshold decides: above every score difference nothing is null, below every one all is.
    for threshold, all_null in ((max(null_odds.values()) + 1.0, False),
                                (min(null_odds.values()) - 1.0, True)):
        run_main(**base_flags(env, out, do_predict=True, predict_file=data,
                              version_2_with_negative=True,
                              null_score_diff_threshold=threshold))
        values = read_json(out / "predictions.json").values()
        assert all((v == "") == all_null for v in values), (threshold, values)


def test_the_original_readme_command_line_runs_unchanged(env, tmp_path):
    train = squad_file(tmp_path / "train-v2.0.json", 8, version_2=True)
    dev = squad_file(tmp_path / "dev-v2.0.json", 4, version_2=True, seed=1)
    out = tmp_path / "squad_base"
    command = [sys.executable, os.path.join(ROOT, "run_squad.py"),
               f"--vocab_file={env.vocab_file}", f"--bert_config_file={env.bert_config_file}",
               f"--init_checkpoint={env.init_checkpoint}", "--do_train=True",
               f"--train_file={train}", "--do_predict=True", f"--predict_file={dev}",
               "--train_batch_size=24", "--learning_rate=3e-5", "--num_train_epochs=2.0",
               "--max_seq_length=384", "--doc_stride=128", f"--output_dir={out}",
               "--version_2_with_negative=True", "--null_score_diff_threshold=-1.0"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("predictions.json", "nbest_predictions.json", "null_odds.json",
                 "eval_results.txt"):
        assert (out / name).exists(), name
    assert "exact = " in (out / "eval_results.txt").read_text()


def test_gradient_checkpointing_flag_reaches_the_model(env, tmp_path):
    # What the option does: tests/test_gradient_checkpointing.py.
    train = squad_file(tmp_path / "train.json", 4, version_2=False)
    for value in (False, True):
        model = built_model(run_squad, **base_flags(env, tmp_path / "out", do_train=True,
                                                    train_file=train,
                                                    gradient_checkpointing=value))
        assert model.bert.gradient_checkpointing is value


def test_a_file_without_answers_is_predicted_but_not_evaluated(env, squad_v1, tmp_path):
    data = read_json(squad_v1.data)
    for p in data["data"][0]["paragraphs"]:
        for q in p["qas"]:
            q.pop("answers")
    test_file = tmp_path / "test-v1.1.json"
    test_file.write_text(json.dumps(data))
    out = tmp_path / "test"
    run_main(**base_flags(env, out, do_predict=True, predict_file=str(test_file),
                          init_checkpoint=str(squad_v1.out)))
    assert len(read_json(out / "predictions.json")) == len(questions(squad_v1.data))
    assert not (out / "eval_results.txt").exists()


@pytest.mark.parametrize("overrides, message", [
    (dict(do_train=True), "train_file"),
    (dict(do_predict=True), "predict_file"),
    (dict(do_predict=True, predict_file="x.json", max_query_length=60), "max_query_length"),
    ({}, "do_train"),
])
def test_bad_flags_are_named(env, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        run_main(**base_flags(env, tmp_path / "out", **overrides))


def test_malformed_json_names_the_file_and_nothing_is_trained(env, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [{"paragraphs": [}]}')
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="bad.json"):
        run_main(**base_flags(env, out, do_predict=True, predict_file=str(bad)))
    with pytest.raises(ValueError, match="bad.json"):
        run_main(**base_flags(env, out, do_train=True, train_file=str(bad)))
    assert tf.train.latest_checkpoint(str(out)) is None
