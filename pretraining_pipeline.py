"""create_pretraining_data on Apache Beam: the same records from a laptop to a cluster.

`create_pretraining_data.py --runner=...` runs `run()`; without --runner the script keeps its
one-machine path. Both make records with pretraining_data.py (the original algorithm and the
record format), so `run_pretraining.py` reads either. The steps:

  Reshuffle        the input files spread over the workers;
  ReadDocuments    each file read in pieces of about --block_size_mb that end at document breaks
                   (memory does not grow with a file), decoded (a byte that is not UTF-8 fails the
                   pipeline naming file, line and column) and cut into documents. A document's key
                   is (file number, document number in the file); a hash of the key and
                   --random_seed puts it in one of G groups, G = input bytes / block size: the
                   global shuffle, so a group holds documents from all over the corpus;
  GroupByKey       the documents of a group (about --block_size_mb of text);
  MakeRecords      tokenizes them (in key order), makes each document's pairs with a seed of its
                   own (--random_seed, file and document number), the random next documents
                   drawn from its group, then shuffles and masks the group's pairs with the
                   group's seed and encodes them; a record goes to the output file its CRC picks;
  WritePieces      a group's records for one output file written as one piece, in a hidden
                   temporary directory beside the first output;
  GroupByKey       the pieces (their names, not their bytes) of each output file;
  JoinPieces       each output file's pieces copied into one file, in group order;
  Finalize         once every file is complete, renames them to their final names (or, when there
                   are no records at all, fails and renames nothing). A failed run leaves nothing
                   under the final names: the driver removes the temporary directory.

Every seed comes from --random_seed and document keys, and every order that matters is a sort by
key, so the output files depend on the input, the seed and the block size, never on the runner,
the number of workers or the bundles: byte for byte. No step holds more than a group (about
--block_size_mb of text and its records) or a file piece at once, so a worker's memory does not
grow with the input (on the local runner too: see Runners); the temporary pieces take as much
space as the output again until the end.

Runners: `--runner=DirectRunner` runs Beam's FnApiRunner in this process (recent Beam releases
would otherwise try the Prism runner, which downloads a binary on first use);
`--direct_num_workers=N --direct_running_mode=multi_processing` (or multi_threading) gives it N
workers. The FnApiRunner holds a GroupByKey's result in this process; by default it would send
each worker its whole share of it as one block (input size / workers, all at once). Here it is made
with `use_state_iterables`: a worker gets each group as a reference and reads the group's values
through Beam's State API when it iterates them, one group at a time (as Dataflow does with large
groups), so its memory stays flat as the input grows
(benchmarks/pretraining_pipeline_speed.py --memory). Any other name goes to Beam as it is:
`--runner=PrismRunner` (Beam's current local default), `DataflowRunner`, `FlinkRunner`,
`SparkRunner`, with their options. The project's modules the workers run are pickled with the
pipeline (`_code_shipped`), so a cluster's workers need only apache-beam and numpy, not this
repository.

Counters (namespace "create_pretraining_data": bytes, documents, instances, tokens, masked,
masked_as_mask, masked_kept, random_next) show a job's progress in the runner's UI; the driver
reads them at the end for the same summary line as the one-machine path.
"""
import contextlib
import dataclasses
import hashlib
import logging
import os
import random
import re
import shutil
import sys
import tempfile
import time

import apache_beam as beam
from apache_beam.internal import cloudpickle
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions,
                                                  StandardOptions)
from apache_beam.runners.portability import fn_api_runner
import numpy as np

import errors
from errors import InputError
import file_io
import pretraining_data
from pretraining_data import Counts
import records
import tokenization

NAMESPACE = "create_pretraining_data"
# Runner names that mean "Beam's local runner" and get the in-process FnApiRunner.
_LOCAL_NAMES = ("directrunner", "direct", "switchingdirectrunner")


def pipeline_options(pipeline_args):
    """PipelineOptions of Beam's command-line arguments, with the local runner in process."""
    options = PipelineOptions(list(pipeline_args))
    standard = options.view_as(StandardOptions)
    if (standard.runner or "").lower() in _LOCAL_NAMES:
        standard.runner = "FnApiRunner"
    return options


