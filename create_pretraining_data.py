"""Create masked-LM / next-sentence pretraining data: TFRecord files of `tf.train.Example`.

The original BERT command line runs unchanged:

    python3 create_pretraining_data.py --input_file=./sample_text.txt \\
        --output_file=/tmp/tf_examples.tfrecord --vocab_file=$BERT_BASE_DIR/vocab.txt \\
        --do_lower_case=True --max_seq_length=128 --max_predictions_per_seq=20 \\
        --masked_lm_prob=0.15 --random_seed=12345 --dupe_factor=5

Input: plain UTF-8 text, one sentence per line, documents separated by blank lines. Output: records
with the original features (`input_ids`, `input_mask`, `segment_ids`, `masked_lm_positions`,
`masked_lm_ids`, `masked_lm_weights`, `next_sentence_labels`), spread round-robin over the
comma-separated `--output_file`s, each written under a temporary name and renamed when complete.

The algorithm is the original's (`pretraining_data.InstanceMaker`). What differs is how the work is
organised: the original read the whole corpus and held every instance in memory on one core. Here
the input is cut at document breaks into blocks of about `--block_size_mb`; each block is
tokenized, turned into `--dupe_factor` passes of instances (random next sentences come from other
documents of the same block), shuffled and serialized by one of `--num_workers` processes, and
blocks are written in input order. Memory therefore stays bounded by a few blocks per worker
whatever the input size, and the output depends on the seed and the block size but not on the
number of workers. Instances are shuffled within a block, not across the whole corpus; write
several output files when you want training to interleave distant parts of a large corpus. A corpus
smaller than one block is one pool, as the original's whole corpus was. Small files share blocks;
the end of a file ends a document.

Progress goes to stderr; the end prints instances, tokens, the masked share, the 80/10/10 split of
the masked tokens and the share of random-next pairs.

Beyond one machine: with `--runner` the same flags run an Apache Beam pipeline
(pretraining_pipeline.py; `pip install -r requirements-beam.txt`) on that runner: DirectRunner (in
this process, offline), DataflowRunner, FlinkRunner, SparkRunner, ... Flags this script does not
define are Beam's pipeline options and go to Beam as they are (`--project=...`, `--region=...`,
`--temp_location=...`, `--direct_num_workers=2`; write them as `--name=value`), and so does
`--num_workers` when given. `--output_file` also takes `PREFIX@N`: N files named
PREFIX-00000-of-0000N (on either path).
"""
import dataclasses
import multiprocessing
import os
import random
import sys
import threading
import time

import numpy as np
from absl import flags, logging

import common_flags
from errors import InputError
import file_io
import pretraining_data
# Settings, Instances and ExampleEncoder are also this script's names for its callers (the tests).
from pretraining_data import (  # noqa: F401
    Counts, ExampleEncoder, InstanceMaker, Instances, Settings, check_vocab, decode_piece,
    read_documents)
import records
import tokenization

# common_flags' definitions skip names another imported script defined already.
_string, _bool, _int, _float = (common_flags.DEFINE_string, common_flags.DEFINE_bool,
                                common_flags.DEFINE_integer, common_flags.DEFINE_float)
_string("input_file", None,
        "Input raw text file (or comma-separated list of files, globs allowed).")
_string("output_file", None, "Output TF example file (or comma-separated list of files, or "
        "PREFIX@N for N files PREFIX-00000-of-0000N).")
_string("vocab_file", None, "The vocabulary file that the BERT model was trained on.")
_bool("do_lower_case", True, "Whether to lower case the input text. Should be True for uncased "
      "models and False for cased models.")
_bool("do_whole_word_mask", False,
      "Whether to use whole word masking rather than per-WordPiece masking.")
_int("max_seq_length", 128, "Maximum sequence length.")
_int("max_predictions_per_seq", 20, "Maximum number of masked LM predictions per sequence.")
_int("random_seed", 12345, "Random seed for data generation.")
_int("dupe_factor", 10, "Number of times to duplicate the input data (with different masks).")
_float("masked_lm_prob", 0.15, "Masked LM probability.")
_float("short_seq_prob", 0.1,
       "Probability of creating sequences which are shorter than the maximum length.")
_int("num_workers", len(os.sched_getaffinity(0)),
     "Processes that create instances (default: the CPUs available). The output does not "
     "depend on it.")
_float("block_size_mb", 1.0,
       "Input is processed in blocks of about this many MB of text, cut at document breaks; "
       "random next sentences and the shuffle stay within a block. The output depends on it.")
_string("runner", None,
        "Run on Apache Beam with this runner (DirectRunner: in this process; DataflowRunner, "
        "FlinkRunner, SparkRunner, ...); flags this script does not define go to Beam as its "
        "pipeline options. Without it, this machine's processes (--num_workers) do the work.")
