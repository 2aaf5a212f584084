"""Tests for classifier_data.py: every task on tiny files in GLUE's (and XNLI's) layouts, the
generic task in each file format, error messages, and submission files."""
import json
import logging
import os

import pytest

import classifier_data
from classifier_data import DataError, get_task

# A sentence with quotes that csv quoting would eat: it opens with an unbalanced quote, which with
# quoting on would swallow the following rows. It must survive verbatim.
QUOTED = '"Unbalanced, he said \'so\' and left'
QUOTED_2 = 'She wrote "yes" twice: ""yes""'


def _write(directory, name, rows, header=None, newline="\n"):
    """Writes rows (lists of cells, or ready lines) tab-separated under directory/name."""
    path = os.path.join(str(directory), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = [] if header is None else ["\t".join(header)]
    lines += [row if isinstance(row, str) else "\t".join(row) for row in rows]
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(line + newline for line in lines))
    return path


def _read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _texts(examples):
    return [(e.text_a, e.text_b, e.label) for e in examples]


# ---------------------------------------------------------------------------
# GLUE tasks.
# ---------------------------------------------------------------------------


def test_cola_train_and_dev_have_no_header(tmp_path):
    # [source, label, original mark, sentence]; the mark is empty for acceptable sentences.
    rows = [["gj04", "1", "", "Our friends won't buy this analysis."],
            ["gj04", "0", "*", QUOTED],
            ["gj04", "1", "", QUOTED_2]]
    _write(tmp_path, "train.tsv", rows)
    _write(tmp_path, "dev.tsv", rows[:2])
    _write(tmp_path, "test.tsv", [["0", QUOTED], ["1", "Bill left."]], header=["index", "sentence"])
    task = get_task("CoLA")
    assert (task.name, task.labels, task.is_regression, task.multi_label) == \
        ("cola", ["0", "1"], False, False)
    assert task.metric_names == ("mcc", "accuracy") and task.main_metric == "mcc"
    train = task.train_examples(str(tmp_path))
    assert _texts(train) == [("Our friends won't buy this analysis.", None, "1"),
                             (QUOTED, None, "0"), (QUOTED_2, None, "1")]
    assert [e.guid for e in train] == ["train-0", "train-1", "train-2"]
    assert [e.line for e in train] == [1, 2, 3]  # no header: the first line is data
    assert list(task.dev_sets(str(tmp_path))) == ["dev"]
    test = task.test_sets(str(tmp_path))["test"]
    assert [(e.guid, e.text_a, e.label, e.line) for e in test] == \
        [("0", QUOTED, None, 2), ("1", "Bill left.", None, 3)]


def test_cola_wrong_column_count_names_file_and_line(tmp_path):
    path = _write(tmp_path, "train.tsv", [["gj04", "1", "", "Fine."], ["gj04", "1", "Broken."]])
    with pytest.raises(DataError, match=rf"{path}:2: 3 columns, expected 4"):
        get_task("cola").train_examples(str(tmp_path))


def test_sst2(tmp_path):
    _write(tmp_path, "train.tsv", [["it 's a charming journey . ", "1"], [QUOTED, "0"]],
           header=["sentence", "label"])
    _write(tmp_path, "test.tsv", [["0", "uneasy mishmash"]], header=["index", "sentence"])
    task = get_task("sst-2")
    assert task.labels == ["0", "1"] and task.metric_names == ("accuracy",)
    train = task.train_examples(str(tmp_path))
    # Text is kept verbatim, trailing space included.
    assert _texts(train) == [("it 's a charming journey . ", None, "1"), (QUOTED, None, "0")]
    assert train[0].line == 2
    assert _texts(task.test_sets(str(tmp_path))["test"]) == [("uneasy mishmash", None, None)]


def test_mrpc(tmp_path):
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    rows = [["1", "702876", "702977", QUOTED, "Referring to him as only \"the witness\"."],
            ["0", "2108705", "2108831", "Yucaipa owned Dominick 's .", "Yucaipa bought it ."]]
    path = _write(tmp_path, "train.tsv", rows, header=header)
    with open(path, "rb") as f:  # MRPC's header may start with a byte-order mark
        data = f.read()
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + data)
    _write(tmp_path, "dev.tsv", rows, header=header)
    _write(tmp_path, "test.tsv", [["0", "1089874", "1089925", "PCCW 's chief .", "Mr Chan ."]],
           header=["index", "#1 ID", "#2 ID", "#1 String", "#2 String"])
    task = get_task("mrpc")
    assert task.metric_names == ("f1", "accuracy") and task.main_metric == "f1"
    assert _texts(task.train_examples(str(tmp_path))) == \
        [(QUOTED, "Referring to him as only \"the witness\".", "1"),
         ("Yucaipa owned Dominick 's .", "Yucaipa bought it .", "0")]
    assert len(task.dev_sets(str(tmp_path))["dev"]) == 2
    test = task.test_sets(str(tmp_path))["test"]
    assert [(e.guid, e.text_a, e.text_b) for e in test] == [("0", "PCCW 's chief .", "Mr Chan .")]


STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2",
               "sentence1", "sentence2"]


def test_stsb_is_regression(tmp_path):
    meta = ["main-captions", "MSRvid", "2012test", "0001", "none", "none"]
    _write(tmp_path, "train.tsv", [["0"] + meta + ["A plane is taking off.", QUOTED, "5.000"],
                                   ["1"] + meta + ["A man plays.", "A man sings.", "0.750"]],
           header=STSB_HEADER + ["score"])
    _write(tmp_path, "test.tsv", [["0"] + meta + ["A girl.", "A boy."]], header=STSB_HEADER)
    task = get_task("STS-B")
    assert task.is_regression and task.labels is None and task.num_labels == 1
    assert task.metric_names == ("pearson", "spearman") and task.main_metric == "pearson"
    assert _texts(task.train_examples(str(tmp_path))) == \
        [("A plane is taking off.", QUOTED, 5.0), ("A man plays.", "A man sings.", 0.75)]
    assert task.label_id(0.75) == 0.75
    assert _texts(task.test_sets(str(tmp_path))["test"]) == [("A girl.", "A boy.", None)]


def test_stsb_score_must_be_a_number(tmp_path):
    meta = ["g", "f", "y", "o", "s1", "s2"]
    path = _write(tmp_path, "train.tsv", [["0"] + meta + ["a", "b", "high"]],
                  header=STSB_HEADER + ["score"])
    with pytest.raises(DataError, match=rf"{path}:2: .*must be a number, got 'high'"):
        get_task("stsb").train_examples(str(tmp_path))


def test_qqp_skips_malformed_rows_and_counts_them(tmp_path, caplog):
    header = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    rows = [["133273", "213221", "213222", "How is the life of a math student?", QUOTED, "0"],
            ["402555", "536040", "How do I control my horny emotions?"],     # too few columns
            ["360472", "364011", "490273", "What causes stool color to change?", "Why?", "1",
             "extra"],                                                      # too many
            ["150662", "155721", "7256", "What can one do after MBBS?", "After MBBS?", "1"]]
    path = _write(tmp_path, "train.tsv", rows, header=header)
    _write(tmp_path, "test.tsv", [["0", "Why do rockets look white?", "Why are rockets white?"]],
           header=["id", "question1", "question2"])
    task = get_task("qqp")
    assert task.metric_names == ("f1", "accuracy") and task.main_metric == "f1"
    with caplog.at_level(logging.WARNING, logger="classifier_data"):
        train = task.train_examples(str(tmp_path))
    assert [(e.label, e.line) for e in train] == [("0", 2), ("1", 5)]
    assert train[0].text_b == QUOTED
    assert [e.guid for e in train] == ["train-0", "train-1"]
    assert task.skipped_rows == {path: 2}
    assert "skipped 2 malformed row(s)" in caplog.text and "lines 3, 4" in caplog.text
    test = task.test_sets(str(tmp_path))["test"]
    assert [(e.guid, e.text_a, e.text_b) for e in test] == \
        [("0", "Why do rockets look white?", "Why are rockets white?")]


MNLI_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
               "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
               "sentence2"]


def _mnli_row(index, premise, hypothesis, *labels):
    parses = ["( ( x ) )", "( ( y ) )", "(ROOT (S x))", "(ROOT (S y))"]
    return [str(index), "31193", f"{index}n", "government"] + parses + [premise, hypothesis] + \
        list(labels)


def _write_mnli(directory):
    _write(directory, "train.tsv",
           [_mnli_row(0, "Conceptually cream skimming", QUOTED, "neutral", "neutral"),
            _mnli_row(1, "you know during the season", "You lose.", "entailment", "entailment")],
           header=MNLI_HEADER + ["label1", "gold_label"])
    dev_header = MNLI_HEADER + [f"label{i}" for i in range(1, 6)] + ["gold_label"]
    five = ["neutral", "contradiction", "contradiction", "contradiction", "contradiction"]
    _write(directory, "dev_matched.tsv", [_mnli_row(0, "The new rights", "Everyone", *five,
                                                    "contradiction")], header=dev_header)
    _write(directory, "dev_mismatched.tsv",
           [_mnli_row(0, "Your contribution", "Gift", *five, "neutral"),
            _mnli_row(1, "Second", "Pair", *five, "entailment")], header=dev_header)
    _write(directory, "test_matched.tsv", [_mnli_row(9847, "Hierbas", "Hierbas is a name")],
           header=MNLI_HEADER)
    _write(directory, "test_mismatched.tsv",
           [_mnli_row(0, "What have you decided", "I want to know"),
            _mnli_row(1, "Yes, that's right.", "Yes.")], header=MNLI_HEADER)