def runner_of(options):
    """The runner for `options` (of pipeline_options): the FnApiRunner handing workers groups
    by reference (see the module docstring), or None for a runner Beam makes from its name."""
    if options.view_as(StandardOptions).runner != "FnApiRunner":
        return None
    return fn_api_runner.FnApiRunner(use_state_iterables=True)


@contextlib.contextmanager
def _code_shipped(options):
    """While the pipeline runs, this project's modules are pickled with it by value, so that
    workers in other processes (Dataflow, Flink, Spark; local worker processes started from any
    directory) need not have the repository. Not when the workers run in this process: there,
    unpickling a class by value would overwrite the live class's methods with copies."""
    runner = (options.view_as(StandardOptions).runner or "").lower()
    in_process = runner == "bundlebaseddirectrunner" or (
        runner == "fnapirunner"
        and options.view_as(DirectOptions).direct_running_mode != "multi_processing")
    modules = [] if in_process else [errors, file_io, tokenization, records, pretraining_data,
                                     sys.modules[__name__]]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)


# ---------------------------------------------------------------------------
# Seeds and keys: functions of --random_seed and a document's key only.
# ---------------------------------------------------------------------------


def group_of(seed, file_index, doc_index, num_groups):
    """The group of document `doc_index` of file `file_index`: uniform over `num_groups`, the
    same in every process (Python's hash() of a str is not)."""
    digest = hashlib.blake2b(b"%d/%d/%d" % (seed, file_index, doc_index), digest_size=8).digest()
    return int.from_bytes(digest, "little") % num_groups


def document_rng(seed, file_index, doc_index):
    return random.Random("%d/%d/%d" % (seed, file_index, doc_index))


def group_rngs(seed, group):
    """(random.Random, numpy Generator) for shuffling and masking a group's pairs."""
    return (random.Random("%d/group/%d" % (seed, group)),
            np.random.default_rng([seed % 2**64, 1, group]))


def shard_of(frame, num_shards):
    """The output file of a TFRecord frame: its data CRC (the last 4 bytes) modulo the count."""
    return int.from_bytes(frame[-4:], "little") % num_shards


# ---------------------------------------------------------------------------
# The steps.
# ---------------------------------------------------------------------------


class ReadDocuments(beam.DoFn):
    """(file number, path) -> (group, (file number, document number, the document's lines
    joined by newlines)) for each document of the file."""

    def __init__(self, seed, num_groups, piece_size):
        self.seed, self.num_groups, self.piece_size = seed, num_groups, piece_size
        self.bytes = Metrics.counter(NAMESPACE, "bytes")

    def process(self, element):
        file_index, path = element
        doc_index = 0
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for piece in pretraining_data.file_pieces(f, path, self.piece_size):
                self.bytes.inc(len(piece.data))
                text = pretraining_data.decode_piece(piece)
                for lines in pretraining_data.document_lines(text):
                    group = group_of(self.seed, file_index, doc_index, self.num_groups)
                    yield group, (file_index, doc_index, "\n".join(lines))
                    doc_index += 1


