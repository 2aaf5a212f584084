"""Classifier features: InputExamples as tf.train.Example records, in cached TFRecord files.

run_classifier.py writes each example set once (train.tf_record, eval.tf_record, predict.tf_record,
`_mismatched` for MNLI's second sets, distill.tf_record for a student, transfer.tf_record for a
teacher pass) and reuses it while nothing it was made from has changed. Next to each cache,
`<cache>.json` holds its fingerprint (`fingerprint`): a sha256 of the examples (guids, texts,
labels, so any change of the input file or of the column options shows), the vocabulary's sha256,
do_lower_case, max_seq_length, the kind of task and its labels (and for distillation records a
sha256 of the teacher's logits); a cache whose fingerprint differs is rebuilt.

Records (`name_to_features`, the original's feature names): input_ids, input_mask, segment_ids
[max_seq_length] and label_ids: the class index, the float value (regression) or a 0/1 vector
[num_labels] (multi-label); 0 for an unlabelled test example, as the original. Distillation
records add teacher_logits [num_labels] and has_label (whether label_ids is a gold label).
Sequences longer than max_seq_length are truncated as the original (tokenization.encode_pair) and
counted: one warning per set.

A module of its own rather than part of classifier_data.py: the readers there are ~900 lines of
pure Python that import no TensorFlow (the data can be checked in a second, without building a
model); the records need TensorFlow.
"""
import dataclasses
import functools
import hashlib
import json
import os
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

import classifier_data
import input_pipeline
import records
import tokenization

CACHE_FORMAT = 1  # bump when the record layout changes


def name_to_features(max_seq_length, kind, num_labels, distillation=False):
    """The records' format (also the model's feature keys), for a task of `kind`
    (classifier_data.KINDS) with `num_labels` outputs."""
    s = [max_seq_length]
    label = {classifier_data.CLASSIFICATION: tf.io.FixedLenFeature([], tf.int64),
             classifier_data.REGRESSION: tf.io.FixedLenFeature([], tf.float32),
             classifier_data.MULTI_LABEL: tf.io.FixedLenFeature([num_labels], tf.int64)}[kind]
    spec = {"input_ids": tf.io.FixedLenFeature(s, tf.int64),
            "input_mask": tf.io.FixedLenFeature(s, tf.int64),
            "segment_ids": tf.io.FixedLenFeature(s, tf.int64),
            "label_ids": label}
    if distillation:
        spec["teacher_logits"] = tf.io.FixedLenFeature([num_labels], tf.float32)
        spec["has_label"] = tf.io.FixedLenFeature([], tf.int64)
    return spec



def _label_values(task, label):
    """label_ids of one example as a list: [index], [value] or the 0/1 vector; zeros for None."""
    if label is None:
        return [0.0] if task.is_regression else [0] * (task.num_labels if task.multi_label else 1)
    label_id = task.label_id(label)
    return label_id if isinstance(label_id, list) else [label_id]


def encode_example(tokenizer, task, example, max_seq_length, teacher_logits=None):
    """(serialized tf.train.Example, whether the text was truncated) for one InputExample.

    With `teacher_logits` [L], a distillation record. An unknown label is a ValueError.
    """
    pair = tokenization.encode_pair(tokenizer, example.text_a, example.text_b, max_seq_length)
    label = _label_values(task, example.label)
    features = {"input_ids": records.int64_feature(pair.input_ids),
                "input_mask": records.int64_feature(pair.input_mask),
                "segment_ids": records.int64_feature(pair.segment_ids),
                "label_ids": (records.float_feature(label) if task.is_regression
                              else records.int64_feature(label))}
    if teacher_logits is not None:
        features["teacher_logits"] = records.float_feature(teacher_logits)
        features["has_label"] = records.int64_feature([int(example.label is not None)])
    record = tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()
    return record, pair.truncated