def test_mnli_matched_and_mismatched(tmp_path):
    _write_mnli(tmp_path)
    task = get_task("MNLI")
    assert task.labels == ["contradiction", "entailment", "neutral"]
    assert task.metric_names == ("accuracy",)
    assert _texts(task.train_examples(str(tmp_path))) == \
        [("Conceptually cream skimming", QUOTED, "neutral"),
         ("you know during the season", "You lose.", "entailment")]
    dev = task.dev_sets(str(tmp_path))
    assert list(dev) == ["dev_matched", "dev_mismatched"]
    # The label is gold_label (the last column), not label1.
    assert [e.label for e in dev["dev_matched"]] == ["contradiction"]
    assert [e.label for e in dev["dev_mismatched"]] == ["neutral", "entailment"]
    assert [e.guid for e in dev["dev_mismatched"]] == ["dev_mismatched-0", "dev_mismatched-1"]
    test = task.test_sets(str(tmp_path))
    assert list(test) == ["test_matched", "test_mismatched"]
    assert [(e.guid, e.text_b, e.label) for e in test["test_matched"]] == \
        [("9847", "Hierbas is a name", None)]
    assert task.submission_file("test_matched") == "MNLI-m.tsv"
    assert task.submission_file("test_mismatched") == "MNLI-mm.tsv"
    assert get_task("mnli-mm").name == "mnli"


def test_unknown_label_in_dev_names_file_and_line(tmp_path):
    _write_mnli(tmp_path)
    dev_header = MNLI_HEADER + [f"label{i}" for i in range(1, 6)] + ["gold_label"]
    five = ["neutral"] * 5
    path = _write(tmp_path, "dev_matched.tsv",
                  [_mnli_row(0, "a", "b", *five, "neutral"), _mnli_row(1, "a", "b", *five, "-")],
                  header=dev_header)
    with pytest.raises(DataError, match=rf"{path}:3: unknown label '-'"):
        get_task("mnli").dev_sets(str(tmp_path))


def test_missing_header_column_is_an_error(tmp_path):
    path = _write(tmp_path, "train.tsv", [["a", "b", "entailment"]],
                  header=["premise", "hypothesis", "label"])
    with pytest.raises(DataError, match=rf"{path}:1: no column 'sentence1'"):
        get_task("rte").train_examples(str(tmp_path))


@pytest.mark.parametrize("name,columns,labels,submission", [
    ("qnli", ["question", "sentence"], ["entailment", "not_entailment"], "QNLI.tsv"),
    ("rte", ["sentence1", "sentence2"], ["entailment", "not_entailment"], "RTE.tsv"),
    ("wnli", ["sentence1", "sentence2"], ["0", "1"], "WNLI.tsv"),
])
def test_index_a_b_label_tasks(tmp_path, name, columns, labels, submission):
    _write(tmp_path, "train.tsv", [["0", QUOTED, "Second text.", labels[1]],
                                   ["1", "First.", QUOTED_2, labels[0]]],
           header=["index"] + columns + ["label"])
    _write(tmp_path, "dev.tsv", [["0", "a", "b", labels[0]]],
           header=["index"] + columns + ["label"])
    _write(tmp_path, "test.tsv", [["5", "c", "d"], ["3", "e", "f"]], header=["index"] + columns)
    task = get_task(name.upper())
    assert task.labels == labels and task.metric_names == ("accuracy",)
    assert _texts(task.train_examples(str(tmp_path))) == \
        [(QUOTED, "Second text.", labels[1]), ("First.", QUOTED_2, labels[0])]
    assert _texts(task.dev_sets(str(tmp_path))["dev"]) == [("a", "b", labels[0])]
    test = task.test_sets(str(tmp_path))["test"]
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in test] == \
        [("5", "c", "d", None), ("3", "e", "f", None)]
    assert task.submission_file("test") == submission


def test_ax_diagnostic_found_from_several_folders(tmp_path):
    glue = tmp_path / "glue_data"
    path = _write(glue / "diagnostic", "diagnostic.tsv",
                  [["0", "The cat sat on the mat.", "The cat did not sit on the mat."],
                   ["1", QUOTED, "b"]], header=["index", "sentence1", "sentence2"])
    (glue / "MNLI").mkdir()
    task = get_task("ax")
    assert task.labels == get_task("mnli").labels
    for data_dir in (glue / "diagnostic", glue, glue / "MNLI"):
        test = task.test_sets(str(data_dir))
        assert list(test) == ["test"]
        assert [(e.guid, e.text_a, e.line) for e in test["test"]] == \
            [("0", "The cat sat on the mat.", 2), ("1", QUOTED, 3)]
    assert task.dev_sets(str(glue)) == {}
    with pytest.raises(ValueError, match="MNLI"):
        task.train_examples(str(glue))
    assert task.submission_file("test") == "AX.tsv"
    os.remove(path)
    with pytest.raises(FileNotFoundError, match="diagnostic.tsv"):
        task.test_sets(str(glue))


XNLI_HEADER = ["language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
               "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "promptID",
               "pairID", "genre", "label1", "label2", "label3", "label4", "label5"]


def _xnli_row(language, label, premise, hypothesis):
    return [language, label, "", "", "", "", premise, hypothesis, "1", "1", "facetoface",
            label, label, label, label, label]


