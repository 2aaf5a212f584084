"""Token classification data (named entities, chunks, parts of speech): reading tagged files,
the tag set, word pieces in windows, and predictions back onto the words.

Pure Python (no TensorFlow; file_io reaches gs:// through tf.io.gfile only for such paths), so
the data can be checked in a second. tagging_features.py turns the windows into TFRecords and
run_ner.py runs the model.

Files
-----
A data directory holds a training, a dev and a test file, found by name: `train`, `dev` or
`valid`, `test`, each with the extension .txt, .conll, .tsv, .jsonl or .json (CoNLL-2003 as
distributed: train.txt, valid.txt, test.txt; its original names eng.train, eng.testa and
eng.testb are found too).

* Column files (every extension but .jsonl / .json): one word per line with its columns
  separated by whitespace (spaces or tabs), a blank line after each sentence, `-DOCSTART-`
  lines (document boundaries, as in CoNLL-2003) skipped. Every line of a file has as many
  columns as its first. The word is column `word_column` (0), the tag column `tag_column`
  (-1: the last; CoNLL-2003's columns are word, part of speech, chunk, entity, so 1 and 2 give
  the other two tasks). A test file whose lines have no tag column (just the word, or fewer
  columns than `tag_column` needs) is unlabelled; training and dev files must have tags.
* JSON Lines: one object per line, `{"tokens": [...], "tags": [...]}` (a JSON array of such
  objects works too); `tags` may be left out in a test file (then on every line). A token is a
  word: not empty and without whitespace, so that the predictions' columns stay columns.

Tags are strings in any scheme: IOB1 (CoNLL-2003 as distributed: I- starts an entity, B- only
separates two adjacent entities of one type), IOB2 (BIO) or IOBES; the model predicts the tags
of the training data, and metrics.entity_scores reads all three as conlleval does. The tag set
is that of the training data (`tag_list`: "O" first, then sorted), saved with the model as
tag_list.txt; a dev or test tag outside it is an error naming the file and line.

Word pieces and windows (the original BERT README's recipe for tagging)
-----------------------------------------------------------------------
Each word is tokenized on its own (a word whose characters the tokenizer drops entirely becomes
[UNK], so that every word has a piece). Its first piece carries the word's tag and is scored;
later pieces are not (the loss and the metrics ignore them). A sentence of more pieces than fit
in `max_seq_length` - 2 is cut into overlapping windows every `doc_stride` pieces
(squad_data.doc_spans, the original SQuAD windows), each [CLS] pieces [SEP]. In training every
first piece in a window is scored; for evaluation and prediction a word is scored once, in the
window where its first piece has the most context (squad_data.max_context_spans), so each word
gets exactly one prediction (`word_predictions` checks it).
"""
import dataclasses
import json
import logging
import os
from typing import Iterator, List, NamedTuple, Optional, Sequence

import numpy as np

import classifier_data
from classifier_data import DataError
import file_io
import squad_data
import tokenization

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
STEMS = {"train": ("train",), "dev": ("dev", "valid"), "test": ("test",)}
EXTENSIONS = (".txt", ".conll", ".tsv", ".jsonl", ".json")
ORIGINAL_CONLL_NAMES = {"train": "eng.train", "dev": "eng.testa", "test": "eng.testb"}
JSON_EXTENSIONS = (".jsonl", ".json")
DOCSTART = "-DOCSTART-"
OUTSIDE = "O"
TAG_LIST_FILE = "tag_list.txt"


@dataclasses.dataclass
class Sentence:
    """One sentence: its words and their tags (None in an unlabelled test file)."""
    guid: str                         # "<split>-<n>", n counting sentences from 0
    words: List[str]
    tags: Optional[List[str]]
    line: int                         # 1-based line of the first word
    line_per_word: bool = True        # column files: word i is on line `line` + i

    def word_line(self, index):
        return self.line + index if self.line_per_word else self.line


@dataclasses.dataclass
class TaggedFile:
    """The sentences of one file, in file order."""
    path: str
    sentences: List[Sentence]

    @property
    def labelled(self):
        return bool(self.sentences) and self.sentences[0].tags is not None

    @property
    def num_words(self):
        return sum(len(s.words) for s in self.sentences)