class MakeRecords(beam.DoFn):
    """(group, its documents) -> (output file number, (group, the group's TFRecord frames for
    that file, concatenated))."""

    def __init__(self, settings, vocab_bytes):
        self.settings, self.vocab_bytes = settings, vocab_bytes
        self.counters = {field.name: Metrics.counter(NAMESPACE, field.name)
                         for field in dataclasses.fields(Counts)
                         if field.name != "bytes"}

    def setup(self):
        s = self.settings
        self.tokenizer = _tokenizer(self.vocab_bytes, s.do_lower_case)
        self.maker = pretraining_data.InstanceMaker(s, self.tokenizer.vocab)
        self.encoder = pretraining_data.ExampleEncoder(
            s.max_seq_length, s.max_predictions_per_seq, max(self.tokenizer.vocab.values()) + 1)

    def process(self, element):
        group, keyed_documents = element
        seed = self.settings.random_seed
        keys, documents = [], []
        for file_index, doc_index, text in sorted(keyed_documents):
            document = pretraining_data.tokenized_document(text.split("\n"), self.tokenizer)
            if document:
                keys.append((file_index, doc_index))
                documents.append(document)
        counts = Counts(documents=len(documents))
        if documents:
            pairs = []
            for index, key in enumerate(keys):
                pairs.extend(self.maker.document_pairs(documents, index, document_rng(seed, *key)))
            rng, np_rng = group_rngs(seed, group)
            rng.shuffle(pairs)
            instances = self.maker.masked(pairs, rng, np_rng, counts)
            frames = records.tfrecord_frames(self.encoder.encode(instances))
            for shard, blob in self._by_shard(frames):
                yield shard, (group, blob)
        for name, counter in self.counters.items():
            counter.inc(getattr(counts, name))

    def _by_shard(self, frames):
        n = self.settings.num_outputs
        shards = [[] for _ in range(n)]
        for frame in frames:
            shards[shard_of(frame, n)].append(frame)
        for shard, shard_frames in enumerate(shards):
            if shard_frames:
                yield shard, b"".join(shard_frames)


