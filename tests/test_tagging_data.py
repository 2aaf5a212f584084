"""Tests for tagging_data.py: the readers (CoNLL-2003 as distributed, column files, JSON Lines),
their errors, the tag set, and the word-piece windows with predictions mapped back to words."""
import json
import os

import numpy as np
import pytest

import tagging_data
import tokenization
from classifier_data import DataError

# CoNLL-2003 as distributed: word, part of speech, chunk, entity (IOB1); -DOCSTART- lines.
CONLL = """-DOCSTART- -X- -X- O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP I-NP I-LOC
1996-08-22 CD I-NP O
"""
PIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ada", "moss", "lives", "in", "river",
          "##ton", "near", "ash", "##ford", "and", "the", "mill", ".", "works", "at", "bank", "of"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(PIECES) + "\n")
    return tokenization.FullTokenizer(str(path), do_lower_case=True)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- Readers ----------------------------------------------------------------------------------------

def test_conll_2003_as_distributed(tmp_path):
    path = write(tmp_path / "train.txt", CONLL)
    tagged = tagging_data.read_file(path)
    assert [s.words for s in tagged.sentences] == [
        ["EU", "rejects", "German", "call", "."], ["Peter", "Blackburn"],
        ["BRUSSELS", "1996-08-22"]]
    assert [s.tags for s in tagged.sentences] == [
        ["I-ORG", "O", "I-MISC", "O", "O"], ["I-PER", "I-PER"], ["I-LOC", "O"]]
    assert [(s.guid, s.line) for s in tagged.sentences] == [
        ("train-0", 3), ("train-1", 9), ("train-2", 14)]
    assert tagged.labelled and tagged.num_words == 9
    # Other columns are other tasks: part of speech, chunks.
    pos = tagging_data.read_file(path, tagging_data.Columns(tag=1))
    assert pos.sentences[0].tags == ["NNP", "VBZ", "JJ", "NN", "."]
    chunks = tagging_data.read_file(path, tagging_data.Columns(tag=2))
    assert chunks.sentences[1].tags == ["I-NP", "I-NP"]
    # Windows line endings and trailing blank lines change nothing.
    crlf = write(tmp_path / "crlf.txt", CONLL.replace("\n", "\r\n") + "\r\n\r\n")
    assert [(s.words, s.tags, s.line) for s in tagging_data.read_file(crlf).sentences] == [
        (s.words, s.tags, s.line) for s in tagged.sentences]


def test_generic_two_columns_and_json_lines(tmp_path):
    tsv = write(tmp_path / "dev.tsv", "Ada\tB-PER\nMoss\tI-PER\nsings\tO\n\n\nRiverton\tB-LOC\n")
    tagged = tagging_data.read_file(tsv, set_name="dev")
    assert [(s.guid, s.words, s.tags) for s in tagged.sentences] == [
        ("dev-0", ["Ada", "Moss", "sings"], ["B-PER", "I-PER", "O"]),
        ("dev-1", ["Riverton"], ["B-LOC"])]
    records = [{"tokens": ["Ada", "Moss"], "tags": ["B-PER", "I-PER"]},
               {"tokens": ["in", "Riverton"], "tags": ["O", "B-LOC"], "id": 7}]
    jsonl = write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    array = write(tmp_path / "train.json", json.dumps(records, indent=1))
    for path in (jsonl, array):
        tagged = tagging_data.read_file(path)
        assert [(s.words, s.tags) for s in tagged.sentences] == [
            (r["tokens"], r["tags"]) for r in records]
    assert [s.line for s in tagging_data.read_file(jsonl).sentences] == [1, 2]


def test_test_files_may_lack_tags(tmp_path):
    words = write(tmp_path / "test.txt", "Ada\nsings\n\nRiverton\n")
    tagged = tagging_data.read_file(words, set_name="test", tags_required=False)
    assert not tagged.labelled and [s.tags for s in tagged.sentences] == [None, None]
    # With --tag_column=3, a two-column file has no tag column either.
    two = write(tmp_path / "test2.txt", "Ada NNP\n")
    assert not tagging_data.read_file(two, tagging_data.Columns(tag=3),
                                      tags_required=False).labelled
    jsonl = write(tmp_path / "test.jsonl", '{"tokens": ["Ada"]}\n{"tokens": ["x", "y"]}\n')
    assert not tagging_data.read_file(jsonl, set_name="test", tags_required=False).labelled