@dataclasses.dataclass(frozen=True)
class Columns:
    """Where column files keep the word and the tag: 0-based positions, negative from the end."""
    word: int = 0
    tag: int = -1


# -- Reading files ----------------------------------------------------------------------------------

def _position(column, width):
    """`column` as a position in a line of `width` columns, None if the line has no such column."""
    return column % width if -width <= column < width else None


class _ColumnReader:
    """Collects the sentences of a column file line by line."""

    def __init__(self, path, columns, set_name, tags_required):
        self.path, self.columns, self.set_name = path, columns, set_name
        self.tags_required = tags_required
        self.width = self.first_line = self.word = self.tag = None
        self.sentences, self.words, self.tags, self.start = [], [], [], None

    def _settle_columns(self, fields, number):
        """The first word line fixes the width, and whether the file has tags."""
        self.width, self.first_line = len(fields), number
        self.word = _position(self.columns.word, self.width)
        if self.word is None:
            raise DataError(f"{self.width} column(s): no word column {self.columns.word}",
                            self.path, number)
        tag = _position(self.columns.tag, self.width)
        self.tag = tag if tag != self.word else None
        if self.tag is None and self.tags_required:
            raise DataError(f"{self.width} column(s): no tag column {self.columns.tag} besides "
                            f"the word column {self.columns.word}", self.path, number)

    def add(self, fields, number):
        if self.width is None:
            self._settle_columns(fields, number)
        elif len(fields) != self.width:
            raise DataError(f"{len(fields)} columns, expected {self.width} (as on line "
                            f"{self.first_line})", self.path, number)
        if self.start is None:
            self.start = number
        self.words.append(fields[self.word])
        if self.tag is not None:
            self.tags.append(fields[self.tag])

    def end_sentence(self):
        if self.words:
            self.sentences.append(Sentence(
                f"{self.set_name}-{len(self.sentences)}", self.words,
                self.tags if self.tag is not None else None, self.start))
        self.words, self.tags, self.start = [], [], None


def read_column_file(path, columns=Columns(), set_name="train", tags_required=True):
    """The sentences of a column file (see the module docstring)."""
    reader = _ColumnReader(path, columns, set_name, tags_required)
    for number, text in classifier_data.numbered_lines(path):
        fields = text.split()
        if not fields or fields[0] == DOCSTART:
            reader.end_sentence()
        else:
            reader.add(fields, number)
    reader.end_sentence()
    return TaggedFile(path, reader.sentences)


def _json_sentence(record, path, number, guid):
    """A Sentence from one JSON Lines record."""
    if not isinstance(record, dict) or "tokens" not in record:
        raise DataError('expected an object with "tokens" (and "tags")', path, number)
    words, tags = record["tokens"], record.get("tags")
    if not isinstance(words, list) or not words:
        raise DataError('"tokens" must be a non-empty list of words', path, number)
    for word in words:
        if not isinstance(word, str) or not word or len(word.split()) != 1:
            raise DataError(f"token {json.dumps(word)}: each token must be one word (a string, "
                            "not empty, without whitespace)", path, number)
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise DataError('"tags" must be a list of strings', path, number)
        if len(tags) != len(words):
            raise DataError(f"{len(words)} tokens but {len(tags)} tags", path, number)
    return Sentence(guid, words, tags, number, line_per_word=False)


def read_json_file(path, set_name="train", tags_required=True):
    """The sentences of a JSON Lines file (see the module docstring)."""
    sentences = []
    for number, record in classifier_data.read_json_records(path):
        sentence = _json_sentence(record, path, number, f"{set_name}-{len(sentences)}")
        labelled = sentence.tags is not None
        if not labelled and tags_required:
            raise DataError('no "tags"', path, number)
        if sentences and labelled != (sentences[0].tags is not None):
            raise DataError(f'"tags" {"given" if labelled else "missing"} here but '
                            f'{"missing" if labelled else "given"} on line {sentences[0].line}: '
                            "a file is tagged throughout or not at all", path, number)
        sentences.append(sentence)
    return TaggedFile(path, sentences)


