"""Sentence(-pair) classification data: the GLUE tasks, XNLI, and a generic task for your own files.

`get_task(name, **options)` returns a `Task`, which reads a task's files into `InputExample`s,
says what the model predicts (`labels`, `is_regression`, `multi_label`), which metrics to report
(`metric_names`, understood by `metrics.compute`) and which one picks the best checkpoint
(`main_metric`), and writes GLUE submission files. Pure Python: no TensorFlow here (file_io reaches gs://
and other remote paths through tf.io.gfile), so the data can be checked without building a model.

GLUE files, as GLUE's download script writes them
-------------------------------------------------
Tab-separated, UTF-8, with NO quote processing: a `"` is a literal character (the original read them
with `csv.reader(delimiter="\\t", quotechar=None)`; MRPC, MNLI and QQP have many quotes and with
quoting on, rows would swallow their neighbours). Lines end at "\\n" only (a trailing "\\r" is
dropped, a "\\r" inside a line is kept as text); blank lines are skipped; a byte-order mark at the
start is dropped (MRPC's header may carry one from the Microsoft file). Columns are found by header
name, so extra columns (MNLI's dev files have label1..label5) do not matter; every row must have
as many columns as the header. A row with another number of columns is a `DataError` naming file
and line, except in QQP's train and dev files, where a few such rows exist: they are skipped and
counted (a warning, and `Task.skipped_rows`).

| task | train / dev columns (text_a, text_b, label) | test file: index column | labels |
|---|---|---|---|
| CoLA | no header; columns source, label, mark, sentence: 3, -, 1 | index (index, sentence) | 0 1 |
| SST-2 | sentence, -, label | index | 0 1 |
| MRPC | #1 String, #2 String, Quality | index (then #1 ID, #2 ID, ...) | 0 1 |
| STS-B | sentence1, sentence2, score (10 columns) | index (no score) | regression |
| QQP | question1, question2, is_duplicate | id (id, question1, question2) | 0 1 |
| MNLI | sentence1, sentence2, gold_label (last) | index | contradiction entailment neutral |
| QNLI | question, sentence, label | index | entailment not_entailment |
| RTE | sentence1, sentence2, label | index | entailment not_entailment |
| WNLI | sentence1, sentence2, label | index | 0 1 |
| AX | test only: diagnostic.tsv, sentence1, sentence2 | index | MNLI's |

MNLI's dev and test sets come in pairs: dev_matched.tsv / dev_mismatched.tsv and test_matched.tsv /
test_mismatched.tsv (submissions MNLI-m.tsv / MNLI-mm.tsv). AX (GLUE's diagnostic set) is predicted
with an MNLI model; `data_dir` may be the folder holding diagnostic.tsv (glue_data/diagnostic) or
glue_data itself.

XNLI, as the original BERT read it: training data from `multinli/multinli.train.<language>.tsv`
(XNLI-MT-1.0; header premise, hypo, label; its "contradictory" is read as "contradiction"), dev and
test from `xnli.dev.tsv` / `xnli.test.tsv` (XNLI-1.0; rows of all languages, filtered on the
`language` column; columns gold_label, sentence1, sentence2 by name). `language` defaults to "zh"
as in the original. The XNLI-MT-1.0/ and XNLI-1.0/ folders of the unpacked zips are looked in too.

Example ids (`InputExample.guid`) are "<set>-<n>" for labelled sets (n counts examples from 0) and
the file's own index (or id) column for test sets, which is what GLUE wants in a submission.

The generic task
----------------
`get_task("generic", text_a_column=..., label_column=..., ...)` reads `train`, `dev` and `test`
files in `data_dir` as .tsv (tab-separated, no quote processing, as GLUE), .csv (RFC 4180 quoting,
fields may span lines), .jsonl (one JSON object, or array, per line) or .json (a JSON array of
objects, or JSON Lines). Columns are header names (JSON keys), or 0-based positions given as an int
or a digit string (a digit string that is also a header name means the name). The test file may
lack the label column (with positions: when the label position is past its last column). Labels
not given are collected from the training file, sorted as strings; the script saves them with the
model and passes them back at prediction time, since the model's outputs follow their order.
"""
import csv
import dataclasses
import errno
import json
import logging
import math
import operator
import os
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from errors import InputError
import file_io

logger = logging.getLogger(__name__)

Column = Union[str, int]
Label = Union[str, float, List[str], None]

# What a task's model outputs (Task.kind): class probabilities (softmax), one value, or a 0/1
# vector (sigmoid). The feature records, the losses and soft_labels.py use the same names.
CLASSIFICATION, REGRESSION, MULTI_LABEL = "classification", "regression", "multi_label"
KINDS = (CLASSIFICATION, REGRESSION, MULTI_LABEL)


