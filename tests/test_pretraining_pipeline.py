"""pretraining_pipeline.py (create_pretraining_data.py --runner): on the demo corpus the Beam
pipeline writes the same files, byte for byte, with 1 worker in this process, with 2 worker
processes started elsewhere (the project's modules shipped with the pipeline) and on another
runner; its statistics match the one-machine path's, run_pretraining.py trains on them, bad input
fails naming the file with nothing left under the final names, and the local runner hands its
workers groups by reference."""
import collections
import os
import struct
import subprocess
import sys

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
import numpy as np
import pytest
import tensorflow as tf

import create_pretraining_data as cpd
import file_io
import pretraining_data
import pretraining_pipeline
import run_pretraining
import tokenization
from real_model import real_vocab_file
from script_main import run_script_main
from test_create_pretraining_data import DEMO_CORPUS, PRED, SEQ, read_records, settings
from test_modeling import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUTS = ("a.tfrecord", "b.tfrecord")
BLOCK_SIZE = 100_000  # the demo corpus (355 KB) makes 3 groups


def run_beam(directory, inputs=DEMO_CORPUS, pipeline_args=(), **overrides):
    """The pipeline on the in-process runner; returns (output paths, Counts)."""
    outputs = [str(directory / name) for name in OUTPUTS]
    counts, _ = pretraining_pipeline.run(
        inputs, outputs, settings(num_outputs=len(outputs), **overrides), BLOCK_SIZE,
        ["--runner=DirectRunner", *pipeline_args])
    return outputs, counts


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def records_of(path):
    """The serialized Examples of a TFRecord file, in file order."""
    data = file_bytes(path)
    records, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        records.append(data[offset + 12:offset + 12 + length])
        offset += 16 + length
    return records


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    return run_beam(tmp_path_factory.mktemp("beam_one"))


def test_two_worker_processes_write_the_same_records(one_worker, tmp_path):
    """The command line, Beam's options passed through: 2 SDK worker processes, started from a
    directory where the project's modules cannot be imported, write the same files as the
    in-process run."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    command = [sys.executable, os.path.join(ROOT, "create_pretraining_data.py"),
               f"--input_file={DEMO_CORPUS}", f"--output_file={tmp_path / 'out'}@2",
               f"--vocab_file={real_vocab_file()}", f"--max_seq_length={SEQ}",
               f"--max_predictions_per_seq={PRED}", "--dupe_factor=2",
               f"--block_size_mb={BLOCK_SIZE / 1e6}", "--runner=DirectRunner",
               "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    env = dict(os.environ, PYTHONPATH="")
    proc = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "random next sentence in" in proc.stderr
    two = [str(tmp_path / f"out-{i:05d}-of-00002") for i in range(2)]
    one, counts = one_worker
    for mine, theirs in zip(one, two):
        assert file_bytes(mine) == file_bytes(theirs)
    assert sum(len(records_of(p)) for p in two) == counts.instances
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "out-00000-of-00002",
                                            "out-00001-of-00002"]


def test_another_runner_writes_the_same_records(one_worker, tmp_path):
    """Beam's older local runner (bundles of its own, no Fn API) writes the same files."""
    one, counts = one_worker
    other, other_counts = run_beam(tmp_path, pipeline_args=["--runner=BundleBasedDirectRunner"])
    for mine, theirs in zip(one, other):
        assert file_bytes(mine) == file_bytes(theirs)
    assert other_counts == counts