FLAGS = flags.FLAGS


# ---------------------------------------------------------------------------
# Blocks: reading the input in document-aligned pieces, and a worker's work on one.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Block:
    """About `--block_size_mb` of input: pieces of one or more files."""
    index: int
    pieces: list


def read_blocks(paths, block_size):
    """Yields `Block`s of at least `block_size` bytes (but the last), cut at document breaks.

    Small files share a block, so random next sentences come from other files too.
    """
    pieces, size, index = [], 0, 0
    for path in paths:
        with file_io.open_file(path, "rb") as f:
            for piece in pretraining_data.file_pieces(f, path, block_size):
                pieces.append(piece)
                size += len(piece.data)
                if size >= block_size:
                    yield Block(index, pieces)
                    pieces, size, index = [], 0, index + 1
    if pieces:
        yield Block(index, pieces)


class BlockWorker:
    """Turns a block into TFRecord frames, grouped by output file (round-robin from the block's
    first record), with its `Counts`."""

    def __init__(self, settings):
        self.settings = settings
        self.tokenizer = tokenization.FullTokenizer(settings.vocab_file, settings.do_lower_case)
        self.maker = InstanceMaker(settings, self.tokenizer.vocab)
        self.encoder = ExampleEncoder(settings.max_seq_length, settings.max_predictions_per_seq,
                                      max(self.tokenizer.vocab.values()) + 1)

    def __call__(self, block):
        documents = []
        for piece in block.pieces:  # a file's end ends its last document
            documents.extend(read_documents(decode_piece(piece), self.tokenizer))
        # A seed per block, so that blocks can be processed anywhere and in any order.
        rng = random.Random("%d/%d" % (self.settings.random_seed, block.index))
        np_rng = np.random.default_rng([self.settings.random_seed % 2**64, block.index])
        rng.shuffle(documents)
        counts = Counts(bytes=sum(len(p.data) for p in block.pieces), documents=len(documents))
        if not documents:
            return [b""] * self.settings.num_outputs, counts, []
        instances = self.maker.from_documents(documents, rng, np_rng, counts)
        frames = records.tfrecord_frames(self.encoder.encode(instances))
        n = self.settings.num_outputs
        groups = [b"".join(frames[r::n]) for r in range(n)]
        examples = [self.describe(instances, i) for i in range(min(3, len(instances)))
                    ] if block.index == 0 else []
        return groups, counts, examples

    def describe(self, instances, i):
        n, k = instances.lengths[i], instances.num_masked[i]
        tokens = self.tokenizer.convert_ids_to_tokens(instances.input_ids[i, :n].tolist())
        positions = instances.masked_lm_positions[i, :k].tolist()
        labels = self.tokenizer.convert_ids_to_tokens(instances.masked_lm_ids[i, :k].tolist())
        return "tokens: %s\nmasked_lm_positions: %s\nmasked_lm_labels: %s\nis_random_next: %s" % (
            " ".join(tokens), positions, " ".join(labels), bool(instances.is_random_next[i]))


_WORKER = None


def _init_worker(settings):
    global _WORKER
    _WORKER = BlockWorker(settings)


def _work(block):
    return _WORKER(block)


def process_blocks(blocks, settings, num_workers):
    """Yields each block's result, in block order, from `num_workers` processes."""
    if num_workers <= 1:
        worker = BlockWorker(settings)
        yield from map(worker, blocks)
        return
    # fork is cheapest, but not once TensorFlow's threads exist in this process (tests, gs://).
    context = multiprocessing.get_context("spawn" if "tensorflow" in sys.modules else "fork")
    # Pool.imap would read the whole input ahead into memory; the semaphore lets it run at most
    # two blocks per worker ahead of the results written so far.
    ahead = threading.BoundedSemaphore(2 * num_workers)

    def throttled():
        for block in blocks:
            ahead.acquire()
            yield block

    with context.Pool(num_workers, _init_worker, (settings,)) as pool:
        for result in pool.imap(_work, throttled(), chunksize=1):
            yield result
            ahead.release()


# ---------------------------------------------------------------------------
# Output files: temporary names, renamed when complete.
# ---------------------------------------------------------------------------


class OutputFiles:
    def __init__(self, paths):
        self.paths = paths
        self.temp_paths = [file_io.temp_name(p) for p in paths]
        self.files = []
        for path, temp in zip(paths, self.temp_paths):
            parent = os.path.dirname(path)
            if parent and not file_io.is_remote(path):
                os.makedirs(parent, exist_ok=True)
            self.files.append(file_io.open_file(temp, "wb"))
        self.written = 0

    def write(self, groups):
        """Writes one block's record groups so that round-robin continues across blocks."""
        n = len(self.files)
        for r, data in enumerate(groups):
            self.files[(self.written + r) % n].write(data)

    def advance(self, num_records):
        self.written += num_records

    def commit(self):
        for f in self.files:
            f.close()
        for temp, path in zip(self.temp_paths, self.paths):
            file_io.rename(temp, path)

    def abort(self):
        for f, temp in zip(self.files, self.temp_paths):
            f.close()
            file_io.remove_quietly(temp)