@dataclasses.dataclass(slots=True)
class InputExample:
    """One example: a text or text pair, and its label (None in unlabelled test data)."""
    guid: str                 # "train-12", or the file's own index column for test sets
    text_a: str
    text_b: Optional[str] = None
    label: Label = None       # class name; float for regression; list of names for multi-label
    line: Optional[int] = None  # 1-based line in its file, for error messages


class DataError(InputError):
    """A data file does not have the expected layout or content; the message names file and line."""

    def __init__(self, message, path=None, line=None):
        where = "" if path is None else (f"{path}:{line}: " if line is not None else f"{path}: ")
        super().__init__(where + message)
        self.path, self.line = path, line


class _RowError(Exception):
    """A problem with one row, turned into a DataError with file and line by the caller."""

    def __init__(self, message, malformed=False):
        super().__init__(message)
        self.malformed = malformed  # wrong number of columns: skippable where a task allows it


# ---------------------------------------------------------------------------
# Reading files.
# ---------------------------------------------------------------------------


def _missing(path, hint=""):
    return FileNotFoundError(errno.ENOENT, "No such file" + (f" ({hint})" if hint else ""), path)


def find_file(data_dir, candidates, hint=""):
    """The first of `data_dir`/candidate that exists; FileNotFoundError naming them all if none."""
    paths = [os.path.normpath(os.path.join(data_dir, candidate)) for candidate in candidates]
    for path in paths:
        if file_io.isfile(path):
            return path
    if len(paths) == 1:
        raise _missing(paths[0], hint)
    raise _missing(" or ".join(paths), hint)


def _decode(raw, path, line):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason} at byte {e.start} of the line)", path,
                        line) from None


def numbered_lines(path) -> Iterator[Tuple[int, str]]:
    """(1-based line number, text with its line ending) for each "\\n"-terminated line.

    Binary reading splits on "\\n" only, so a stray "\\r" inside a line cannot split it (text
    mode would). A byte-order mark at the start of the file is dropped.
    """
    if not file_io.isfile(path):
        raise _missing(path)
    with file_io.open_file(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            text = _decode(raw, path, number)
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield number, text


def read_tsv(path) -> Iterator[Tuple[int, List[str]]]:
    """(line number, fields) per non-blank line, split on tabs with no quote processing."""
    for number, text in numbered_lines(path):
        text = text[:-1] if text.endswith("\n") else text
        text = text[:-1] if text.endswith("\r") else text
        if text:
            yield number, text.split("\t")


def read_csv(path) -> Iterator[Tuple[int, List[str]]]:
    """(first line number, fields) per CSV record (RFC 4180 quoting; blank lines skipped)."""
    lines = (text for _, text in numbered_lines(path))
    reader = csv.reader(lines)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(f"malformed CSV ({e})", path, start) from None
        if fields:
            yield start, fields
        start = reader.line_num + 1


def read_json_records(path) -> Iterator[Tuple[int, Union[dict, list]]]:
    """(line number, record) from JSON Lines, or from a JSON array when the file starts with "["."""
    if not file_io.isfile(path):
        raise _missing(path)
    with file_io.open_file(path, "rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        yield from _json_array(path)
        return
    for number, text in numbered_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg}, column {e.colno})", path, number) from None
        if not isinstance(record, (dict, list)):
            raise DataError(f"expected a JSON object or array, got {type(record).__name__}", path,
                            number)
        yield number, record


def _json_array(path) -> Iterator[Tuple[int, Union[dict, list]]]:
    """Elements of a file holding one JSON array, each with the line it starts on."""
    with file_io.open_file(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 ({e.reason})", path, data.count(b"\n", 0, e.start) + 1)
    decoder = json.JSONDecoder()
    pos, line, counted = text.index("[") + 1, 1, 0

    def skip(position):
        while position < len(text) and text[position] in " \t\r\n":
            position += 1
        return position

    pos = skip(pos)
    while pos < len(text) and text[pos] != "]":
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            record, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg})", path, e.lineno) from None
        if not isinstance(record, (dict, list)):
            raise DataError(f"expected JSON objects or arrays in the array, got "
                            f"{type(record).__name__}", path, line)
        yield line, record
        pos = skip(end)
        if pos < len(text) and text[pos] == ",":
            pos = skip(pos + 1)
        elif pos >= len(text) or text[pos] != "]":
            raise DataError("expected ',' or ']' after an array element", path,
                            line + text.count("\n", counted, pos))


# ---------------------------------------------------------------------------
# Columns: where a file keeps the fields of an example.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Columns:
    """Where the fields are: header names (JSON keys) or 0-based positions.

    `label_required=False` (test files) reads the label when the column exists and leaves it None
    otherwise. `language` (XNLI) keeps only rows whose "language" column has that value.
    """
    text_a: Column
    text_b: Optional[Column] = None
    label: Optional[Column] = None
    index: Optional[Column] = None
    label_required: bool = True
    language: Optional[str] = None