def test_xnli_language_filter_and_contradictory(tmp_path):
    _write(tmp_path / "multinli", "multinli.train.zh.tsv",
           [["从 概念 上 看", "你 知道", "contradictory"], [QUOTED, "好", "entailment"]],
           header=["premise", "hypo", "label"])
    rows = [_xnli_row("en", "neutral", "Well, I wasn't even thinking.", "I havent spoken."),
            _xnli_row("zh", "contradiction", "嗯，我根本没想过", "我没有再和他说话。"),
            _xnli_row("de", "entailment", "Und er hat gesagt", "Er rief."),
            _xnli_row("zh", "neutral", QUOTED, "他说")]
    _write(tmp_path, "xnli.dev.tsv", rows, header=XNLI_HEADER)
    _write(tmp_path / "XNLI-1.0", "xnli.test.tsv", rows[:2], header=XNLI_HEADER)
    task = get_task("xnli")  # language "zh" by default, as the original
    assert task.language == "zh" and task.labels == ["contradiction", "entailment", "neutral"]
    assert _texts(task.train_examples(str(tmp_path))) == \
        [("从 概念 上 看", "你 知道", "contradiction"), (QUOTED, "好", "entailment")]
    dev = task.dev_sets(str(tmp_path))["dev"]
    assert _texts(dev) == [("嗯，我根本没想过", "我没有再和他说话。", "contradiction"),
                           (QUOTED, "他说", "neutral")]
    assert [e.line for e in dev] == [3, 5]
    test = task.test_sets(str(tmp_path))["test"]  # found in XNLI-1.0/; labelled
    assert [(e.guid, e.label) for e in test] == [("0", "contradiction")]
    english = get_task("xnli", language="en")
    assert _texts(english.dev_sets(str(tmp_path))["dev"]) == \
        [("Well, I wasn't even thinking.", "I havent spoken.", "neutral")]
    with pytest.raises(FileNotFoundError, match="multinli.train.en.tsv"):
        english.train_examples(str(tmp_path))
    with pytest.raises(DataError, match="xnli.dev.tsv: no examples for language 'fr'"):
        get_task("xnli", language="fr").dev_sets(str(tmp_path))
    with pytest.raises(ValueError, match="unknown XNLI language 'xx'"):
        get_task("xnli", language="xx")


# ---------------------------------------------------------------------------
# File-level errors and line handling.
# ---------------------------------------------------------------------------


def test_empty_file_names_the_file(tmp_path):
    path = _write(tmp_path, "train.tsv", [])
    with pytest.raises(DataError, match=rf"{path}: empty file"):
        get_task("sst-2").train_examples(str(tmp_path))
    path = _write(tmp_path, "train.tsv", [], header=["sentence", "label"])  # header only
    with pytest.raises(DataError, match=rf"{path}: no examples"):
        get_task("sst-2").train_examples(str(tmp_path))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "train.tsv")) as info:
        get_task("rte").train_examples(str(tmp_path))
    assert "RTE" in str(info.value)
    with pytest.raises(FileNotFoundError, match="dev_mismatched.tsv"):
        _write_mnli(tmp_path)
        os.remove(tmp_path / "dev_mismatched.tsv")
        get_task("mnli").dev_sets(str(tmp_path))


def test_crlf_blank_lines_and_invalid_utf8(tmp_path):
    _write(tmp_path, "train.tsv", [["a \"b\"", "1"], "", ["c\rd", "0"]],
           header=["sentence", "label"], newline="\r\n")
    examples = get_task("sst-2").train_examples(str(tmp_path))
    # "\r\n" endings dropped; a blank line skipped; a "\r" inside a line is text, not a break.
    assert [(e.text_a, e.label, e.line) for e in examples] == \
        [("a \"b\"", "1", 2), ("c\rd", "0", 4)]
    path = os.path.join(str(tmp_path), "train.tsv")
    with open(path, "wb") as f:
        f.write(b"sentence\tlabel\nok\t1\nbad \xff byte\t0\n")
    with pytest.raises(DataError, match=rf"{path}:3: not valid UTF-8"):
        get_task("sst-2").train_examples(str(tmp_path))


# ---------------------------------------------------------------------------
# Submissions.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,file", [
    ("cola", "CoLA.tsv"), ("sst-2", "SST-2.tsv"), ("mrpc", "MRPC.tsv"), ("sts-b", "STS-B.tsv"),
    ("qqp", "QQP.tsv"), ("qnli", "QNLI.tsv"), ("rte", "RTE.tsv"), ("wnli", "WNLI.tsv"),
    ("ax", "AX.tsv")])
def test_submission_file_names(name, file):
    task = get_task(name)
    assert task.submission_file("test") == file
    with pytest.raises(ValueError, match="no test set 'dev'"):
        task.submission_file("dev")


