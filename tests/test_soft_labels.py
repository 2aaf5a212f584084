"""Tests for soft_labels.py: the teacher's soft-label file, written and read back, and every way a
file can be wrong."""
import json
import os

import numpy as np
import pytest

import soft_labels
from classifier_data import InputExample
from soft_labels import SoftLabelsError


def write_file(tmp_path, kind="classification", labels=("neg", "pos")):
    examples = [InputExample("transfer-0", "a good film .", None, "pos"),
                InputExample("transfer-1", "q ?", "\u00e9t\u00e9 \"quoted\" .", None)]
    width = 1 if labels is None else len(labels)
    logits = np.arange(2 * width, dtype=np.float32).reshape(2, width) - 1.5
    head = soft_labels.header("sst-2", kind, labels, 2, "/t/model.ckpt-7", 7, ["a.tsv"])
    path = str(tmp_path / "soft_labels.jsonl")
    soft_labels.write(path, head, examples, logits)
    return path, examples, logits


def test_written_file_reads_back_exactly(tmp_path):
    path, examples, logits = write_file(tmp_path)
    assert [name for name in os.listdir(tmp_path)] == ["soft_labels.jsonl"]  # no temporary left
    lines = open(path, encoding="utf-8").read().splitlines()
    assert json.loads(lines[0])["num_examples"] == 2 and len(lines) == 3
    assert json.loads(lines[2]) == {"guid": "transfer-1", "text_a": "q ?",
                                    "text_b": "\u00e9t\u00e9 \"quoted\" .", "label": None,
                                    "logits": [0.5, 1.5]}
    soft = soft_labels.read(path)
    assert soft.kind == "classification" and soft.labels == ["neg", "pos"]
    assert soft.header["teacher"] == "/t/model.ckpt-7" and soft.header["global_step"] == 7
    assert [(e.guid, e.text_a, e.text_b, e.label, e.line) for e in soft.examples] == [
        (e.guid, e.text_a, e.text_b, e.label, line) for e, line in zip(examples, (2, 3))]
    np.testing.assert_array_equal(soft.logits, logits)


def test_regression_file_has_one_value_per_example(tmp_path):
    path, _, logits = write_file(tmp_path, "regression", None)
    soft = soft_labels.read(path)
    assert soft.labels is None and soft.logits.shape == (2, 1)
    np.testing.assert_array_equal(soft.logits, logits)
    assert soft.ordered_as(None) is soft


def test_logits_follow_the_students_label_order(tmp_path):
    soft = soft_labels.read(write_file(tmp_path, labels=("a", "b", "c"))[0])
    same = soft.ordered_as(["a", "b", "c"])
    assert same is soft
    reordered = soft.ordered_as(["c", "a", "b"])
    assert reordered.labels == ["c", "a", "b"]
    np.testing.assert_array_equal(reordered.logits, soft.logits[:, [2, 0, 1]])
    with pytest.raises(SoftLabelsError, match=r"teacher's labels \['a', 'b', 'c'\] are not the "
                                              r"task's labels \['a', 'b'\]"):
        soft.ordered_as(["a", "b"])


def rewrite(path, edit):
    lines = open(path, encoding="utf-8").read().splitlines()
    lines = edit(lines)
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def change(line, **values):
    return json.dumps(dict(json.loads(line), **values))


@pytest.mark.parametrize("edit, message", [
    (lambda lines: lines[:-1], r"1 examples, but the header says 2: the file is incomplete"),
    (lambda lines: lines + [lines[-1]], r":4: guid 'transfer-1' occurs twice"),
    (lambda lines: [lines[0], lines[1][:-3]], r":2: not a JSON line"),
    (lambda lines: [lines[0], change(lines[1], logits=[1.0]), lines[2]],
     r":2: logits must be 2 finite numbers"),
    (lambda lines: [lines[0], lines[1], change(lines[2], logits=[1.0, float("nan")])],
     r":3: logits must be 2 finite numbers"),
    (lambda lines: [lines[0], change(lines[1], text_a=None), lines[2]],
     r":2: guid and text_a must be strings"),
    (lambda lines: [lines[0], json.dumps({"guid": "x", "logits": [1, 2]})],
     r":2: no 'text_a'"),
    (lambda lines: lines[1:], r":1: the first line is not a soft-label header"),
    (lambda lines: [change(lines[0], version=2)] + lines[1:], r":1: format version 2"),
    (lambda lines: [change(lines[0], labels=["a", "a"])] + lines[1:],
     r":1: labels must be a list of distinct class names"),
    (lambda lines: [change(lines[0], kind="ranking")] + lines[1:], r":1: kind 'ranking'"),
    (lambda lines: [], r": empty file"),
])
def test_malformed_files_name_file_and_line(tmp_path, edit, message):
    path = write_file(tmp_path)[0]
    rewrite(path, edit)
    with pytest.raises(SoftLabelsError, match=message) as raised:
        soft_labels.read(path)
    assert str(raised.value).startswith(path)


def test_write_refuses_a_count_mismatch_and_keeps_the_old_file(tmp_path):
    path, examples, logits = write_file(tmp_path)
    before = open(path, "rb").read()
    head = soft_labels.header("sst-2", "classification", ["neg", "pos"], 3, "t", 1, [])
    with pytest.raises(ValueError, match="2 examples, 2 rows of logits, header says 3"):
        soft_labels.write(path, head, examples, logits)
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["soft_labels.jsonl"]


def test_a_write_that_fails_half_way_leaves_the_old_file(tmp_path, monkeypatch):
    path, examples, logits = write_file(tmp_path)
    before = open(path, "rb").read()
    calls = []

    def failing_dumps(value, **kwargs):
        calls.append(value)
        if len(calls) == 3:
            raise OSError("disk full")
        return json.dumps(value, **kwargs)
    monkeypatch.setattr(soft_labels.json, "dumps", failing_dumps)
    head = soft_labels.header("sst-2", "classification", ["neg", "pos"], 2, "other", 9, [])
    with pytest.raises(OSError, match="disk full"):
        soft_labels.write(path, head, examples, logits)
    monkeypatch.undo()
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["soft_labels.jsonl"]