def _is_position(column):
    return (isinstance(column, int) and not isinstance(column, bool)) or (
        isinstance(column, str) and column.isascii() and column.isdigit())


def _table_position(column, header, width, path, line, required=True):
    """Position of `column` in a table with this header (None: no header) and width."""
    if header is not None and isinstance(column, str) and column in header:
        return header.index(column)
    if _is_position(column):
        position = int(column)
        if position < width:
            return position
        if not required:
            return None
        raise DataError(f"column {position} does not exist: rows have {width} columns", path, line)
    if not required:
        return None
    if header is None:
        raise DataError(f"column {column!r} is a name but the file has no header line; give "
                        f"0-based positions", path, line)
    raise DataError(f"no column {column!r}; the header has {header}", path, line)


def _table_extractor(columns: Columns, header, width, path, line):
    """fields -> (text_a, text_b, raw label or None, index or None); None to skip the row."""
    def position(column, required=True):
        if column is None:
            return None
        return _table_position(column, header, width, path, line, required)

    a, b, index = position(columns.text_a), position(columns.text_b), position(columns.index)
    label = position(columns.label, required=columns.label_required)
    language = position("language") if columns.language is not None else None

    def extract(fields):
        if len(fields) != width:
            raise _RowError(f"{len(fields)} columns, expected {width}"
                            + (" as in the header" if header is not None else ""), malformed=True)
        if language is not None and fields[language] != columns.language:
            return None
        return (fields[a], None if b is None else fields[b],
                None if label is None else fields[label], None if index is None else fields[index])
    return extract


def _json_field(record, column, what, required=True):
    if isinstance(record, dict):
        if _is_position(column) and not isinstance(column, str):
            raise _RowError(f"{what} column {column} is a position, but rows are JSON objects: "
                            f"give the key")
        if column in record:
            return record[column]
        if required:
            raise _RowError(f"no key {column!r} for the {what} (keys: {sorted(record)})")
        return None
    if not _is_position(column):
        raise _RowError(f"{what} column {column!r} is a name, but rows are JSON arrays")
    if int(column) < len(record):
        return record[int(column)]
    if required:
        raise _RowError(f"no {what} at position {column}: the row has {len(record)} elements")
    return None


def _json_text(record, column, what):
    value = _json_field(record, column, what)
    if not isinstance(value, str):
        raise _RowError(f"the {what} must be a string, got {json.dumps(value)[:80]}")
    return value


def _json_extractor(columns: Columns):
    def extract(record):
        text_a = _json_text(record, columns.text_a, "text_a")
        text_b = None if columns.text_b is None else _json_text(record, columns.text_b, "text_b")
        label = None
        if columns.label is not None:
            label = _json_field(record, columns.label, "label", required=columns.label_required)
            if label is None and columns.label_required:
                raise _RowError("the label is null")
        index = None
        if columns.index is not None:
            index = str(_json_field(record, columns.index, "index"))
        return text_a, text_b, label, index
    return extract


def labels_from_examples(examples: Iterable[InputExample]) -> List[str]:
    """The distinct class names in `examples` (multi-label lists flattened), sorted as strings."""
    names = set()
    for example in examples:
        if isinstance(example.label, list):
            names.update(example.label)
        elif isinstance(example.label, str):
            names.add(example.label)
        elif example.label is not None:
            raise ValueError(f"example {example.guid}: label {example.label!r} is not a class name")
    return sorted(names)


# ---------------------------------------------------------------------------
# Tasks.
# ---------------------------------------------------------------------------