def split_candidates(split):
    """The file names a split is looked for under, in order."""
    return [stem + ext for stem in STEMS[split] for ext in EXTENSIONS] + [
        ORIGINAL_CONLL_NAMES[split]]


def read_file(path, columns=Columns(), set_name="train", tags_required=True):
    """A column or JSON Lines file (by extension); an empty file is a DataError."""
    if path.endswith(JSON_EXTENSIONS):
        tagged = read_json_file(path, set_name, tags_required)
    else:
        tagged = read_column_file(path, columns, set_name, tags_required)
    if not tagged.sentences:
        raise DataError("no sentences (the file is empty)", path)
    logger.info("%s: %d sentences, %d words%s", path, len(tagged.sentences), tagged.num_words,
                "" if tagged.labelled else " (no tags)")
    return tagged


def read_split(data_dir, split, columns=Columns()):
    """The `split` (train, dev or test) file of `data_dir`; only test files may lack tags."""
    path = classifier_data.find_file(data_dir, split_candidates(split),
                                     f"the {split} file of a tagging task")
    return read_file(path, columns, split, tags_required=split != "test")


# -- The tag set ----------------------------------------------------------------------------------

def tag_list(sentences: Sequence[Sentence]) -> List[str]:
    """The distinct tags of `sentences`: "O" first (if there), then the others sorted."""
    tags = {tag for s in sentences for tag in s.tags or ()}
    return sorted(tags, key=lambda tag: (tag != OUTSIDE, tag))


def check_tags(tagged: TaggedFile, tags: Sequence[str]):
    """A DataError naming file and line at the first tag of `tagged` outside `tags`."""
    known = set(tags)
    for sentence in tagged.sentences:
        for index, tag in enumerate(sentence.tags or ()):
            if tag not in known:
                shown = ", ".join(tags[:20]) + (", ..." if len(tags) > 20 else "")
                raise DataError(f"tag {tag!r} is not in the tag set of the model ({shown})",
                                tagged.path, sentence.word_line(index))


def read_tag_list(*directories):
    """The tags of the first directory holding tag_list.txt (one tag a line), or None."""
    for directory in directories:
        path = os.path.join(directory, TAG_LIST_FILE) if directory else None
        if path and file_io.isfile(path):
            with file_io.open_file(path, "rb") as f:
                tags = [line.strip() for line in f.read().decode("utf-8").splitlines()]
            logger.info("Tags from %s: %s", path, tags)
            return [tag for tag in tags if tag]
    return None


def tag_list_text(tags):
    return "".join(f"{tag}\n" for tag in tags)


# -- Word pieces in windows -----------------------------------------------------------------------

class Layout(NamedTuple):
    """What every window of a run shares: its size, the stride, and three special ids."""
    max_seq_length: int
    doc_stride: int
    cls_id: int
    sep_id: int
    unk_id: int

    @classmethod
    def of(cls, tokenizer, max_seq_length, doc_stride):
        if max_seq_length < 3 or doc_stride < 1:
            raise ValueError(f"max_seq_length {max_seq_length} leaves no room for a word "
                             f"between [CLS] and [SEP], or doc_stride {doc_stride} < 1")
        cls_id, sep_id, unk_id = tokenization.convert_by_vocab(tokenizer.vocab,
                                                               ["[CLS]", "[SEP]", "[UNK]"])
        return cls(max_seq_length, doc_stride, cls_id, sep_id, unk_id)


@dataclasses.dataclass
class Window:
    """One model input (unpadded): [CLS] pieces [SEP], and per position the tag id of the word it
    scores (0 where nothing is scored) and that word's index in the sentence (-1: not scored)."""
    sentence_index: int
    input_ids: List[int]
    label_ids: List[int]
    word_index: List[int]


def word_pieces(tokenizer, words, unk_id):
    """(the piece ids of each word, how many words had none): a word the tokenizer drops
    entirely (say, only format characters) becomes [UNK], so that it can be scored."""
    pieces = [tokenizer.tokenize_to_ids(word) for word in words]
    return [p or [unk_id] for p in pieces], sum(not p for p in pieces)