def test_write_submission_uses_index_column_and_order(tmp_path):
    data = tmp_path / "data"
    _write_mnli(data)
    task = get_task("mnli")
    test = task.test_sets(str(data))["test_mismatched"]
    path = str(tmp_path / "out" / task.submission_file("test_mismatched"))
    task.write_submission(path, test, [2, 1])
    assert _read(path) == "index\tprediction\n0\tneutral\n1\tentailment\n"
    assert os.listdir(tmp_path / "out") == ["MNLI-mm.tsv"]  # no temporary file left
    # Class indices -> GLUE's strings.
    assert get_task("cola").submission_label(1) == "1"
    assert get_task("qnli").submission_label(1) == "not_entailment"
    import numpy as np
    assert get_task("rte").submission_label(np.int64(0)) == "entailment"
    with pytest.raises(ValueError, match="out of range"):
        task.write_submission(path, test, [0, 3])
    with pytest.raises(ValueError, match="2 examples but 1 predictions"):
        task.write_submission(path, test, [0])
    assert _read(path) == "index\tprediction\n0\tneutral\n1\tentailment\n"  # unchanged


def test_write_submission_keeps_the_files_index_values(tmp_path):
    _write(tmp_path, "test.tsv", [["17", "c"], ["4", "d"], ["9", "e"]],
           header=["index", "sentence"])
    task = get_task("sst2")
    test = task.test_sets(str(tmp_path))["test"]
    path = str(tmp_path / "SST-2.tsv")
    task.write_submission(path, test, [1, 0, 1])
    assert _read(path) == "index\tprediction\n17\t1\n4\t0\n9\t1\n"


def test_stsb_submission_is_clipped_float(tmp_path):
    task = get_task("sts-b")
    assert task.submission_label(3.25) == "3.25"
    assert task.submission_label(-0.4) == "0.0"
    assert task.submission_label(5.7) == "5.0"
    with pytest.raises(ValueError, match="finite"):
        task.submission_label(float("nan"))
    examples = [classifier_data.InputExample("0", "a", "b"), classifier_data.InputExample("1", "c")]
    path = str(tmp_path / "STS-B.tsv")
    task.write_submission(path, examples, [4.5, 1.0])
    assert _read(path) == "index\tprediction\n0\t4.5\n1\t1.0\n"


# ---------------------------------------------------------------------------
# The generic task.
# ---------------------------------------------------------------------------


def test_generic_tsv_with_named_columns_collects_sorted_labels(tmp_path):
    _write(tmp_path, "train.tsv", [["x1", QUOTED, "b1", "sports"], ["x2", "a2", "b2", "arts"],
                                   ["x3", "a3", "b3", "politics"]],
           header=["id", "premise", "hypothesis", "topic"])
    _write(tmp_path, "dev.tsv", [["y", "a", "b", "arts"]],
           header=["id", "premise", "hypothesis", "topic"])
    _write(tmp_path, "test.tsv", [["z7", "a", "b"]], header=["id", "premise", "hypothesis"])
    task = get_task("generic", text_a_column="premise", text_b_column="hypothesis",
                    label_column="topic", index_column="id")
    assert task.labels is None
    train = task.train_examples(str(tmp_path))
    assert task.labels == ["arts", "politics", "sports"]  # sorted, not in order of appearance
    assert task.metric_names == ("accuracy", "f1_macro") and task.main_metric == "accuracy"
    assert _texts(train) == [(QUOTED, "b1", "sports"), ("a2", "b2", "arts"),
                             ("a3", "b3", "politics")]
    assert [e.guid for e in train] == ["train-0", "train-1", "train-2"]
    assert [task.label_id(e.label) for e in train] == [2, 0, 1]
    assert _texts(task.dev_sets(str(tmp_path))["dev"]) == [("a", "b", "arts")]
    test = task.test_sets(str(tmp_path))["test"]  # no label column: unlabelled
    assert [(e.guid, e.label) for e in test] == [("z7", None)]
    path = str(tmp_path / task.submission_file("test"))
    task.write_submission(path, test, [1])
    assert _read(path) == "index\tprediction\nz7\tpolitics\n"


def test_generic_labels_from_training_file_when_dev_is_read_first(tmp_path):
    _write(tmp_path, "train.tsv", [["a", "yes"], ["b", "no"]], header=["text", "answer"])
    path = _write(tmp_path, "dev.tsv", [["c", "no"], ["d", "maybe"]], header=["text", "answer"])
    task = get_task("generic", text_a_column="text", label_column="answer")
    with pytest.raises(DataError, match=rf"{path}:3: unknown label 'maybe'"):
        task.dev_sets(str(tmp_path))
    assert task.labels == ["no", "yes"]
    assert task.metric_names == ("accuracy", "f1_macro", "f1")  # two labels: binary F1 too
    os.remove(os.path.join(str(tmp_path), "train.tsv"))
    # At prediction time the script passes the saved labels back.
    given = get_task("generic", text_a_column="text", label_column="answer",
                     labels=["yes", "no", "maybe"])
    assert [given.label_id(e.label) for e in given.dev_sets(str(tmp_path))["dev"]] == [1, 2]
    with pytest.raises(ValueError, match="labels are not known"):
        get_task("generic", text_a_column="text", label_column="answer").dev_sets(str(tmp_path))