class Task:
    """A classification or regression task: its data files, outputs, metrics and submissions."""
    name: str = ""
    labels: Optional[List[str]] = None   # class names in model output order; None for regression
    is_regression: bool = False
    multi_label: bool = False
    metric_names: Tuple[str, ...] = ("accuracy",)
    main_metric: str = "accuracy"
    label_separator: str = ","           # multi-label: separates names in a cell and a submission
    submission_files: Dict[str, str] = {}   # split -> submission file name
    submission_range: Optional[Tuple[float, float]] = None  # regression predictions are clipped

    def __init__(self):
        self.skipped_rows: Dict[str, int] = {}   # path -> rows skipped as malformed
        self._label_ids: Tuple[Optional[list], Dict[str, int]] = (None, {})

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"

    # Data. ------------------------------------------------------------------

    def train_examples(self, data_dir) -> List[InputExample]:
        raise NotImplementedError

    def dev_sets(self, data_dir) -> Dict[str, List[InputExample]]:
        raise NotImplementedError

    def test_sets(self, data_dir) -> Dict[str, List[InputExample]]:
        raise NotImplementedError

    def transfer_examples(self, path, set_name="transfer") -> List[InputExample]:
        """The examples of one file laid out as the task's training file, labels optional (a
        transfer set for distillation): guids "<set_name>-<n>", label None where the label column
        is missing or empty."""
        raise NotImplementedError

    # Labels. ----------------------------------------------------------------

    @property
    def kind(self) -> str:
        """REGRESSION, MULTI_LABEL or CLASSIFICATION (see KINDS)."""
        if self.is_regression:
            return REGRESSION
        return MULTI_LABEL if self.multi_label else CLASSIFICATION

    @property
    def num_labels(self) -> int:
        """Number of model outputs: 1 for regression, else the number of classes."""
        return 1 if self.is_regression else len(self._known_labels())

    def _known_labels(self) -> List[str]:
        if self.labels is None:
            raise ValueError(f"task {self.name!r}: the labels are not known yet (read the training "
                             f"data first, or pass labels=)")
        return self.labels

    def _label_index(self) -> Dict[str, int]:
        labels = self._known_labels()
        if self._label_ids[0] is not labels:
            self._label_ids = (labels, {name: i for i, name in enumerate(labels)})
        return self._label_ids[1]

    def label_id(self, label) -> Union[int, float, List[int]]:
        """What the model is trained to output for `label`: class index, float, or 0/1 vector."""
        if self.is_regression:
            return float(label)
        index = self._label_index()
        try:
            if self.multi_label:
                vector = [0] * len(index)
                for name in label:
                    vector[index[name]] = 1
                return vector
            return index[label]
        except KeyError as e:
            raise ValueError(f"unknown label {e.args[0]!r}; labels are {self.labels}") from None

    def _parse_label(self, raw):
        """A raw cell (or JSON value) -> the example's label; _RowError if it is not valid."""
        if self.is_regression:
            return _parse_float(raw)
        if self.multi_label:
            if isinstance(raw, list):
                names = [_label_name(item) for item in raw]
            else:
                names = [name.strip() for name in _label_name(raw).split(self.label_separator)]
            names = list(dict.fromkeys(name for name in names if name))  # de-duplicated
            for name in names:
                self._check_label(name)
            return names
        name = _label_name(raw)
        if not name:
            raise _RowError("empty label")
        return self._check_label(name)

    def _check_label(self, name):
        if self.labels is not None and name not in self._label_index():
            raise _RowError(f"unknown label {name!r}; the {self.name} labels are {self.labels}")
        return name

    # Reading. ---------------------------------------------------------------

    def _examples(self, path, records, extract: Callable, set_name, is_test,
                  skip_malformed=False, empty_hint="", guid_prefix=None) -> List[InputExample]:
        """InputExamples from (line, record) pairs; `extract` gives the fields of a record.

        In a test set, an empty or missing label means "unlabelled" (None). With `guid_prefix`,
        guids are "<guid_prefix>-<n>" whatever the set.
        """
        examples, skipped = [], []
        for line, record in records:
            try:
                fields = extract(record)
                if fields is None:
                    continue
                text_a, text_b, raw_label, index = fields
                if is_test and (raw_label is None or raw_label == ""):
                    label = None
                else:
                    label = self._parse_label(raw_label)
            except _RowError as e:
                if skip_malformed and e.malformed:
                    skipped.append(line)
                    continue
                raise DataError(str(e), path, line) from None
            if guid_prefix is not None:
                guid = f"{guid_prefix}-{len(examples)}"
            elif index is not None:
                guid = index
            else:
                guid = str(len(examples)) if is_test else f"{set_name}-{len(examples)}"
            examples.append(InputExample(guid, text_a, text_b, label, line))
        if skipped:
            self.skipped_rows[path] = len(skipped)
            lines = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
            logger.warning("%s: skipped %d malformed row(s) with the wrong number of columns "
                           "(lines %s)", path, len(skipped), lines)
        if not examples:
            raise DataError("no examples" + (f" {empty_hint}" if empty_hint else ""), path)
        return examples

    def _read_tsv(self, path, columns: Columns, set_name, is_test, has_header=True, width=None,
                  skip_malformed=False, guid_prefix=None) -> List[InputExample]:
        """A tab-separated file, with a header line or (has_header=False) a known width."""
        rows = read_tsv(path)
        first = next(rows, None)
        if first is None:
            raise DataError("empty file", path)
        if has_header:
            line, header = first
            extract = _table_extractor(columns, header, len(header), path, line)
        else:
            extract = _table_extractor(columns, None, width or len(first[1]), path, first[0])
            rows = _chain([first], rows)
        empty_hint = f"for language {columns.language!r}" if columns.language else ""
        return self._examples(path, rows, extract, set_name, is_test, skip_malformed, empty_hint,
                              guid_prefix)

    # Submissions. -----------------------------------------------------------

    def submission_file(self, split) -> str:
        """The file name GLUE expects for predictions on the test set `split`."""
        try:
            return self.submission_files[split]
        except KeyError:
            raise ValueError(f"task {self.name!r} has no test set {split!r}; its test sets are "
                             f"{sorted(self.submission_files)}") from None

    def submission_label(self, prediction) -> str:
        """A prediction (class index; float for regression; 0/1 vector for multi-label) as text."""
        if self.is_regression:
            value = float(prediction)
            if not math.isfinite(value):
                raise ValueError(f"prediction {value} is not a finite number")
            if self.submission_range is not None:
                value = min(max(value, self.submission_range[0]), self.submission_range[1])
            return repr(value)
        labels = self._known_labels()
        if self.multi_label:
            if len(prediction) != len(labels):
                raise ValueError(f"multi-label prediction has {len(prediction)} entries, expected "
                                 f"{len(labels)}")
            return self.label_separator.join(name for name, on in zip(labels, prediction) if on)
        index = operator.index(prediction)
        if not 0 <= index < len(labels):
            raise ValueError(f"class index {index} out of range for {len(labels)} labels")
        return labels[index]

    def write_submission(self, path, examples: Sequence[InputExample], predictions):
        """Writes "index<TAB>prediction" then one row per example, in order; atomically."""
        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        rows = ["index\tprediction\n"]
        rows.extend(f"{example.guid}\t{self.submission_label(prediction)}\n"
                    for example, prediction in zip(examples, predictions))
        file_io.write_text_atomically(path, "".join(rows))


