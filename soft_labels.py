"""A teacher's soft labels for distillation: the file run_classifier.py writes and reads.

`run_classifier.py --do_label_transfer` has a fine-tuned classifier (the teacher) label a transfer
set and writes `soft_labels.jsonl`; `run_classifier.py --teacher_soft_labels=...` trains a student
on it (README, "Distillation"). The file is JSON Lines, UTF-8:

  line 1     the header: {"format": "bert-soft-labels", "version": 1, "task": "sst-2",
             "kind": "classification" | "regression" | "multi_label", "labels": [class names in
             the order of the logits] (null for regression), "num_examples": N,
             "teacher": the checkpoint that labelled them, "global_step": its step,
             "transfer_files": [the files read]}
  lines 2..  one example each, in the order of the transfer files:
             {"guid": "transfer-0", "text_a": "...", "text_b": null or "...",
              "label": the gold label if the transfer file had one, else null,
              "logits": [the teacher's L logits]}  (regression: [its predicted value])

Each soft label travels with its example's id and text, so the student cannot pair a label with
the wrong example, and it tokenizes the text with its own vocabulary: teacher and student may
differ in size and vocabulary. Logits rather than probabilities are kept so that the student
can apply a temperature (probabilities are softmax(logits), sigmoid for multi-label).

`read` checks everything: the header, every line (file and line named), the number of logits of
each example against the header's labels, finite values, distinct guids, and the number of
examples against the header's (a file cut short is an error, not a smaller transfer set).
"""
import dataclasses
import json
import math
from typing import List, Optional

import numpy as np

import classifier_data
from errors import InputError
import file_io

FORMAT, VERSION = "bert-soft-labels", 1
KINDS = classifier_data.KINDS


class SoftLabelsError(InputError):
    """The soft-label file is malformed or does not fit the task; the message names the file (and
    line)."""


@dataclasses.dataclass
class SoftLabels:
    """A teacher's predictions on a transfer set: examples[i] has logits[i]."""
    header: dict
    examples: list              # [classifier_data.InputExample], label = the gold label or None
    logits: np.ndarray          # float32 [N, L]

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def labels(self) -> Optional[List[str]]:
        return self.header["labels"]

    def ordered_as(self, labels: Optional[List[str]], path="soft labels") -> "SoftLabels":
        """These soft labels with their logits in the order of `labels` (the student's classes);
        a different set of classes is an error."""
        if self.labels is None or list(labels) == self.labels:
            return self
        if sorted(labels) != sorted(self.labels):
            raise SoftLabelsError(f"{path}: the teacher's labels {self.labels} are not the task's "
                                  f"labels {list(labels)}")
        order = [self.labels.index(name) for name in labels]
        return SoftLabels(dict(self.header, labels=list(labels)), self.examples,
                          self.logits[:, order])


def header(task_name, kind, labels, num_examples, teacher, global_step, transfer_files):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return {"format": FORMAT, "version": VERSION, "task": task_name, "kind": kind,
            "labels": None if labels is None else list(labels), "num_examples": num_examples,
            "teacher": teacher, "global_step": global_step,
            "transfer_files": list(transfer_files)}


def write(path, head, examples, logits):
    """Writes the file atomically: a temporary name next to `path`, renamed when complete."""
    logits = np.asarray(logits, np.float32)
    if logits.shape[0] != len(examples) or head["num_examples"] != len(examples):
        raise ValueError(f"{len(examples)} examples, {logits.shape[0]} rows of logits, header "
                         f"says {head['num_examples']}")
    with file_io.atomic_open(path) as f:
        f.write(json.dumps(head, ensure_ascii=False) + "\n")
        for example, row in zip(examples, logits):
            f.write(json.dumps({"guid": example.guid, "text_a": example.text_a,
                                "text_b": example.text_b, "label": example.label,
                                "logits": [float(x) for x in row]}, ensure_ascii=False) + "\n")


def read(path) -> SoftLabels:
    """Reads and checks a soft-label file (see the module docstring)."""
    examples, rows, guids, head = [], [], set(), None
    with file_io.open_file(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = _json_line(raw)
                if head is None:
                    head = _check_header(record)
                    width = 1 if head["labels"] is None else len(head["labels"])
                    continue
                example, row = _check_example(record, width)
                if example.guid in guids:
                    raise _LineError(f"guid {example.guid!r} occurs twice")
            except _LineError as e:
                raise SoftLabelsError(f"{path}:{number}: {e}") from None
            guids.add(example.guid)
            example.line = number
            examples.append(example)
            rows.append(row)
    if head is None:
        raise SoftLabelsError(f"{path}: empty file; expected a header line and the examples")
    if len(examples) != head["num_examples"]:
        raise SoftLabelsError(f"{path}: {len(examples)} examples, but the header says "
                              f"{head['num_examples']}: the file is incomplete or was edited")
    logits = np.array(rows, np.float32).reshape(len(rows), width)
    return SoftLabels(head, examples, logits)


class _LineError(Exception):
    """A problem with one line, turned into a SoftLabelsError naming file and line by read()."""


def _json_line(raw):
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _LineError(f"not a JSON line ({e})") from None


def _check_header(record):
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise _LineError(f'the first line is not a soft-label header ({{"format": "{FORMAT}", '
                         f'...}}); write the file with run_classifier.py --do_label_transfer')
    if record.get("version") != VERSION:
        raise _LineError(f"format version {record.get('version')!r}, this code reads version "
                         f"{VERSION}")
    if record.get("kind") not in KINDS:
        raise _LineError(f"kind {record.get('kind')!r}, expected one of {KINDS}")
    labels = record.get("labels")
    if record["kind"] == classifier_data.REGRESSION:
        if labels is not None:
            raise _LineError("a regression file has labels: null")
    elif (not isinstance(labels, list) or len(labels) < 1
          or not all(isinstance(name, str) for name in labels) or len(set(labels)) != len(labels)):
        raise _LineError(f"labels must be a list of distinct class names, got {labels!r}")
    count = record.get("num_examples")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise _LineError(f"num_examples must be a count, got {count!r}")
    return record


def _check_example(record, width):
    if not isinstance(record, dict):
        raise _LineError("an example line must be a JSON object")
    for key in ("guid", "text_a", "logits"):
        if key not in record:
            raise _LineError(f"no {key!r} (keys: {sorted(record)})")
    if not isinstance(record["guid"], str) or not isinstance(record["text_a"], str):
        raise _LineError("guid and text_a must be strings")
    text_b = record.get("text_b")
    if text_b is not None and not isinstance(text_b, str):
        raise _LineError("text_b must be a string or null")
    row = record["logits"]
    if (not isinstance(row, list) or len(row) != width
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                       for x in row)):
        raise _LineError(f"logits must be {width} finite numbers (one per label in the header), "
                         f"got {json.dumps(row)[:80]}")
    example = classifier_data.InputExample(record["guid"], record["text_a"], text_b,
                                           record.get("label"))
    return example, row