def _tokenizer(vocab_bytes, do_lower_case):
    """A FullTokenizer of a vocabulary file's bytes: the driver reads --vocab_file, which a
    worker elsewhere may not reach."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "vocab.txt")
        with open(path, "wb") as f:
            f.write(vocab_bytes)
        return tokenization.FullTokenizer(path, do_lower_case)


class WritePiece(beam.DoFn):
    """(output file number, (group, frames)) -> (the number, the group): the frames written to a
    piece of their own in `temp_dir`. (Grouping the frames themselves by output file would make a
    local runner hand a worker all of a file's records at once.)"""

    def __init__(self, temp_dir):
        self.temp_dir = temp_dir

    def process(self, element):
        shard, (group, blob) = element
        with FileSystems.create(_piece_path(self.temp_dir, shard, group),
                                compression_type=CompressionTypes.UNCOMPRESSED) as f:
            f.write(blob)
        yield shard, group


class JoinPieces(beam.DoFn):
    """(output file number, its groups) -> the number, once its pieces are copied, in group
    order, into `temp_dir`/<number>: the file's bytes depend on nothing the runner chooses."""

    def __init__(self, temp_dir):
        self.temp_dir = temp_dir

    def process(self, element):
        shard, groups = element
        with FileSystems.create(_temp_path(self.temp_dir, shard),
                                compression_type=CompressionTypes.UNCOMPRESSED) as out:
            for group in sorted(groups):
                with FileSystems.open(_piece_path(self.temp_dir, shard, group),
                                      compression_type=CompressionTypes.UNCOMPRESSED) as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
        yield shard


def _temp_path(temp_dir, shard):
    return FileSystems.join(temp_dir, "%05d" % shard)


def _piece_path(temp_dir, shard, group):
    return FileSystems.join(temp_dir, "%05d-group-%d" % (shard, group))


def finalize(written, temp_dir, output_paths, input_paths):
    """Renames the written files (`written`: their numbers) from `temp_dir` to `output_paths`;
    an output without records is created empty, as the one-machine path does. With no records
    at all it raises before renaming anything."""
    written = set(written)
    if not written:
        raise InputError("no instances: %s hold%s no text" % (
            ", ".join(input_paths), "s" if len(input_paths) == 1 else ""))
    for shard, path in enumerate(output_paths):
        if not file_io.is_remote(path):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        temp = _temp_path(temp_dir, shard)
        if shard not in written:
            FileSystems.create(path).close()
        elif FileSystems.exists(temp):  # (not if a retry of this step renamed it already)
            FileSystems.rename([temp], [path])
    _remove_quietly(temp_dir)


def build(pipeline, paths, output_paths, settings, vocab_bytes, num_groups, piece_size, temp_dir):
    """Adds the steps (see the module docstring) to `pipeline`."""
    written = (
        pipeline
        | "Files" >> beam.Create(list(enumerate(paths)))
        | "SpreadFiles" >> beam.Reshuffle()
        | "ReadDocuments" >> beam.ParDo(ReadDocuments(settings.random_seed, num_groups,
                                                      piece_size))
        | "Groups" >> beam.GroupByKey()
        | "MakeRecords" >> beam.ParDo(MakeRecords(settings, vocab_bytes))
        | "WritePieces" >> beam.ParDo(WritePiece(temp_dir))
        | "OutputFiles" >> beam.GroupByKey()
        | "JoinPieces" >> beam.ParDo(JoinPieces(temp_dir)))
    _ = (written
         | "AllWritten" >> beam.combiners.ToList()
         | "Finalize" >> beam.Map(finalize, temp_dir, list(output_paths), list(paths)))


# ---------------------------------------------------------------------------
# The driver.
# ---------------------------------------------------------------------------


def run(input_patterns, output_paths, settings, block_size, pipeline_args):
    """Writes the records of `input_patterns` to `output_paths` with the Beam runner of
    `pipeline_args` (Beam's command-line options); returns (Counts, seconds)."""
    settings.validate()
    pretraining_data.check_vocab(settings.vocab_file)
    paths = file_io.expand_patterns(input_patterns, flag="--input_file")
    num_groups = max(1, sum(map(file_io.size, paths)) // block_size)
    with file_io.open_file(settings.vocab_file, "rb") as f:
        vocab_bytes = f.read()
    # Workers may run elsewhere, or in another directory.
    paths, output_paths = ([p if file_io.is_remote(p) else os.path.abspath(p) for p in names]
                           for names in (paths, output_paths))
    temp_dir = file_io.temp_name(output_paths[0])
    start = time.time()
    options = pipeline_options(pipeline_args)
    try:
        pipeline = beam.Pipeline(runner=runner_of(options), options=options)
    except ValueError as error:  # a runner Beam does not know
        raise InputError("--runner=%s: %s" % (options.view_as(StandardOptions).runner,
                                              error)) from None
    build(pipeline, paths, output_paths, settings, vocab_bytes, num_groups, block_size, temp_dir)
    try:
        with _code_shipped(options), _input_errors_not_logged():
            result = pipeline.run()
            state = result.wait_until_finish()
        if state != beam.runners.runner.PipelineState.DONE:
            raise RuntimeError("the pipeline ended in state %s" % state)
    except Exception as error:
        _remove_quietly(temp_dir)
        input_error = _input_error(error)
        if input_error is None:
            raise
        raise input_error from error
    return counts_of(result), time.time() - start


class _DropInputErrorLogs(logging.Filter):
    """Drops the records in which Beam logs a worker's InputError with its traceback: the script
    reports it once, as one ERROR line (common_flags.run_main). Other errors are logged."""

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        # By name: a class pickled by value to a worker is a copy of errors.InputError.
        return not any(cls.__name__ == "InputError" for cls in type(error).__mro__)


@contextlib.contextmanager
def _input_errors_not_logged():
    """_DropInputErrorLogs on the root logger's handlers (where Beam's records end up) while the
    pipeline runs in this process."""
    handlers, drop = list(logging.getLogger().handlers), _DropInputErrorLogs()
    for handler in handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)


def _remove_quietly(path):
    try:
        FileSystems.delete([path])
    except Exception:  # pylint: disable=broad-except  (it was never created, or is gone)
        pass


_WHILE_RUNNING = re.compile(r" \[while running '[^']*'\]")


def _input_error(error):
    """An InputError with the message of the one a worker raised, from the exception the runner
    reports (in process: that InputError, its message extended with " [while running 'Step']";
    from worker processes or a cluster: an error holding the worker's traceback), else None."""
    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    for link in chain:
        if isinstance(link, InputError):
            return InputError(_WHILE_RUNNING.sub("", str(link)))
    for link in chain:
        found = re.search(r"InputError: (.*)", str(link))  # the traceback's last line
        if found:
            return InputError(_WHILE_RUNNING.sub("", found.group(1)))
    return None


def counts_of(result):
    """The run's Counts, from its counters."""
    counts = Counts()
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        name = counter.key.metric.name
        setattr(counts, name, getattr(counts, name) + value)
    return counts
