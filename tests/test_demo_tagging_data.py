"""Tests for data/demo_tagging/ and data/make_demo_tagging.py (no model): the bundled files read
as CoNLL files with IOB2 tags, dev and test people and towns are partly unseen in training, and
the generator reproduces the files."""
import os
import subprocess
import sys

import pytest

import metrics
import tagging_data

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
SCRIPT = os.path.join(DATA, "make_demo_tagging.py")
SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def bundled():
    return {split: tagging_data.read_split(os.path.join(DATA, "demo_tagging"), split)
            for split in SPLITS}


def entities(tagged, type_):
    """The distinct entities of one type: their words joined."""
    return {" ".join(s.words[first:last + 1]) for s in tagged.sentences
            for t, first, last in metrics.entity_spans(s.tags, "IOB2") if t == type_}


def test_files_are_conll_with_iob2_entities(bundled):
    assert [len(bundled[split].sentences) for split in SPLITS] == [400, 150, 150]
    tags = tagging_data.tag_list(bundled["train"].sentences)
    assert tags == ["O", "B-LOC", "B-ORG", "B-PER", "I-ORG", "I-PER"]
    for tagged in bundled.values():
        tagging_data.check_tags(tagged, tags)
        for s in tagged.sentences:
            # Well-formed IOB2: the strict reading finds every entity the lenient one does.
            assert metrics.entity_spans(s.tags, "IOB2") == metrics.entity_spans(s.tags)
    with open(os.path.join(DATA, "demo_tagging", "dev.txt"), encoding="utf-8") as f:
        assert f.readline() == "-DOCSTART- O\n"
    # Towns are LOC alone and part of ORGs: "Riverton" and "Riverton Rowing Club".
    orgs = entities(bundled["train"], "ORG")
    assert any(org.split()[0] in entities(bundled["train"], "LOC") for org in orgs)


def test_dev_and_test_people_and_towns_are_partly_unseen_in_training(bundled):
    for type_ in ("PER", "LOC"):
        seen = {word for name in entities(bundled["train"], type_) for word in name.split()}
        for split in ("dev", "test"):
            names = entities(bundled[split], type_)
            unseen = [name for name in names if not set(name.split()) <= seen]
            assert 0.2 < len(unseen) / len(names) < 0.8, (type_, split, len(unseen), len(names))


def test_generator_reproduces_bundled_files(tmp_path):
    subprocess.run([sys.executable, SCRIPT, f"--output_dir={tmp_path}"], check=True,
                   capture_output=True)
    for split in SPLITS:
        with open(os.path.join(DATA, "demo_tagging", f"{split}.txt"), "rb") as f:
            assert (tmp_path / f"{split}.txt").read_bytes() == f.read(), split
    assert sorted(os.listdir(tmp_path)) == ["dev.txt", "test.txt", "train.txt"]