# ---------------------------------------------------------------------------
# Progress and the driver.
# ---------------------------------------------------------------------------


class Progress:
    def __init__(self, total_bytes, interval=2.0):
        self.total_mb = total_bytes / 1e6
        self.start = self.last = time.time()
        self.interval = interval
        self.counts = Counts()

    def update(self, counts, final=False):
        self.counts.add(counts)
        now = time.time()
        if final or now - self.last >= self.interval:
            self.last = now
            c = self.counts
            mb = c.bytes / 1e6
            print("%d documents, %d instances, %.1f of %.1f MB, %.2f MB/s"
                  % (c.documents, c.instances, mb, self.total_mb,
                     mb / max(now - self.start, 1e-9)), file=sys.stderr, flush=True)

    def summary(self):
        return pretraining_data.summary(self.counts, time.time() - self.start)


def create_pretraining_data(input_patterns, output_paths, settings, num_workers=1,
                            block_size=1_000_000):
    """Writes the records for `input_patterns` to `output_paths`; returns the `Progress`."""
    settings.validate()
    check_vocab(settings.vocab_file)
    paths = file_io.expand_patterns(input_patterns, flag="--input_file")
    total = sum(map(file_io.size, paths))
    progress = Progress(total)
    outputs = OutputFiles(output_paths)
    try:
        blocks = read_blocks(paths, block_size)
        for groups, counts, examples in process_blocks(blocks, settings, num_workers):
            for example in examples:
                logging.info("*** Example ***\n%s", example)
            outputs.write(groups)
            outputs.advance(counts.instances)
            progress.update(counts)
        if progress.counts.instances == 0:
            raise InputError("no instances: %s hold%s no text" % (
                ", ".join(paths), "s" if len(paths) == 1 else ""))
    except BaseException:
        outputs.abort()
        raise
    outputs.commit()
    progress.update(Counts(), final=True)
    return progress


def main(argv):
    outputs = pretraining_data.output_paths(FLAGS.output_file)
    settings = Settings(
        vocab_file=FLAGS.vocab_file, do_lower_case=FLAGS.do_lower_case,
        do_whole_word_mask=FLAGS.do_whole_word_mask, max_seq_length=FLAGS.max_seq_length,
        max_predictions_per_seq=FLAGS.max_predictions_per_seq, random_seed=FLAGS.random_seed,
        dupe_factor=FLAGS.dupe_factor, masked_lm_prob=FLAGS.masked_lm_prob,
        short_seq_prob=FLAGS.short_seq_prob, num_outputs=len(outputs))
    block_size = int(FLAGS.block_size_mb * 1e6)
    if FLAGS.runner:
        summary = run_on_beam(outputs, settings, block_size, argv[1:])
    else:
        if argv[1:]:
            raise InputError("unknown flags or arguments: %s (Beam's pipeline options need "
                             "--runner)" % " ".join(argv[1:]))
        progress = create_pretraining_data(FLAGS.input_file, outputs, settings,
                                           max(1, FLAGS.num_workers), block_size)
        summary = progress.summary()
    logging.info("Wrote %s", ", ".join(outputs))
    print(summary, file=sys.stderr)


def run_on_beam(outputs, settings, block_size, pipeline_args):
    """The Beam pipeline on --runner with Beam's own options; returns the summary line."""
    try:
        import pretraining_pipeline  # pylint: disable=import-outside-toplevel  (optional)
    except ModuleNotFoundError as error:
        if error.name != "apache_beam":
            raise
        raise InputError("--runner=%s needs Apache Beam: pip install -r requirements-beam.txt"
                         % FLAGS.runner) from None
    args = ["--runner=" + FLAGS.runner] + pipeline_args
    if FLAGS["num_workers"].present:  # also a Beam option: the number of cluster workers
        args.append("--num_workers=%d" % FLAGS.num_workers)
    counts, seconds = pretraining_pipeline.run(FLAGS.input_file, outputs, settings, block_size,
                                               args)
    return pretraining_data.summary(counts, seconds)


if __name__ == "__main__":
    flags.mark_flag_as_required("input_file")
    flags.mark_flag_as_required("output_file")
    flags.mark_flag_as_required("vocab_file")
    common_flags.run(main, pass_unknown_flags=True)