def set_suffix(split, splits) -> str:
    """How files of one of a task's example sets are told apart: "" for the first (main) set of
    `splits` (say dev_sets()), else "_" + the split without its "dev_" / "test_" prefix:
    eval_results.txt and eval_results_mismatched.txt for MNLI's dev_matched and dev_mismatched."""
    if split == next(iter(splits)):
        return ""
    return "_" + split.split("_", 1)[-1]


def _chain(first, rest):
    yield from first
    yield from rest


def _label_name(raw) -> str:
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)
    raise _RowError(f"a label must be a string or an integer, got {json.dumps(raw)[:80]}")


def _parse_float(raw) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise _RowError(f"a regression label must be a number, got {json.dumps(raw)[:80]}")
    try:
        value = float(raw)
    except ValueError:
        raise _RowError(f"a regression label must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise _RowError(f"a regression label must be finite, got {raw!r}")
    return value


# ---------------------------------------------------------------------------
# GLUE and XNLI.
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Split:
    """One data file of a task: where it may be (paths relative to data_dir) and its columns."""
    files: Tuple[str, ...]
    columns: Columns
    has_header: bool = True
    width: Optional[int] = None      # for files without header
    skip_malformed: bool = False     # QQP: skip rows with the wrong number of columns


@dataclasses.dataclass(frozen=True)
class _TaskSpec:
    name: str
    labels: Optional[Tuple[str, ...]]
    metric_names: Tuple[str, ...]
    train: Optional[_Split]
    dev: Dict[str, _Split]
    test: Dict[str, _Split]
    submissions: Dict[str, str]
    label_aliases: Dict[str, str] = dataclasses.field(default_factory=dict)
    submission_range: Optional[Tuple[float, float]] = None
    hint: str = ""


class GlueTask(Task):
    """A task whose files have a fixed layout (GLUE, XNLI), described by a _TaskSpec."""

    def __init__(self, spec: _TaskSpec):
        super().__init__()
        self.spec = spec
        self.name = spec.name
        self.labels = None if spec.labels is None else list(spec.labels)
        self.is_regression = spec.labels is None
        self.metric_names = spec.metric_names
        self.main_metric = spec.metric_names[0]
        self.submission_files = dict(spec.submissions)
        self.submission_range = spec.submission_range

    def _read(self, data_dir, split: _Split, set_name, is_test):
        path = find_file(data_dir, split.files, self.spec.hint)
        return self._read_tsv(path, split.columns, set_name, is_test, split.has_header,
                              split.width, split.skip_malformed)

    def _parse_label(self, raw):
        if isinstance(raw, str) and raw in self.spec.label_aliases:
            raw = self.spec.label_aliases[raw]
        return super()._parse_label(raw)

    def train_examples(self, data_dir):
        if self.spec.train is None:
            raise InputError(f"task {self.name!r} has no training data ({self.spec.hint})")
        return self._read(data_dir, self.spec.train, "train", is_test=False)

    def dev_sets(self, data_dir):
        return {name: self._read(data_dir, split, name, is_test=False)
                for name, split in self.spec.dev.items()}

    def test_sets(self, data_dir):
        return {name: self._read(data_dir, split, name, is_test=True)
                for name, split in self.spec.test.items()}

    def transfer_examples(self, path, set_name="transfer"):
        split = self.spec.train
        if split is None:
            raise InputError(f"task {self.name!r} has no training data, so no layout for a "
                             f"transfer set ({self.spec.hint})")
        if not file_io.isfile(path):
            raise _missing(path, f"a transfer file laid out as the {self.name} training file")
        columns = dataclasses.replace(split.columns, label_required=False, index=None)
        return self._read_tsv(path, columns, set_name, True, split.has_header, split.width,
                              split.skip_malformed, guid_prefix=set_name)


def _pair_task(name, labels, metric_names, a, b, label, submission, **kwargs):
    """The common GLUE layout: train.tsv and dev.tsv with header, test.tsv with an index column."""
    columns = Columns(a, b, label)
    return _TaskSpec(name, labels, metric_names, train=_Split(("train.tsv",), columns),
                     dev={"dev": _Split(("dev.tsv",), columns)},
                     test={"test": _Split(("test.tsv",), Columns(a, b, index="index"))},
                     submissions={"test": submission}, **kwargs)


def _glue_hint(folder, files="train.tsv, dev.tsv and test.tsv"):
    return f"expected GLUE's {folder} folder with {files}"


BINARY = ("0", "1")
NLI_LABELS = ("contradiction", "entailment", "neutral")
QNLI_LABELS = ("entailment", "not_entailment")

_COLA = _TaskSpec(
    "cola", BINARY, ("mcc", "accuracy"),
    # No header; columns: source code, label, original acceptability mark ("*" or empty), sentence.
    train=_Split(("train.tsv",), Columns(3, label=1), has_header=False, width=4),
    dev={"dev": _Split(("dev.tsv",), Columns(3, label=1), has_header=False, width=4)},
    test={"test": _Split(("test.tsv",), Columns("sentence", index="index"))},
    submissions={"test": "CoLA.tsv"}, hint=_glue_hint("CoLA"))

_QQP_LABELLED = Columns("question1", "question2", "is_duplicate")
_QQP = _TaskSpec(
    "qqp", BINARY, ("f1", "accuracy"),
    train=_Split(("train.tsv",), _QQP_LABELLED, skip_malformed=True),
    dev={"dev": _Split(("dev.tsv",), _QQP_LABELLED, skip_malformed=True)},
    test={"test": _Split(("test.tsv",), Columns("question1", "question2", index="id"))},
    submissions={"test": "QQP.tsv"}, hint=_glue_hint("QQP"))

_MNLI_LABELLED = Columns("sentence1", "sentence2", "gold_label")
_MNLI_TEST = Columns("sentence1", "sentence2", index="index")
_MNLI = _TaskSpec(
    "mnli", NLI_LABELS, ("accuracy",),
    train=_Split(("train.tsv",), _MNLI_LABELLED),
    dev={"dev_matched": _Split(("dev_matched.tsv",), _MNLI_LABELLED),
         "dev_mismatched": _Split(("dev_mismatched.tsv",), _MNLI_LABELLED)},
    test={"test_matched": _Split(("test_matched.tsv",), _MNLI_TEST),
          "test_mismatched": _Split(("test_mismatched.tsv",), _MNLI_TEST)},
    submissions={"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
    hint=_glue_hint("MNLI", "train.tsv, dev_matched.tsv, dev_mismatched.tsv, test_matched.tsv "
                            "and test_mismatched.tsv"))

_AX = _TaskSpec(
    "ax", NLI_LABELS, ("mcc", "accuracy"), train=None, dev={},
    test={"test": _Split(("diagnostic.tsv", os.path.join("diagnostic", "diagnostic.tsv"),
                          os.path.join("..", "diagnostic", "diagnostic.tsv")),
                         Columns("sentence1", "sentence2", index="index"))},
    submissions={"test": "AX.tsv"},
    hint="AX is GLUE's diagnostic test set (glue_data/diagnostic/diagnostic.tsv), predicted with "
         "a model fine-tuned on MNLI")

_GLUE_SPECS = {spec.name: spec for spec in (
    _COLA,
    _pair_task("sst-2", BINARY, ("accuracy",), "sentence", None, "label", submission="SST-2.tsv",
               hint=_glue_hint("SST-2")),
    _pair_task("mrpc", BINARY, ("f1", "accuracy"), "#1 String", "#2 String", "Quality",
               submission="MRPC.tsv", hint=_glue_hint("MRPC")),
    _pair_task("sts-b", None, ("pearson", "spearman"), "sentence1", "sentence2", "score",
               submission="STS-B.tsv", submission_range=(0.0, 5.0), hint=_glue_hint("STS-B")),
    _QQP,
    _MNLI,
    _pair_task("qnli", QNLI_LABELS, ("accuracy",), "question", "sentence", "label",
               submission="QNLI.tsv", hint=_glue_hint("QNLI")),
    _pair_task("rte", QNLI_LABELS, ("accuracy",), "sentence1", "sentence2", "label",
               submission="RTE.tsv", hint=_glue_hint("RTE")),
    _pair_task("wnli", BINARY, ("accuracy",), "sentence1", "sentence2", "label",
               submission="WNLI.tsv", hint=_glue_hint("WNLI")),
    _AX,
)}

XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur",
                  "vi", "zh")


class XnliTask(GlueTask):
    """XNLI in one language, read as the original BERT did (see the module docstring)."""

    def __init__(self, language="zh"):
        if language not in XNLI_LANGUAGES:
            raise InputError(f"unknown XNLI language {language!r}; XNLI has {XNLI_LANGUAGES}")
        self.language = language

        def split(file, folder):
            columns = Columns("sentence1", "sentence2", "gold_label", language=language)
            return _Split((file, os.path.join(folder, file)), columns)

        train = f"multinli.train.{language}.tsv"
        super().__init__(_TaskSpec(
            "xnli", NLI_LABELS, ("accuracy",),
            train=_Split((os.path.join("multinli", train),
                          os.path.join("XNLI-MT-1.0", "multinli", train)),
                         Columns("premise", "hypo", "label")),
            dev={"dev": split("xnli.dev.tsv", "XNLI-1.0")},
            test={"test": split("xnli.test.tsv", "XNLI-1.0")},
            submissions={"test": f"XNLI-{language}.tsv"},
            label_aliases={"contradictory": "contradiction"},
            hint="expected XNLI-MT-1.0's multinli/ folder and XNLI-1.0's xnli.dev.tsv and "
                 "xnli.test.tsv in data_dir"))


# ---------------------------------------------------------------------------
# The generic task.
# ---------------------------------------------------------------------------

FILE_FORMATS = ("tsv", "csv", "jsonl", "json")


class GenericTask(Task):
    """Your own files: train/dev/test.<tsv|csv|jsonl|json> in data_dir (module docstring)."""

    def __init__(self, *, text_a_column: Column, label_column: Column,
                 text_b_column: Optional[Column] = None, file_format: Optional[str] = None,
                 has_header: bool = True, labels: Optional[Sequence[str]] = None,
                 multi_label: bool = False, label_separator: str = ",", regression: bool = False,
                 index_column: Optional[Column] = None):
        super().__init__()
        if file_format is not None and file_format.lower().lstrip(".") not in FILE_FORMATS:
            raise InputError(f"file_format must be one of {FILE_FORMATS} or None, got "
                             f"{file_format!r}")
        if regression and (multi_label or labels is not None):
            raise InputError("regression=True takes neither labels nor multi_label")
        if labels is not None:
            labels = [str(name) for name in labels]
            if not labels or len(set(labels)) != len(labels):
                raise InputError(f"labels must be distinct class names, got {labels}")
        if multi_label and not label_separator:
            raise InputError("label_separator must not be empty")
        self.name = "generic"
        self.columns = Columns(text_a_column, text_b_column, label_column, index_column)
        self.file_format = None if file_format is None else file_format.lower().lstrip(".")
        self.has_header = has_header
        self.labels = labels
        self.is_regression = regression
        self.multi_label = multi_label
        self.label_separator = label_separator
        self.submission_files = {"test": "test_predictions.tsv"}

    @property
    def metric_names(self) -> Tuple[str, ...]:
        if self.is_regression:
            return ("pearson", "spearman")
        if self.multi_label:
            return ("f1_micro", "exact_match")
        if self.labels is not None and len(self.labels) == 2:
            return ("accuracy", "f1_macro", "f1")
        return ("accuracy", "f1_macro")

    @property
    def main_metric(self) -> str:
        return self.metric_names[0]

    def _path(self, data_dir, stem):
        formats = (self.file_format,) if self.file_format else FILE_FORMATS
        found = [os.path.join(data_dir, f"{stem}.{fmt}") for fmt in formats
                 if file_io.isfile(os.path.join(data_dir, f"{stem}.{fmt}"))]
        if not found:
            raise _missing(os.path.join(data_dir, f"{stem}.{'|'.join(formats)}"),
                           "the generic task reads train, dev and test files in data_dir")
        if len(found) > 1:
            raise InputError(f"several {stem} files in {data_dir}: {found}; choose with "
                             f"file_format=")
        return found[0]

    def _read(self, data_dir, stem, is_test):
        # The index column names the rows of a submission: test files only.
        columns = dataclasses.replace(self.columns, label_required=not is_test,
                                      index=self.columns.index if is_test else None)
        return self._read_file(self._path(data_dir, stem), columns, stem, is_test)

    def _read_file(self, path, columns, set_name, is_test, guid_prefix=None):
        fmt = self.file_format or path.rsplit(".", 1)[-1].lower()
        if fmt not in FILE_FORMATS:
            raise DataError(f"unknown file format {fmt!r}: name the file .tsv, .csv, .jsonl or "
                            f".json, or pass file_format=", path)
        if fmt == "tsv":
            return self._read_tsv(path, columns, set_name, is_test, self.has_header,
                                  guid_prefix=guid_prefix)
        if fmt == "csv":
            rows = read_csv(path)
            first = next(rows, None)
            if first is None:
                raise DataError("empty file", path)
            header = first[1] if self.has_header else None
            extract = _table_extractor(columns, header, len(first[1]), path, first[0])
            if not self.has_header:
                rows = _chain([first], rows)
            return self._examples(path, rows, extract, set_name, is_test, guid_prefix=guid_prefix)
        rows = read_json_records(path)
        first = next(rows, None)
        if first is None:
            raise DataError("empty file", path)
        return self._examples(path, _chain([first], rows), _json_extractor(columns), set_name,
                              is_test, guid_prefix=guid_prefix)

    def _ensure_labels(self, data_dir, required):
        """Collects the labels from the training file if they were not given."""
        if self.labels is not None or self.is_regression:
            return
        try:
            self._path(data_dir, "train")
        except FileNotFoundError:
            if required:
                raise InputError(f"the labels are not known: pass labels= (the list saved with "
                                 f"the model) or put the training file in {data_dir}") from None
            return
        logger.info("Collecting the labels from the training file in %s", data_dir)
        self.train_examples(data_dir)

    def train_examples(self, data_dir):
        examples = self._read(data_dir, "train", is_test=False)
        if self.labels is None and not self.is_regression:
            self.labels = labels_from_examples(examples)
            if len(self.labels) < 2 and not self.multi_label:
                logger.warning("The training data has only the label(s) %s", self.labels)
        return examples

    def dev_sets(self, data_dir):
        self._ensure_labels(data_dir, required=True)
        return {"dev": self._read(data_dir, "dev", is_test=False)}

    def test_sets(self, data_dir):
        self._ensure_labels(data_dir, required=False)
        return {"test": self._read(data_dir, "test", is_test=True)}

    def transfer_examples(self, path, set_name="transfer"):
        if not file_io.isfile(path):
            raise _missing(path, "a transfer file laid out as the training file")
        columns = dataclasses.replace(self.columns, label_required=False, index=None)
        return self._read_file(path, columns, set_name, True, guid_prefix=set_name)


# ---------------------------------------------------------------------------
# Task names.
# ---------------------------------------------------------------------------

TASK_NAMES: Tuple[str, ...] = ("cola", "sst-2", "mrpc", "sts-b", "qqp", "mnli", "qnli", "rte",
                               "wnli", "ax", "xnli", "generic")
_ALIASES = {"sst2": "sst-2", "stsb": "sts-b", "mnli-m": "mnli", "mnli-mm": "mnli",
            "mnli-matched": "mnli", "mnli-mismatched": "mnli", "diagnostic": "ax"}


def _task_key(task_name):
    """The key of TASK_NAMES that `task_name` names (or an unknown key)."""
    key = str(task_name).strip().lower().replace("_", "-")
    return _ALIASES.get(key, key)


def get_task(task_name: str, **options) -> Task:
    """The task called `task_name` (case-insensitive; "_" and "-" alike; aliases such as "sst2").

    Options: generic: see GenericTask (text_a_column, label_column, ...); xnli: language="zh".
    The GLUE tasks take none (TypeError).
    """
    key = _task_key(task_name)
    if key not in TASK_NAMES:
        raise InputError(f"unknown task {task_name!r}; known tasks: {', '.join(TASK_NAMES)}")
    if key == "generic":
        return GenericTask(**options)
    if key == "xnli":
        return XnliTask(**options)
    if options:
        raise TypeError(f"task {key!r} takes no options, got {sorted(options)}")
    return GlueTask(_GLUE_SPECS[key])


def main_metric(task_name: str, regression: bool = False, multi_label: bool = False) -> str:
    """The `Task.main_metric` of `task_name` (what picks the best checkpoint), for a caller that
    has only the command line (sweep.py): for the generic task it depends on whether it is a
    regression or a multi-label task, not on its columns or labels (the placeholder columns here
    are never read)."""
    if _task_key(task_name) == "generic":
        return GenericTask(text_a_column=0, label_column=1, regression=regression,
                           multi_label=multi_label).main_metric
    return get_task(task_name).main_metric