def test_generic_numbered_columns_without_header(tmp_path):
    _write(tmp_path, "train.tsv", [["1", "first text", "pos"], ["2", "second", "neg"]])
    _write(tmp_path, "test.tsv", [["3", "third"]])
    for a, label in ((1, 2), ("1", "2")):
        task = get_task("generic", text_a_column=a, label_column=label, has_header=False)
        train = task.train_examples(str(tmp_path))
        assert _texts(train) == [("first text", None, "pos"), ("second", None, "neg")]
        assert [e.line for e in train] == [1, 2]
        # The label position is past the test file's last column: unlabelled.
        test = task.test_sets(str(tmp_path))["test"]
        assert [(e.guid, e.text_a, e.label) for e in test] == [("0", "third", None)]
    task = get_task("generic", text_a_column="text", label_column=2, has_header=False)
    with pytest.raises(DataError, match="no header"):
        task.train_examples(str(tmp_path))


def test_generic_numbered_columns_with_header(tmp_path):
    _write(tmp_path, "train.tsv", [["x", "1"]], header=["text", "label"])
    task = get_task("generic", text_a_column=0, label_column="1")
    assert _texts(task.train_examples(str(tmp_path))) == [("x", None, "1")]


def test_generic_wrong_column_count_names_file_and_line(tmp_path):
    path = _write(tmp_path, "train.tsv", [["a", "x"], ["b", "y", "extra"]], header=["t", "l"])
    with pytest.raises(DataError, match=rf"{path}:3: 3 columns, expected 2"):
        get_task("generic", text_a_column="t", label_column="l").train_examples(str(tmp_path))


def test_generic_csv_quoting_and_line_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('text,other,label\n'
                    '"Hello, world",x,greeting\n'
                    '"A ""quoted"" word\nacross two lines",y,other\n'
                    'plain,z,greeting\n', encoding="utf-8")
    task = get_task("generic", text_a_column="text", text_b_column="other", label_column="label")
    train = task.train_examples(str(tmp_path))
    assert _texts(train) == [("Hello, world", "x", "greeting"),
                             ('A "quoted" word\nacross two lines', "y", "other"),
                             ("plain", "z", "greeting")]
    assert [e.line for e in train] == [2, 3, 5]
    (tmp_path / "dev.csv").write_text("text,other,label\na,b,greeting\nc,d,farewell\n")
    with pytest.raises(DataError, match=r"dev.csv:3: unknown label 'farewell'"):
        task.dev_sets(str(tmp_path))


def test_generic_jsonl_and_json(tmp_path):
    records = [{"q": QUOTED, "tags": ["b", "a"], "id": 10},
               {"q": "second", "tags": "c, a", "id": 11},
               {"q": "third", "tags": [], "id": 12}]
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "test.json").write_text(
        json.dumps([{"q": "t1", "id": 20}, {"q": "t2", "id": 21}], indent=1), encoding="utf-8")
    task = get_task("generic", text_a_column="q", label_column="tags", multi_label=True,
                    index_column="id")
    train = task.train_examples(str(tmp_path))
    assert task.labels == ["a", "b", "c"]
    assert task.metric_names == ("f1_micro", "exact_match")
    assert _texts(train) == [(QUOTED, None, ["b", "a"]), ("second", None, ["c", "a"]),
                             ("third", None, [])]
    assert [e.line for e in train] == [1, 2, 3]
    assert [task.label_id(e.label) for e in train] == [[1, 1, 0], [1, 0, 1], [0, 0, 0]]
    test = task.test_sets(str(tmp_path))["test"]
    assert [(e.guid, e.text_a, e.label, e.line) for e in test] == \
        [("20", "t1", None, 2), ("21", "t2", None, 6)]  # the lines where "{" is
    path = str(tmp_path / "out.tsv")
    task.write_submission(path, test, [[1, 0, 1], [0, 0, 0]])
    assert _read(path) == "index\tprediction\n20\ta,c\n21\t\n"


def test_generic_multi_label_in_tsv_and_unknown_name(tmp_path):
    _write(tmp_path, "train.tsv", [["t1", "x|y"], ["t2", "y"]], header=["text", "labels"])
    path = _write(tmp_path, "dev.tsv", [["t3", "y|z"]], header=["text", "labels"])
    task = get_task("generic", text_a_column="text", label_column="labels", multi_label=True,
                    label_separator="|")
    assert [e.label for e in task.train_examples(str(tmp_path))] == [["x", "y"], ["y"]]
    with pytest.raises(DataError, match=rf"{path}:2: unknown label 'z'"):
        task.dev_sets(str(tmp_path))


