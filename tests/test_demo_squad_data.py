"""Tests for data/demo_squad/ and data/make_demo_squad.py (no TensorFlow): the bundled SQuAD files
are well formed, dev people are held out of train, and the generator reproduces the files."""
import json
import os
import re
import subprocess
import sys

import pytest

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
SCRIPT = os.path.join(DATA, "make_demo_squad.py")
SPLITS = ("train", "dev")
sys.path.insert(0, DATA)
import make_demo_corpus  # noqa: E402


def _load(directory, split):
    with open(os.path.join(directory, f"{split}.json"), encoding="utf-8") as f:
        return json.load(f)


def _paragraphs(data):
    return [p for article in data["data"] for p in article["paragraphs"]]


def _questions(data):
    return [qa for p in _paragraphs(data) for qa in p["qas"]]


@pytest.fixture(scope="module")
def bundled():
    return {split: _load(os.path.join(DATA, "demo_squad"), split) for split in SPLITS}


def test_files_parse_as_squad_2(bundled):
    for split, data in bundled.items():
        assert data["version"] == "v2.0"
        assert _paragraphs(data), split
        for p in _paragraphs(data):
            assert isinstance(p["context"], str) and p["qas"]
            assert len(p["context"].split()) < 70
            for qa in p["qas"]:
                assert set(qa) == {"id", "question", "answers", "is_impossible"}
                assert qa["question"].endswith("?")
    assert 350 <= len(_questions(bundled["train"])) <= 450
    assert 100 <= len(_questions(bundled["dev"])) <= 140


def test_answers_are_spans_of_their_context(bundled):
    for data in bundled.values():
        for p in _paragraphs(data):
            for qa in p["qas"]:
                assert qa["is_impossible"] == (not qa["answers"])
                for a in qa["answers"]:
                    start = a["answer_start"]
                    assert a["text"] and p["context"][start:start + len(a["text"])] == a["text"]


def test_ids_unique_across_files(bundled):
    ids = [qa["id"] for data in bundled.values() for qa in _questions(data)]
    assert len(ids) == len(set(ids))


def test_dev_people_do_not_occur_in_train(bundled):
    dev_names = {name for name in make_demo_corpus.FIRST
                 if any(re.search(rf"\b{name}\b", p["context"])
                        for p in _paragraphs(bundled["dev"]))}
    assert dev_names
    train_text = "\n".join(p["context"] for p in _paragraphs(bundled["train"]))
    leaked = [name for name in dev_names if re.search(rf"\b{name}\b", train_text)]
    assert not leaked


def test_impossible_share(bundled):
    for split, data in bundled.items():
        qas = _questions(data)
        share = sum(qa["is_impossible"] for qa in qas) / len(qas)
        assert 0.05 <= share <= 0.30, (split, share)


def _run(*args):
    subprocess.run([sys.executable, SCRIPT, *args], check=True, capture_output=True)


def test_generator_reproduces_bundled_files(tmp_path):
    _run(f"--output_dir={tmp_path}")
    for split in SPLITS:
        with open(os.path.join(DATA, "demo_squad", f"{split}.json"), "rb") as f:
            expected = f.read()
        assert (tmp_path / f"{split}.json").read_bytes() == expected, split
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_no_impossible_writes_squad_1_1(tmp_path, bundled):
    _run(f"--output_dir={tmp_path}", "--no_impossible")
    for split in SPLITS:
        data = _load(tmp_path, split)
        assert data["version"] == "1.1"
        qas = _questions(data)
        assert all(set(qa) == {"id", "question", "answers"} and len(qa["answers"]) == 1
                   for qa in qas)
        # The same answerable questions as the 2.0 file.
        assert qas == [{k: v for k, v in qa.items() if k != "is_impossible"}
                       for qa in _questions(bundled[split]) if not qa["is_impossible"]]