def encode_examples(writer, tokenizer, task, examples, max_seq_length, source, logits=None):
    """Writes the examples' records with `writer`; returns {"truncated": count}.

    `source` (the data set) is named in errors. With `logits` [N, L] (a teacher's), distillation
    records, in a fixed random order (the transfer files may come one after the other, and the
    training pipeline only shuffles within a buffer of 100)."""
    truncated = 0
    order = range(len(examples)) if logits is None else \
        np.random.default_rng(12345).permutation(len(examples))
    for i in order:
        example = examples[i]
        try:
            record, was_truncated = encode_example(tokenizer, task, example, max_seq_length,
                                                   None if logits is None else logits[i])
        except ValueError as e:  # an unknown label
            raise classifier_data.DataError(
                f"{source}, line {example.line} (example {example.guid}): {e}") from None
        writer.write(record)
        truncated += was_truncated
    return {"truncated": truncated}


def examples_sha256(examples):
    """A hash of what the features are made of: each example's guid, texts and label."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(json.dumps([e.guid, e.text_a, e.text_b, e.label]).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class FeatureSettings:
    """What the features depend on besides the examples; the tokenizer is built when needed."""
    vocab_file: str
    do_lower_case: bool
    max_seq_length: int

    @functools.cached_property
    def vocab_sha256(self):
        return input_pipeline.file_sha256(self.vocab_file)

    @functools.cached_property
    def tokenizer(self):
        return tokenization.FullTokenizer(self.vocab_file, self.do_lower_case)


def fingerprint(examples, task, settings, logits=None):
    """Everything a feature cache depends on (see the module docstring)."""
    values = {"format": CACHE_FORMAT, "examples_sha256": examples_sha256(examples),
              "num_examples": len(examples), "vocab_sha256": settings.vocab_sha256,
              "do_lower_case": settings.do_lower_case, "max_seq_length": settings.max_seq_length,
              "kind": task.kind, "labels": task.labels}
    if logits is not None:
        values["teacher_logits_sha256"] = hashlib.sha256(
            np.ascontiguousarray(logits, np.float32).tobytes()).hexdigest()
    return values


def cached_features(path, examples, task, settings, source, logits=None, wait_seconds=None):
    """Builds the TFRecord cache `path` unless it is up to date; warns about truncation.

    Returns `path`. `source` names the example set in messages; `logits` [N, L] makes
    distillation records; `wait_seconds` (not None: a multi-worker job's worker other than the
    chief) waits for the chief to build it (input_pipeline.cached_tfrecord)."""
    statistics, reused = input_pipeline.cached_tfrecord(
        path, fingerprint(examples, task, settings, logits),
        lambda writer: encode_examples(writer, settings.tokenizer, task, examples,
                                       settings.max_seq_length, source, logits),
        wait_seconds=wait_seconds)
    logging.info("%s %s: %d examples from %s", "Reused" if reused else "Wrote", path,
                 len(examples), source)
    truncated = statistics.get("truncated", 0)
    if truncated:
        logging.warning("%s: %d of %d examples are longer than --max_seq_length=%d tokens and "
                        "were truncated", source, truncated, len(examples),
                        settings.max_seq_length)
    return path


class ExampleSets(NamedTuple):
    """Example sets that share a cache name: `mode` (train, eval, predict: the original's file
    names; distill: a student's transfer set; transfer: the set a teacher labels) and `sets`
    {split: [InputExample]}, the first of them the main set."""
    mode: str
    sets: Dict[str, List[classifier_data.InputExample]]
    source: str                       # names a set in messages; "{split}" becomes its split
    logits: Optional[np.ndarray] = None   # [N, L] a teacher's: distillation records


def build_caches(output_dir, task, settings, example_sets,
                 wait_seconds=None) -> Dict[Tuple[str, str], str]:
    """{(mode, split): cache path} for every set of `example_sets` ([ExampleSets]): files
    <mode><set_suffix>.tf_record in `output_dir`, built or reused (cached_features; see there for
    `wait_seconds`)."""
    caches = {}
    for group in example_sets:
        for split, examples in group.sets.items():
            suffix = classifier_data.set_suffix(split, group.sets)
            path = os.path.join(output_dir, f"{group.mode}{suffix}.tf_record")
            caches[group.mode, split] = cached_features(
                path, examples, task, settings, group.source.replace("{split}", split),
                group.logits, wait_seconds)
    return caches