def test_generic_regression_jsonl(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"s": "a", "y": 0.5}\n\n{"s": "b", "y": "2"}\n'
                                          '{"s": "c", "y": "n/a"}\n')
    task = get_task("generic", text_a_column="s", label_column="y", regression=True)
    assert task.metric_names == ("pearson", "spearman") and task.is_regression
    with pytest.raises(DataError, match=r"train.jsonl:4: .*must be a number, got 'n/a'"):
        task.train_examples(str(tmp_path))
    (tmp_path / "train.jsonl").write_text('{"s": "a", "y": 0.5}\n\n{"s": "b", "y": "2"}\n')
    assert _texts(task.train_examples(str(tmp_path))) == [("a", None, 0.5), ("b", None, 2.0)]
    assert task.labels is None and task.submission_label(7.25) == "7.25"  # no clipping


def test_generic_json_errors(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"s": "a", "y": "p"}\n{"s": "b", "y": "q"\n')
    task = get_task("generic", text_a_column="s", label_column="y")
    with pytest.raises(DataError, match=r"train.jsonl:2: not valid JSON"):
        task.train_examples(str(tmp_path))
    (tmp_path / "train.jsonl").write_text('{"s": "a", "y": "p"}\n{"s": "b"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:2: no key 'y'"):
        task.train_examples(str(tmp_path))
    (tmp_path / "train.jsonl").write_text('{"s": 5, "y": "p"}\n')
    with pytest.raises(DataError, match=r"train.jsonl:1: the text_a must be a string"):
        task.train_examples(str(tmp_path))


def test_generic_file_discovery(tmp_path):
    task = get_task("generic", text_a_column="s", label_column="y")
    with pytest.raises(FileNotFoundError, match="train.tsv|csv|jsonl|json"):
        task.train_examples(str(tmp_path))
    (tmp_path / "train.tsv").write_text("")
    with pytest.raises(DataError, match=r"train.tsv: empty file"):
        task.train_examples(str(tmp_path))
    (tmp_path / "train.csv").write_text("s,y\na,b\n")
    with pytest.raises(ValueError, match="several train files"):
        task.train_examples(str(tmp_path))
    csv_task = get_task("generic", text_a_column="s", label_column="y", file_format="csv")
    assert _texts(csv_task.train_examples(str(tmp_path))) == [("a", None, "b")]
    with pytest.raises(ValueError, match="file_format"):
        get_task("generic", text_a_column="s", label_column="y", file_format="xml")


# ---------------------------------------------------------------------------
# Task names and properties.
# ---------------------------------------------------------------------------


def test_get_task_names_and_aliases():
    assert classifier_data.TASK_NAMES == ("cola", "sst-2", "mrpc", "sts-b", "qqp", "mnli", "qnli",
                                          "rte", "wnli", "ax", "xnli", "generic")
    for alias, name in (("SST2", "sst-2"), ("sts_b", "sts-b"), ("StsB", "sts-b"),
                        ("MNLI-MM", "mnli"), ("diagnostic", "ax"), (" Rte ", "rte")):
        assert get_task(alias).name == name
    with pytest.raises(ValueError, match="unknown task 'squad'.*cola, sst-2.*generic"):
        get_task("squad")
    with pytest.raises(TypeError, match="takes no options"):
        get_task("cola", language="en")
    with pytest.raises(TypeError):
        get_task("generic", text_a_column="a")  # label_column is required


def test_task_properties():
    expected = {"cola": ("mcc", 2), "sst-2": ("accuracy", 2), "mrpc": ("f1", 2),
                "sts-b": ("pearson", 1), "qqp": ("f1", 2), "mnli": ("accuracy", 3),
                "qnli": ("accuracy", 2), "rte": ("accuracy", 2), "wnli": ("accuracy", 2),
                "ax": ("mcc", 3), "xnli": ("accuracy", 3)}
    for name, (main_metric, num_labels) in expected.items():
        task = get_task(name)
        assert (task.main_metric, task.num_labels) == (main_metric, num_labels), name
        assert task.main_metric == task.metric_names[0]
    with pytest.raises(ValueError, match="not known yet"):
        _ = get_task("generic", text_a_column="a", label_column="b").num_labels


def test_labels_from_examples():
    make = classifier_data.InputExample
    assert classifier_data.labels_from_examples(
        [make("1", "a", label="b"), make("2", "a", label="a"), make("3", "a", label="b"),
         make("4", "a")]) == ["a", "b"]
    assert classifier_data.labels_from_examples(
        [make("1", "a", label=["z", "x"]), make("2", "a", label=["y"])]) == ["x", "y", "z"]
    with pytest.raises(ValueError, match="not a class name"):
        classifier_data.labels_from_examples([make("1", "a", label=0.5)])


# ---------------------------------------------------------------------------
# Transfer sets (distillation): the training file's layout, labels optional.
# ---------------------------------------------------------------------------


def test_transfer_file_in_the_training_layout_with_or_without_labels(tmp_path):
    sst2 = get_task("sst-2")
    with_labels = _write(tmp_path, "labelled.tsv", [["a b .", "1"], ["c d .", ""]],
                         header=["sentence", "label"])
    without = _write(tmp_path, "plain.tsv", [["e f ."], [QUOTED]], header=["sentence"])
    examples = sst2.transfer_examples(with_labels)
    assert [(e.guid, e.text_a, e.label, e.line) for e in examples] == [
        ("transfer-0", "a b .", "1", 2), ("transfer-1", "c d .", None, 3)]
    examples = sst2.transfer_examples(without, "transfer2")
    assert [(e.guid, e.text_a, e.label) for e in examples] == [
        ("transfer2-0", "e f .", None), ("transfer2-1", QUOTED, None)]
    # CoLA's training layout has no header: source, label, mark, sentence.
    cola = _write(tmp_path, "cola.tsv", [["src", "", "", "a sentence ."], ["src", "0", "*", "b ."]])
    assert _texts(get_task("cola").transfer_examples(cola)) == [
        ("a sentence .", None, None), ("b .", None, "0")]
    # A pair task keeps both texts; MNLI reads its columns by name, in any order.
    mnli = _write(tmp_path, "mnli.tsv", [["p .", "h ."]], header=["sentence2", "sentence1"])
    assert _texts(get_task("mnli").transfer_examples(mnli)) == [("h .", "p .", None)]


def test_transfer_file_errors_name_the_file(tmp_path):
    sst2 = get_task("sst-2")
    with pytest.raises(FileNotFoundError, match="laid out as the sst-2 training file"):
        sst2.transfer_examples(str(tmp_path / "missing.tsv"))
    bad = _write(tmp_path, "bad.tsv", [["a .", "1"], ["b .", "7"]], header=["sentence", "label"])
    with pytest.raises(DataError, match=rf"{bad}:3: unknown label '7'"):
        sst2.transfer_examples(bad)
    no_text = _write(tmp_path, "no_text.tsv", [["a ."]], header=["text"])
    with pytest.raises(DataError, match=r"no column 'sentence'"):
        sst2.transfer_examples(no_text)
    with pytest.raises(ValueError, match="no training data"):
        get_task("ax").transfer_examples(bad)


def test_generic_transfer_file_in_any_format(tmp_path):
    task = get_task("generic", text_a_column="q", text_b_column="a", label_column="y",
                    labels=["no", "yes"])
    path = tmp_path / "transfer.jsonl"
    path.write_text('{"q": "x ?", "a": "y ."}\n{"q": "z ?", "a": "w .", "y": "yes"}\n')
    assert [(e.guid, e.text_a, e.text_b, e.label) for e in task.transfer_examples(str(path))] == [
        ("transfer-0", "x ?", "y .", None), ("transfer-1", "z ?", "w .", "yes")]
    csv_path = tmp_path / "more.csv"
    csv_path.write_text('q,a\n"multi\nline ?",b .\n')
    assert _texts(task.transfer_examples(str(csv_path))) == [("multi\nline ?", "b .", None)]
    odd = tmp_path / "transfer.txt"
    odd.write_text("q\tlabel\n")
    with pytest.raises(DataError, match=rf"{odd}: unknown file format 'txt'"):
        task.transfer_examples(str(odd))


def test_kind_of_each_task():
    assert get_task("sst-2").kind == classifier_data.CLASSIFICATION
    assert get_task("sts-b").kind == classifier_data.REGRESSION
    assert get_task("generic", text_a_column=0, label_column=1,
                    regression=True).kind == classifier_data.REGRESSION
    assert get_task("generic", text_a_column=0, label_column=1,
                    multi_label=True).kind == classifier_data.MULTI_LABEL
    assert classifier_data.KINDS == ("classification", "regression", "multi_label")


def test_set_suffix_tells_the_second_set_of_a_task_apart():
    splits = {"dev_matched": [], "dev_mismatched": []}
    assert classifier_data.set_suffix("dev_matched", splits) == ""
    assert classifier_data.set_suffix("dev_mismatched", splits) == "_mismatched"
    assert classifier_data.set_suffix("test", {"test": []}) == ""


def test_main_metric_from_a_command_line_is_the_task_s():
    """classifier_data.main_metric (sweep.py's) names the metric run_classifier.py keeps its best
    checkpoint by (Task.main_metric)."""
    for name in classifier_data.TASK_NAMES:
        if name != "generic":
            assert classifier_data.main_metric(name) == get_task(name).main_metric, name
    assert [classifier_data.main_metric(name) for name in ("SST2", "mrpc", "CoLA", "STS_B")] == [
        "accuracy", "f1", "mcc", "pearson"]
    for options, expected in (({"labels": ["x", "y"]}, "accuracy"),
                              ({"regression": True}, "pearson"),
                              ({"labels": ["x", "y", "z"], "multi_label": True}, "f1_micro")):
        task = get_task("generic", text_a_column="a", label_column="b", **options)
        kind = {k: v for k, v in options.items() if k != "labels"}
        assert classifier_data.main_metric("Generic", **kind) == task.main_metric == expected
    with pytest.raises(classifier_data.InputError, match="unknown task 'nope'"):
        classifier_data.main_metric("nope")