def test_records_and_counters_match_the_one_machine_path(one_worker, tmp_path):
    """The records' layout and counters, and shares within 4 standard errors of the one-machine
    path's on the same corpus and settings (its own test's bounds)."""
    outputs, ours = one_worker
    r = read_records(outputs)
    masked = r["masked_lm_weights"] > 0
    replaced = np.take_along_axis(r["input_ids"], r["masked_lm_positions"], 1)[masked]
    vocab = tokenization.load_vocab(real_vocab_file())
    from_records = dict(
        instances=len(r["input_ids"]), tokens=int(r["input_mask"].sum()),
        masked=int(masked.sum()), masked_as_mask=int((replaced == vocab["[MASK]"]).sum()),
        masked_kept=int((replaced == r["masked_lm_ids"][masked]).sum()),
        random_next=int(r["next_sentence_labels"].sum()), bytes=os.path.getsize(DEMO_CORPUS))
    assert {k: getattr(ours, k) for k in from_records} == from_records
    lengths = r["input_mask"].sum(1)
    assert (r["input_ids"][:, 0] == vocab["[CLS]"]).all()
    assert (r["input_ids"][np.arange(len(lengths)), lengths - 1] == vocab["[SEP]"]).all()
    assert (masked.sum(1) == np.minimum(PRED, np.maximum(1, np.round(lengths * 0.15)))).all()

    single = cpd.create_pretraining_data(DEMO_CORPUS, [str(tmp_path / "one.tfrecord")],
                                         settings(), 1, BLOCK_SIZE).counts
    assert ours.documents == single.documents
    assert ours.instances == pytest.approx(single.instances, rel=0.02)
    assert ours.tokens / ours.instances == pytest.approx(single.tokens / single.instances,
                                                         rel=0.02)
    for part, whole in (("masked", "tokens"), ("random_next", "instances"),
                        ("masked_as_mask", "masked"), ("masked_kept", "masked")):
        a, n = getattr(ours, part), getattr(ours, whole)
        b, m = getattr(single, part), getattr(single, whole)
        p = (a + b) / (n + m)
        error = (p * (1 - p) * (1 / n + 1 / m)) ** 0.5
        assert abs(a / n - b / m) < 4 * error, (part, a / n, b / m)


def test_random_next_segments_come_from_documents_all_over_the_corpus(tmp_path):
    """With one document per file, a random next segment comes from another file, and from
    several."""
    words = ["apple", "river", "castle", "garden", "winter", "doctor", "silver", "forest"]
    for i, word in enumerate(words):
        (tmp_path / f"doc{i}.txt").write_text(
            "\n".join(f"The {word} is here on day {d}." for d in range(30)) + "\n")
    outputs, counts = run_beam(tmp_path / "out", inputs=str(tmp_path / "doc*.txt"),
                               dupe_factor=3)
    r = read_records(outputs)
    vocab = tokenization.load_vocab(real_vocab_file())
    word_ids = {vocab[w] for w in words}
    pairs = collections.Counter()
    for i in np.flatnonzero(r["next_sentence_labels"][:, 0] == 1):
        ids = r["input_ids"][i].copy()
        k = int(r["masked_lm_weights"][i].sum())
        ids[r["masked_lm_positions"][i, :k]] = r["masked_lm_ids"][i, :k]
        seg, n = r["segment_ids"][i], r["input_mask"][i].sum()
        a = {t for t in ids[:n][seg[:n] == 0] if t in word_ids}
        b = {t for t in ids[:n][seg[:n] == 1] if t in word_ids}
        assert a and b and not a & b, i
        pairs[min(a), min(b)] += 1
    assert counts.documents == 8 and sum(pairs.values()) > 20 and len(pairs) > 8


def test_groups_are_a_global_shuffle_and_seeds_depend_on_the_document_only():
    """Consecutive documents of a file spread evenly over the groups (not by input file or
    position); the seeds are functions of --random_seed and the document's key."""
    groups = collections.Counter(pretraining_pipeline.group_of(12345, 0, d, 10)
                                 for d in range(2000))
    assert sorted(groups) == list(range(10)) and max(groups.values()) < 260, groups
    assert [pretraining_pipeline.group_of(12345, f, 7, 10) for f in range(3)] != [
        pretraining_pipeline.group_of(1, f, 7, 10) for f in range(3)]
    draw = lambda seed, f, d: pretraining_pipeline.document_rng(seed, f, d).random()
    assert draw(12345, 1, 2) == draw(12345, 1, 2) != draw(12345, 2, 1) != draw(1, 1, 2)