def sentence_windows(pieces, tag_ids, sentence_index, layout, is_training):
    """The windows of one sentence. `pieces`: ids per word; `tag_ids`: one per word, or None."""
    ids = [i for word in pieces for i in word]
    first = np.cumsum([0] + [len(word) for word in pieces[:-1]]).tolist()  # first piece of each
    word_of_first = dict(zip(first, range(len(pieces))))                   # and back
    spans = squad_data.doc_spans(len(ids), layout.max_seq_length - 2, layout.doc_stride)
    best = squad_data.max_context_spans(spans, len(ids))
    windows = []
    for span_index, span in enumerate(spans):
        positions = range(span.start, span.start + span.length)
        word_index = [word_of_first.get(t, -1) if is_training or best[t] == span_index else -1
                      for t in positions]
        labels = [0 if w < 0 or tag_ids is None else tag_ids[w] for w in word_index]
        windows.append(Window(sentence_index,
                              [layout.cls_id] + ids[span.start:span.start + span.length]
                              + [layout.sep_id],
                              [0] + labels + [0], [-1] + word_index + [-1]))
    return windows


def windows(tokenizer, sentences, tags, layout, is_training, stats=None) -> Iterator[Window]:
    """The windows of all sentences, in order. `tags`: the tag set (label ids are positions in
    it). `stats`, if given, is filled in: sentences, words, windows, split_sentences (more than
    one window), max_windows, empty_words (words with no piece, read as [UNK])."""
    index = {tag: i for i, tag in enumerate(tags)}
    stats = {} if stats is None else stats
    stats.update(sentences=len(sentences), words=0, windows=0, split_sentences=0,
                 max_windows=0, empty_words=0)
    for sentence_index, sentence in enumerate(sentences):
        pieces, empty = word_pieces(tokenizer, sentence.words, layout.unk_id)
        tag_ids = None if sentence.tags is None else [index[t] for t in sentence.tags]
        new = sentence_windows(pieces, tag_ids, sentence_index, layout, is_training)
        stats["words"] += len(pieces)
        stats["windows"] += len(new)
        stats["split_sentences"] += len(new) > 1
        stats["max_windows"] = max(stats["max_windows"], len(new))
        stats["empty_words"] += empty
        yield from new


# -- Predictions back onto the words --------------------------------------------------------------

def word_predictions(num_words, sentence_index, word_index, predicted):
    """One predicted tag id per word of every sentence, from the windows' predictions.

    num_words: [number of sentences]; sentence_index [N]: each window's sentence; word_index
    [N, S]: the word each position scores (-1: none); predicted [N, S]: tag ids. A word scored in
    no window, or in two, is a RuntimeError (evaluation windows score each word once).
    """
    offsets = np.concatenate([[0], np.cumsum(num_words)]).astype(np.int64)
    rows, cols = np.nonzero(np.asarray(word_index) >= 0)
    flat = offsets[np.asarray(sentence_index)[rows]] + np.asarray(word_index)[rows, cols]
    total = int(offsets[-1])
    counts = np.bincount(flat, minlength=total)
    if len(counts) != total or not np.all(counts == 1):
        raise RuntimeError(f"{int(np.sum(counts == 0))} words without a prediction and "
                           f"{int(np.sum(counts > 1))} with several ({total} words)")
    out = np.empty(total, np.int64)
    out[flat] = np.asarray(predicted)[rows, cols]
    return [out[offsets[i]:offsets[i + 1]].tolist() for i in range(len(num_words))]


def predictions_text(sentences, predicted_tags):
    """CoNLL layout: per word `word gold predicted` (or `word predicted` without gold tags),
    space-separated, a blank line after each sentence, in input order."""
    lines = []
    for sentence, predicted in zip(sentences, predicted_tags, strict=True):
        if len(predicted) != len(sentence.words):
            raise RuntimeError(f"{sentence.guid}: {len(predicted)} predictions for "
                               f"{len(sentence.words)} words")
        gold = sentence.tags or [None] * len(predicted)
        for word, tag, guess in zip(sentence.words, gold, predicted):
            lines.append(" ".join(x for x in (word, tag, guess) if x is not None) + "\n")
        lines.append("\n")
    return "".join(lines)