def test_split_files_are_found_by_their_usual_names(tmp_path):
    write(tmp_path / "train.txt", "Ada B-PER\n")
    write(tmp_path / "valid.txt", "Moss B-PER\n")
    write(tmp_path / "eng.testb", "Riverton B-LOC\n")
    assert tagging_data.read_split(str(tmp_path), "dev").path.endswith("valid.txt")
    assert tagging_data.read_split(str(tmp_path), "test").sentences[0].words == ["Riverton"]
    write(tmp_path / "dev.jsonl", '{"tokens": ["Ada"], "tags": ["B-PER"]}\n')
    assert tagging_data.read_split(str(tmp_path), "dev").path.endswith("dev.jsonl")
    os.remove(tmp_path / "train.txt")
    with pytest.raises(FileNotFoundError) as error:
        tagging_data.read_split(str(tmp_path), "train")
    assert "train.txt or " in error.value.filename and "eng.train" in error.value.filename


@pytest.mark.parametrize("name, text, message", [
    ("train.txt", "Ada NNP B-PER\nsings VBZ\n", "train.txt:2: 2 columns, expected 3 (as on "
                                                "line 1)"),
    ("train.txt", "", "train.txt: no sentences (the file is empty)"),
    ("train.txt", "-DOCSTART- O\n\n\n", "train.txt: no sentences"),
    ("train.txt", "Ada\nsings\n", "train.txt:1: 1 column(s): no tag column -1 besides the word "
                                  "column 0"),
    ("train.jsonl", '{"tokens": ["Ada"], "tags": ["B-PER"]}\n{"tokens": ["x"]}\n',
     'train.jsonl:2: no "tags"'),
    ("test.jsonl", '{"tokens": ["Ada"], "tags": ["B-PER"]}\n{"tokens": ["x"]}\n',
     'test.jsonl:2: "tags" missing here but given on line 1'),
    ("train.jsonl", '{"tokens": ["Ada", "Moss"], "tags": ["B-PER"]}\n',
     "train.jsonl:1: 2 tokens but 1 tags"),
    ("train.jsonl", '\n{"tokens": ["New York"], "tags": ["B-LOC"]}\n',
     'train.jsonl:2: token "New York": each token must be one word'),
    ("train.jsonl", '{"tokens": [], "tags": []}\n', "train.jsonl:1: \"tokens\" must be a non-"),
    ("train.jsonl", '{"words": ["x"]}\n', 'train.jsonl:1: expected an object with "tokens"'),
    ("train.txt", "Ada B-PER\n\xff\n", "train.txt:2: not valid UTF-8"),
])
def test_bad_files_name_the_file_and_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(DataError) as error:
        tagging_data.read_file(str(path), tags_required=not name.startswith("test"))
    assert str(error.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message in str(error.value)


def test_tag_set_comes_from_training_and_foreign_tags_name_their_line(tmp_path):
    train = tagging_data.read_file(write(tmp_path / "train.txt", CONLL))
    tags = tagging_data.tag_list(train.sentences)
    assert tags == ["O", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
    dev = tagging_data.read_file(write(tmp_path / "dev.txt", "Ada I-PER\n\nin O\nRome B-LOC\n"))
    with pytest.raises(DataError, match=r"dev.txt:4: tag 'B-LOC' is not in the tag set of the "
                                        r"model \(O, I-LOC, I-MISC, I-ORG, I-PER\)"):
        tagging_data.check_tags(dev, tags)
    jsonl = tagging_data.read_file(write(tmp_path / "dev.jsonl",
                                         '{"tokens": ["a"], "tags": ["O"]}\n'
                                         '{"tokens": ["a", "b"], "tags": ["O", "X"]}\n'))
    with pytest.raises(DataError, match="dev.jsonl:2: tag 'X'"):
        tagging_data.check_tags(jsonl, tags)
    tagging_data.check_tags(train, tags)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / tagging_data.TAG_LIST_FILE).write_text(
        tagging_data.tag_list_text(tags))
    assert tagging_data.read_tag_list(None, str(tmp_path), str(tmp_path / "model")) == tags
    assert tagging_data.read_tag_list(str(tmp_path)) is None


# -- Windows ----------------------------------------------------------------------------------------

def layout(tokenizer, max_seq_length=32, doc_stride=4):
    return tagging_data.Layout.of(tokenizer, max_seq_length, doc_stride)


def sentence(words, tags=None):
    return tagging_data.Sentence("x", words.split(), tags and tags.split(), 1)


def test_only_the_first_piece_of_a_word_is_scored(tokenizer):
    s = sentence("Ada lives in Riverton near Ashford .", "B-PER O O B-LOC O B-LOC O")
    tags = ["O", "B-LOC", "B-PER"]
    stats = {}
    [w] = tagging_data.windows(tokenizer, [s], tags, layout(tokenizer), False, stats)
    assert tokenization.convert_by_vocab(tokenizer.inv_vocab, w.input_ids) == [
        "[CLS]", "ada", "lives", "in", "river", "##ton", "near", "ash", "##ford", ".", "[SEP]"]
    assert w.word_index == [-1, 0, 1, 2, 3, -1, 4, 5, -1, 6, -1]
    assert w.label_ids == [0, 2, 0, 0, 1, 0, 0, 1, 0, 0, 0]
    assert stats == dict(sentences=1, words=7, windows=1, split_sentences=0, max_windows=1,
                         empty_words=0)


def test_a_word_the_tokenizer_drops_becomes_unk(tokenizer):
    s = sentence("Ada \u200b mill", "B-PER O O")   # a zero-width space: no piece at all
    stats = {}
    [w] = tagging_data.windows(tokenizer, [s], ["O", "B-PER"], layout(tokenizer), False, stats)
    assert tokenization.convert_by_vocab(tokenizer.inv_vocab, w.input_ids) == [
        "[CLS]", "ada", "[UNK]", "mill", "[SEP]"]
    assert w.word_index == [-1, 0, 1, 2, -1] and stats["empty_words"] == 1


def long_sentence(n):
    words = ("Ada Riverton Ashford lives in the mill and works at bank of " * n).split()
    return sentence(" ".join(words), " ".join(("B-PER" if w == "Ada" else "O") for w in words))


@pytest.mark.parametrize("max_seq_length, doc_stride", [(8, 3), (10, 2), (12, 20), (3, 1)])
def test_long_sentences_are_windowed_and_every_word_predicted_once(tokenizer, max_seq_length,
                                                                   doc_stride):
    sentences = [long_sentence(3), sentence("Ada", "B-PER"), long_sentence(1)]
    lay = layout(tokenizer, max_seq_length, doc_stride)
    stats = {}
    evaluation = list(tagging_data.windows(tokenizer, sentences, ["O", "B-PER"], lay, False,
                                           stats))
    assert stats["split_sentences"] == 2 and stats["max_windows"] > 2
    assert all(len(w.input_ids) <= max_seq_length for w in evaluation)
    # Predicting each position's gold label gives back every sentence's tags, word for word.
    n, s = len(evaluation), max_seq_length
    word_index = np.full([n, s], -1)
    labels = np.zeros([n, s], np.int64)
    for row, w in enumerate(evaluation):
        word_index[row, :len(w.word_index)] = w.word_index
        labels[row, :len(w.label_ids)] = w.label_ids
    predicted = tagging_data.word_predictions(
        [len(x.words) for x in sentences], [w.sentence_index for w in evaluation], word_index,
        labels)
    assert [len(p) for p in predicted] == [len(x.words) for x in sentences]
    assert [[["O", "B-PER"][t] for t in p] for p in predicted] == [x.tags for x in sentences]
    # In training every first piece of a window is scored: where windows overlap (a stride
    # shorter than a window), some words twice.
    training = list(tagging_data.windows(tokenizer, sentences, ["O", "B-PER"], lay, True))
    scored = sum(sum(i >= 0 for i in w.word_index) for w in training)
    overlap = doc_stride < max_seq_length - 2
    assert len(training) == len(evaluation)
    assert scored > sum(len(x.words) for x in sentences) if overlap else scored == len(
        [i for w in evaluation for i in w.word_index if i >= 0])


def test_each_word_is_predicted_in_the_window_where_it_has_most_context(tokenizer):
    # One-piece words, 6 per window, stride 2: windows of words 0-5, 2-7 and 4-9. squad_data's
    # score, min(words left, words right) in the window, ties to the first: word 3 has 2 on its
    # shorter side in the first window and 1 in the second; word 4 has 2 in the second.
    s = sentence(" ".join(["mill"] * 10))
    windows = list(tagging_data.windows(tokenizer, [s], ["O"], layout(tokenizer, 8, 2), False))
    assert [w.word_index for w in windows] == [
        [-1, 0, 1, 2, 3, -1, -1, -1], [-1, -1, -1, 4, 5, -1, -1, -1],
        [-1, -1, -1, 6, 7, 8, 9, -1]]


def test_a_word_without_a_prediction_or_with_two_is_an_error():
    with pytest.raises(RuntimeError, match="1 words without a prediction and 0 with several"):
        tagging_data.word_predictions([2], [0], np.array([[-1, 0, -1]]), np.zeros([1, 3]))
    with pytest.raises(RuntimeError, match="0 words without a prediction and 1 with several"):
        tagging_data.word_predictions([1], [0, 0], np.array([[0], [0]]), np.zeros([2, 1]))


def test_predictions_in_conll_layout():
    sentences = [sentence("Ada sings", "B-PER O"), sentence("Riverton", "B-LOC")]
    assert tagging_data.predictions_text(sentences, [["B-PER", "O"], ["O"]]) == (
        "Ada B-PER B-PER\nsings O O\n\nRiverton B-LOC O\n\n")
    unlabelled = [sentence("Ada sings")]
    assert tagging_data.predictions_text(unlabelled, [["B-PER", "O"]]) == (
        "Ada B-PER\nsings O\n\n")
    with pytest.raises(RuntimeError, match="1 predictions for 2 words"):
        tagging_data.predictions_text(unlabelled, [["O"]])