def test_run_pretraining_trains_on_the_output(one_worker, tmp_path):
    outputs, _ = one_worker
    config = tiny_config(vocab_size=len(tokenization.load_vocab(
        real_vocab_file())), max_position_embeddings=SEQ)
    config.to_json_file(str(tmp_path / "bert_config.json"))
    run_script_main(run_pretraining, input_file=",".join(outputs), output_dir=tmp_path / "model",
                    bert_config_file=tmp_path / "bert_config.json", do_train="true",
                    max_seq_length=SEQ, max_predictions_per_seq=PRED, train_batch_size=8,
                    num_train_steps=2, num_warmup_steps=1, iterations_per_loop=1,
                    save_checkpoints_steps=2)
    checkpoint = tf.train.latest_checkpoint(str(tmp_path / "model"))
    assert checkpoint is not None and checkpoint.endswith("-2"), checkpoint


# --- bad input ---------------------------------------------------------------------------------


def test_a_file_that_is_not_utf8_fails_naming_it_and_leaves_earlier_output(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"A good line.\nAnother one.\n\nHere \xff is bad.\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.tfrecord").write_bytes(b"keep me")
    with pytest.raises(ValueError, match=r"^\S*bad\.txt line 4, column 6: not valid UTF-8 "
                                         r"\(byte 0xff\); the input must be UTF-8 text$"):
        run_beam(out, inputs=f"{DEMO_CORPUS},{bad}")
    assert (out / "a.tfrecord").read_bytes() == b"keep me"
    assert os.listdir(out) == ["a.tfrecord"], "no temporary files left"


def test_no_text_and_no_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match=f"^no instances: {empty} holds no text$"):
        run_beam(tmp_path, inputs=str(empty))
    assert sorted(os.listdir(tmp_path)) == ["empty.txt"]
    with pytest.raises(file_io.InputFileError,
                       match="--input_file: .*nothing-here.* matches no file"):
        run_beam(tmp_path, inputs=str(tmp_path / "nothing-here*.txt"))


def test_output_file_as_a_list_or_a_prefix_with_a_count():
    assert pretraining_data.output_paths(" a.tfrecord, b.tfrecord,") == ["a.tfrecord",
                                                                        "b.tfrecord"]
    assert pretraining_data.output_paths("gs://b/train.tfrecord@3") == [
        "gs://b/train.tfrecord-00000-of-00003", "gs://b/train.tfrecord-00001-of-00003",
        "gs://b/train.tfrecord-00002-of-00003"]
    with pytest.raises(ValueError, match="at least 1"):
        pretraining_data.output_paths("x@0")


def test_the_local_runner_runs_in_this_process():
    """DirectRunner would try Prism, which downloads a binary; other names go to Beam."""
    runner = lambda args: pretraining_pipeline.pipeline_options(args).view_as(
        pretraining_pipeline.StandardOptions).runner
    assert runner(["--runner=DirectRunner"]) == runner(["--runner=direct"]) == "FnApiRunner"
    assert runner(["--runner=PrismRunner"]) == "PrismRunner"
    assert runner(["--runner=DataflowRunner", "--project=p"]) == "DataflowRunner"


def test_the_local_runner_hands_workers_groups_by_reference():
    """A group's values reach a worker through the State API, read as the worker iterates them,
    not in the bundle's input: what keeps a worker's memory flat as the input grows (the
    benchmark's --memory). By default the FnApiRunner would hand them over as a list."""
    options = pretraining_pipeline.pipeline_options(["--runner=DirectRunner"])
    with beam.Pipeline(runner=pretraining_pipeline.runner_of(options), options=options) as p:
        kinds = (p
                 | beam.Create([(1, "a"), (1, "b"), (2, "c")])
                 | beam.GroupByKey()
                 | beam.MapTuple(lambda key, values: (type(values).__name__, sorted(values))))
        assert_that(kinds, equal_to([("_ConcatSequence", ["a", "b"]),
                                     ("_ConcatSequence", ["c"])]))
    assert pretraining_pipeline.runner_of(
        pretraining_pipeline.pipeline_options(["--runner=PrismRunner"])) is None
