r"""Extracts BERT activations per line of a text file: the original extract_features.py, faster.

The command line of the original README runs unchanged:

  python extract_features.py \
    --input_file=/tmp/input.txt \
    --output_file=/tmp/output.jsonl \
    --vocab_file=$BERT_BASE_DIR/vocab.txt \
    --bert_config_file=$BERT_BASE_DIR/bert_config.json \
    --init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt \
    --layers=-1,-2,-3,-4 \
    --max_seq_length=128 \
    --batch_size=8

Input
-----
One example per line, UTF-8. A line is stripped of surrounding whitespace and, if it contains
" ||| " (spaces included), split at the LAST occurrence into a pair `text_a ||| text_b` (the
original's greedy regex `^(.*) \|\|\| (.*)$`); anything else is a single text. Inputs are
`[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]` (tokenization.encode_pair): a single text keeps its first
max_seq_length - 2 word pieces, a pair is shortened with truncate_seq_pair to max_seq_length - 3.
An empty (or all-whitespace) line is the example `[CLS] [SEP]`, as in the original, so output
record i always belongs to input line i (`linex_index` = i, counted from 0). A line that is not
valid UTF-8 is an error naming the file and the line number.

Layers: --layers are indexes into the encoder layers, Python style: -1 is the last encoder layer,
0 the first (the embedding output is not one of them). Outputs list them in the order given.

Outputs (--output_format, --pooling)
------------------------------------
Written under a temporary name in the output's directory and renamed to --output_file once
complete, so an interrupted run never leaves a partial file behind. Records are in input order.

jsonl, --pooling=none (the original's format, byte for byte): one JSON object per input line,
  {"linex_index": i, "features": [{"token": "[CLS]", "layers": [{"index": -1, "values": [...]},
  ...]}, ...]}
  with one feature per real token (no padding), `values` the hidden_size activations rounded to 6
  decimals (Python's round(x, 6); JSON floats in Python's shortest repr, json.dumps' default
  separators).
jsonl, --pooling=cls|mean: one JSON object per input line,
  {"linex_index": i, "layers": [{"index": -1, "values": [...]}, ...]}
  (hidden_size values per layer, rounded to 6 decimals).
npz (numpy.load; no pickled objects), arrays:
  layers       int64 [num_layers]     the --layers indexes, in order
  linex_index  int64 [num_lines]      0 .. num_lines - 1
  pooling      str   []               "none", "cls" or "mean"
  --pooling=none, ragged layout (the tokens of all lines, concatenated in input order):
    layer_<index>  float32 [num_tokens, hidden_size]   e.g. "layer_-1"
    offsets        int64 [num_lines + 1]    line i's tokens are rows offsets[i]:offsets[i + 1]
    tokens         str [num_tokens]; token_ids, segment_ids int32 [num_tokens]
  --pooling=cls|mean:
    layer_<index>  float32 [num_lines, hidden_size]
    num_tokens     int32 [num_lines]        real tokens of each line, [CLS] and [SEP] included
tfrecord: one tf.train.Example per input line, in input order, with the features
  linex_index int64 [1]; layers int64 [num_layers]; num_tokens int64 [1];
  --pooling=none: tokens bytes [n], token_ids int64 [n], segment_ids int64 [n],
    layer_<index> float [n * hidden_size] (row-major [n, hidden_size]);
  --pooling=cls|mean: layer_<index> float [hidden_size].
Full float32 precision in npz and tfrecord. Pooling: `cls` is the first token's ([CLS])
activations; `mean` the mean over the line's real tokens, [CLS] and [SEP] included, padding
excluded (the masked mean of sentence-transformers).

Speed
-----
The whole input is read and tokenized first (compactly: a few bytes per word piece), so a bad line
fails before the model runs and the progress line can give an ETA. Lines are then taken in windows
of consecutive lines (the whole input for npz; for jsonl and tfrecord as many lines as keep about
WINDOW_BYTES of outputs waiting to be written in order), sorted by length within the window and
cut into batches of --batch_size, each padded only to its own longest line; outputs are put back
into input order. The model runs in one `tf.function` with an input signature of [None, None]
int32 tensors: traced once, whatever the batch's length. (The model's XLA-compiled elementwise
kernels are traced without XLA here: XLA would compile them again for every new sequence length,
~0.3-1 s each, to save ~5% of a float32 inference step, ~15% in bfloat16. In float32 they are
traced as standard ops, `kernels.standard_ops()`, the graph exported SavedModels have, where
TensorFlow fuses MatMul + BiasAdd + GELU into one oneDNN kernel: as fast at batch 32, faster for
small batches; in bfloat16 as the fused functions, `kernels.compile_with_xla(False)`, which are
faster there: see inference_mode.)
Pooling and the selection of real tokens happen in the same function, so only the requested
numbers leave it. Formatting and writing run in a background thread. --precision=bfloat16 runs
the matrix products in bfloat16. A progress line goes to stderr. Per-token JSON is big (about 10
bytes per value) and its formatting (Python's float repr, ~0.3 us per value) can take longer than
the model itself for small models; npz and tfrecord store float32 as they are.

Checkpoint: --init_checkpoint is required and loads through checkpoints.restore with the original
names; every `bert/` variable but the pooler (unused here) must be in it, else it is an error
before any input is read (the original silently ran on random weights). Other names in the
checkpoint (cls/*, optimizer slots) are ignored.
"""

import array
import contextlib
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import zipfile

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import checkpoints
import common_flags
from errors import InputError
import file_io
import kernels
import modeling
import records
import tokenization

FLAGS = flags.FLAGS

POOLINGS = ("none", "cls", "mean")
OUTPUT_FORMATS = ("jsonl", "npz", "tfrecord")

common_flags.DEFINE_string("input_file", None,
                           "Text file, one example per line: `text`, or `text_a ||| text_b` for a "
                           "pair (split at the last ' ||| '). An empty line gives [CLS] [SEP].")
common_flags.DEFINE_string("output_file", None,
                           "Where to write the features (see --output_format); written under a "
                           "temporary name and renamed when complete.")
common_flags.DEFINE_string("layers", "-1,-2,-3,-4",
                           "Comma-separated encoder layer indexes: -1 is the last layer, 0 the "
                           "first.")
common_flags.define_model_flags(max_seq_length=128)
common_flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.")
common_flags.DEFINE_bool("use_one_hot_embeddings", False,
                         "Accepted so that the original command lines run; ignored (the "
                         "embedding lookup is a gather on every device).")
common_flags.define_strategy_flags()
common_flags.define_precision_flag()
common_flags.DEFINE_enum("output_format", "jsonl", list(OUTPUT_FORMATS),
                         "jsonl: the original JSON Lines (with --pooling=none) or "
                         '{"linex_index": i, "layers": [{"index": -1, "values": [...]}, ...]} per '
                         "line (pooled). npz: numpy arrays layer_<index> ([num_tokens, H] ragged "
                         "with `offsets` [num_lines + 1], or [num_lines, H] pooled), linex_index, "
                         "layers, tokens / token_ids / segment_ids or num_tokens. tfrecord: one "
                         "tf.train.Example per line (linex_index, layers, num_tokens, "
                         "layer_<index> floats, and tokens / token_ids / segment_ids per token). "
                         "See the module docstring for the exact layouts.")
common_flags.DEFINE_enum("pooling", "none", list(POOLINGS),
                         "none: one vector per token per layer (the original). cls: the [CLS] "
                         "token's vector per line. mean: the mean over the line's real tokens "
                         "([CLS] and [SEP] included, padding excluded) per line.")

_PAIR_RE = re.compile(r"^(.*) \|\|\| (.*)$")
_NO_CHECKPOINT = ("--init_checkpoint is required (a pretrained checkpoint such as "
                  "$BERT_BASE_DIR/bert_model.ckpt); features of an untrained model are noise")
# Outputs held for writing in input order (jsonl, tfrecord) stay below about this many bytes; the
# lines of one such window are sorted by length together.
WINDOW_BYTES = 256 << 20
PROGRESS_SECONDS = 5.0


# ---------------------------------------------------------------------------------------------------
# Input


def split_line(line):
    """(text_a, text_b or None) of one input line, as the original: stripped, then split at the
    last " ||| "."""
    line = line.strip()
    match = _PAIR_RE.match(line)
    if match is None:
        return line, None
    return match.group(1), match.group(2)


def parse_layers(layers, num_hidden_layers):
    """--layers ("-1,-2" or a list) -> [int], each checked against the model's layer count."""
    if isinstance(layers, str):
        items = [x.strip() for x in layers.split(",") if x.strip()]
    else:
        items = list(layers)
    if not items:
        raise InputError("--layers is empty; give comma-separated layer indexes such as -1,-2")
    indexes = []
    for item in items:
        try:
            index = int(item)
        except (TypeError, ValueError):
            raise InputError(f"--layers: {item!r} is not an integer") from None
        if not -num_hidden_layers <= index < num_hidden_layers:
            raise InputError(f"--layers: {index} is out of range for a model with "
                             f"{num_hidden_layers} layers (use -{num_hidden_layers} .. "
                             f"{num_hidden_layers - 1}; -1 is the last)")
        indexes.append(index)
    return indexes


class Examples:
    """The tokenized input, compactly: all word-piece ids concatenated, with per-line offsets.

    token_ids int32 [num_tokens]; offsets int64 [num_lines + 1] (line i is
    token_ids[offsets[i]:offsets[i + 1]], [CLS] and [SEP] included); type_starts int32 [num_lines]
    (where segment B starts within the line; its length for a single text).
    """

    def __init__(self, token_ids, offsets, type_starts, num_truncated=0, num_pairs=0):
        self.token_ids = token_ids
        self.offsets = offsets
        self.type_starts = type_starts
        self.num_truncated = num_truncated
        self.num_pairs = num_pairs
        self.lengths = np.diff(offsets).astype(np.int32)

    @property
    def num_lines(self):
        return len(self.lengths)

    @property
    def num_tokens(self):
        return len(self.token_ids)

    def segment_ids(self, i):
        n = self.lengths[i]
        return (np.arange(n) >= self.type_starts[i]).astype(np.int32)

    def batch(self, lines, rows, multiple=1, max_width=None):
        """input_ids, input_mask, segment_ids int32 [rows, width] for these lines: width is the
        longest line rounded up to `multiple` (at most max_width); rows beyond len(lines) are all
        padding."""
        width = -(-int(self.lengths[lines].max()) // multiple) * multiple
        if max_width:
            width = max(min(width, max_width), int(self.lengths[lines].max()))
        ids = np.zeros((rows, width), np.int32)
        mask = np.zeros((rows, width), np.int32)
        types = np.zeros((rows, width), np.int32)
        for r, i in enumerate(lines):
            start, end = self.offsets[i], self.offsets[i + 1]
            n = end - start
            ids[r, :n] = self.token_ids[start:end]
            mask[r, :n] = 1
            types[r, self.type_starts[i]:n] = 1
        return ids, mask, types


def read_examples(input_file, tokenizer, max_seq_length):
    """Reads and tokenizes every line of `input_file` -> Examples.

    Raises ValueError naming the file and line for bytes that are not UTF-8.
    """
    if not tf.io.gfile.exists(input_file):
        raise InputError(f"--input_file {input_file} does not exist")
    ids = array.array("i")
    offsets = [0]
    type_starts = []
    truncated = pairs = 0
    with file_io.open_file(input_file, "rb") as reader:
        for number, raw in enumerate(reader, 1):
            text = tokenization.convert_to_unicode(raw, source=f"{input_file}, line {number}")
            text_a, text_b = split_line(text)
            encoded = tokenization.encode_pair(tokenizer, text_a, text_b, max_seq_length)
            n = len(encoded.tokens)
            ids.extend(encoded.input_ids[:n])
            offsets.append(offsets[-1] + n)
            type_starts.append(n - sum(encoded.segment_ids))
            truncated += encoded.truncated
            pairs += text_b is not None
    return Examples(np.frombuffer(ids, np.int32) if ids else np.zeros([0], np.int32),
                    np.array(offsets, np.int64), np.array(type_starts, np.int32), truncated,
                    pairs)


# ---------------------------------------------------------------------------------------------------
# The model


def restore_bert(model, init_checkpoint):
    """Loads the model's variables from `init_checkpoint` (strict: every bert/ variable but the
    pooler must be there). Raises checkpoints.CheckpointError."""
    if not init_checkpoint:
        raise checkpoints.CheckpointError(_NO_CHECKPOINT)
    try:
        loaded, missing, _ = checkpoints.restore(checkpoints.named_variables(model), init_checkpoint,
                                                 log_each=False)
    except tf.errors.OpError as e:  # a file that is not a checkpoint
        raise checkpoints.CheckpointError(
            f"{init_checkpoint}: not a readable checkpoint ({e.message.strip()})") from None
    needed = [name for name in missing if not name.startswith("bert/pooler/")]
    if needed:
        raise checkpoints.CheckpointError(
            f"{checkpoints.resolve(init_checkpoint)}: {len(needed)} variable(s) of the model are "
            "missing (does bert_config.json match the checkpoint?): " + ", ".join(needed[:20])
            + (" ..." if len(needed) > 20 else ""))
    logging.info("Loaded %d variables from %s", len(loaded), init_checkpoint)
    return loaded


@contextlib.contextmanager
def inference_mode(compute_dtype):
    """How the model's kernels are traced for extraction: never with XLA (it would compile them
    again for every new batch length); in float32 as standard ops (kernels.standard_ops: the
    exported SavedModels' graph, where Grappler fuses MatMul + BiasAdd + GELU into oneDNN
    kernels), in 16-bit precisions as the fused functions, whose bfloat16 elementwise work in
    float32 is about 10% faster there than the standard ops' casts."""
    standard = tf.as_dtype(compute_dtype) == tf.float32
    with kernels.compile_with_xla(False), kernels.standard_ops(standard):
        yield


class FeatureExtractor:
    """BertModel from a checkpoint and the compiled function from a batch to the outputs.

    Calling it with input_ids, input_mask, segment_ids (int32 numpy [B, S]) returns float32 numpy:
      pooling none:     [num_layers, T, H], the real tokens of the batch, row by row
      pooling cls/mean: [num_layers, B, H]
    """

    def __init__(self, config, init_checkpoint, layer_indexes, pooling="none",
                 compute_dtype=tf.float32, strategy=None):
        if pooling not in POOLINGS:
            raise InputError(f"--pooling={pooling!r}; expected one of {', '.join(POOLINGS)}")
        self.config = config
        self.layer_indexes = parse_layers(layer_indexes, config.num_hidden_layers)
        self.pooling = pooling
        self.strategy = strategy or tf.distribute.get_strategy()
        self.num_replicas = self.strategy.num_replicas_in_sync
        with self.strategy.scope():
            # Ids are checked on the host (see check_ids), not in every step.
            self.model = modeling.BertModel(config, compute_dtype, check_ids=False)
        restore_bert(self.model, init_checkpoint)
        # TPUs compile every shape: batches there are padded to multiples of 32 tokens, the step
        # is traced once per shape and returns padded outputs (not run here: no TPU to test on).
        self.static_shapes = isinstance(self.strategy, tf.distribute.TPUStrategy)
        self.length_multiple = 32 if self.static_shapes else 1
        if self.static_shapes:
            self._step = tf.function(self._outputs)
        else:
            spec = tf.TensorSpec([None, None], tf.int32)
            self._step = tf.function(self._outputs, input_signature=[spec, spec, spec])
            with inference_mode(compute_dtype):
                self._step.get_concrete_function()

    def check_ids(self, examples):
        """ValueError unless every token id and segment id fits the model's config."""
        if examples.num_tokens and int(examples.token_ids.max()) >= self.config.vocab_size:
            raise InputError(f"token id {int(examples.token_ids.max())} is beyond the model's "
                             f"vocab_size ({self.config.vocab_size}); do --vocab_file and "
                             "--bert_config_file belong together?")
        if examples.num_pairs and self.config.type_vocab_size < 2:
            raise InputError("the input has `text_a ||| text_b` pairs but the model's "
                             f"type_vocab_size is {self.config.type_vocab_size}")

    def _outputs(self, input_ids, input_mask, segment_ids):
        outputs = self.model(input_ids, input_mask, segment_ids, training=False)
        layers = tf.stack([tf.cast(outputs.all_encoder_layers[i], tf.float32)
                           for i in self.layer_indexes])                      # [L, B, S, H]
        if self.pooling == "cls":
            return layers[:, :, 0]                                            # [L, B, H]
        if self.pooling == "mean":
            mask = tf.cast(input_mask, tf.float32)                            # [B, S]
            total = tf.einsum("lbsh,bs->lbh", layers, mask)
            count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)              # [B]
            return total / count[tf.newaxis, :, tf.newaxis]                   # [L, B, H]
        if self.static_shapes:
            return layers                                                     # [L, B, S, H]
        return tf.boolean_mask(layers, tf.cast(input_mask, tf.bool), axis=1)  # [L, T, H]

    def batch_rows(self, batch_size):
        """Rows of every batch: batch_size rounded up to a multiple of the replicas."""
        return -(-batch_size // self.num_replicas) * self.num_replicas

    def __call__(self, input_ids, input_mask, segment_ids):
        outputs = self._run(input_ids, input_mask, segment_ids)
        if self.static_shapes and self.pooling == "none":
            return outputs[:, input_mask.astype(bool)]                        # [L, T, H]
        return outputs

    def _run(self, input_ids, input_mask, segment_ids):
        with inference_mode(self.model.compute_dtype):   # for the traces made here (TPU, replicas)
            if self.num_replicas == 1:
                return self._step(input_ids, input_mask, segment_ids).numpy()
            per_replica = input_ids.shape[0] // self.num_replicas

            def shard(values):
                def value_fn(context):
                    start = context.replica_id_in_sync_group * per_replica
                    return tf.constant(values[start:start + per_replica])
                return self.strategy.experimental_distribute_values_from_function(value_fn)

            # A plain function: given the tf.function itself, MirroredStrategy would call it once
            # with the distributed values instead of once per replica.
            outputs = self.strategy.run(lambda *args: self._step(*args), args=tuple(
                shard(v) for v in (input_ids, input_mask, segment_ids)))
            return np.concatenate([t.numpy() for t in
                                   self.strategy.experimental_local_results(outputs)], axis=1)


# ---------------------------------------------------------------------------------------------------
# Output


def round6(values):
    """float32 values -> float64 rounded to 6 decimals, equal to Python's round(float(x), 6).

    For float32 inputs x * 1e6 is exact in float64 (24 + 14 significant bits), np.rint rounds
    half to even as round() does on the exact value, and the division gives the nearest double
    to the decimal, which is what round() returns.
    """
    return np.round(np.asarray(values, np.float64), 6)


class _Sink:
    """Receives a batch's outputs (lines in any order) and writes them to one temporary file."""

    ordered = True   # whether it needs the lines of a window in input order (see end_window)

    def __init__(self, output_file, examples, layer_indexes, pooling, hidden_size, vocab_tokens):
        self.output_file = output_file
        self.tmp = file_io.temp_name(output_file)
        self.examples = examples
        self.layer_indexes = layer_indexes
        self.pooling = pooling
        self.hidden_size = hidden_size
        self.vocab_tokens = vocab_tokens
        self._pending = {}

    def add(self, lines, values):
        """values: [L, T, H] for the tokens of `lines` (in that order) or [L, len(lines), H]."""
        if self.pooling == "none":
            ends = np.cumsum(self.examples.lengths[lines])
            for i, end, n in zip(lines, ends, self.examples.lengths[lines]):
                self._pending[int(i)] = values[:, end - n:end]
        else:
            for r, i in enumerate(lines):
                self._pending[int(i)] = values[:, r]

    def end_window(self, start, end):
        for i in range(start, end):
            self.write_line(i, self._pending.pop(i))

    def tokens(self, i):
        start, end = self.examples.offsets[i], self.examples.offsets[i + 1]
        return [self.vocab_tokens[t] for t in self.examples.token_ids[start:end]]

    def write_line(self, i, values):
        raise NotImplementedError

    def close(self):
        """Finishes the temporary file and renames it to output_file."""
        file_io.rename(self.tmp, self.output_file)

    def abort(self):
        file_io.remove_quietly(self.tmp)


class JsonlSink(_Sink):

    def __init__(self, *args):
        super().__init__(*args)
        self.file = tf.io.gfile.GFile(self.tmp, "wb")
        self.file.write(b"")   # GFile creates the file on the first write; an empty input has none

    def write_line(self, i, values):
        self.file.write((self.format_line(i, values) + "\n").encode("utf-8"))

    def format_line(self, i, values):
        rounded = round6(values)
        if self.pooling != "none":
            return json.dumps({"linex_index": int(i), "layers": [
                {"index": index, "values": rounded[k].tolist()}
                for k, index in enumerate(self.layer_indexes)]})
        per_token = rounded.transpose(1, 0, 2).tolist()                     # [n][L][H]
        return json.dumps({"linex_index": int(i), "features": [
            {"token": token, "layers": [{"index": index, "values": token_values[k]}
                                        for k, index in enumerate(self.layer_indexes)]}
            for token, token_values in zip(self.tokens(i), per_token)]})

    def close(self):
        self.file.close()
        super().close()

    def abort(self):
        self.file.close()
        super().abort()


class TFRecordSink(_Sink):

    def __init__(self, *args):
        super().__init__(*args)
        self.writer = tf.io.TFRecordWriter(self.tmp)

    def write_line(self, i, values):
        n = int(self.examples.lengths[i])
        feature = {"linex_index": records.int64_feature([int(i)]),
                   "layers": records.int64_feature(self.layer_indexes),
                   "num_tokens": records.int64_feature([n])}
        if self.pooling == "none":
            start, end = self.examples.offsets[i], self.examples.offsets[i + 1]
            feature["tokens"] = records.bytes_feature([t.encode("utf-8") for t in self.tokens(i)])
            feature["token_ids"] = records.int64_feature(
                self.examples.token_ids[start:end].tolist())
            feature["segment_ids"] = records.int64_feature(self.examples.segment_ids(i).tolist())
        for k, index in enumerate(self.layer_indexes):
            feature[f"layer_{index}"] = records.float_feature(values[k].ravel())
        self.writer.write(tf.train.Example(
            features=tf.train.Features(feature=feature)).SerializeToString())

    def close(self):
        self.writer.close()
        super().close()

    def abort(self):
        self.writer.close()
        super().abort()


class NpzSink(_Sink):
    """Fills one .npy memory map per array in a scratch directory, in whatever order batches come,
    then stores them uncompressed in the .npz (a zip file)."""

    ordered = False

    def __init__(self, *args):
        super().__init__(*args)
        remote = file_io.is_remote(self.output_file)
        parent = None if remote else (os.path.dirname(os.path.abspath(self.output_file)))
        self.scratch = tempfile.mkdtemp(prefix=".extract_features-", dir=parent)
        e = self.examples
        rows = e.num_tokens if self.pooling == "none" else e.num_lines
        self.arrays = {}
        for index in self.layer_indexes:
            if rows:
                self.arrays[f"layer_{index}"] = np.lib.format.open_memmap(
                    os.path.join(self.scratch, f"layer_{index}.npy"), mode="w+",
                    dtype=np.float32, shape=(rows, self.hidden_size))
            else:  # a memory map cannot be empty
                self.arrays[f"layer_{index}"] = np.zeros((0, self.hidden_size), np.float32)

    def add(self, lines, values):
        if self.pooling == "none":
            ends = np.cumsum(self.examples.lengths[lines])
            for i, end, n in zip(lines, ends, self.examples.lengths[lines]):
                start = self.examples.offsets[i]
                for k, index in enumerate(self.layer_indexes):
                    self.arrays[f"layer_{index}"][start:start + n] = values[k, end - n:end]
        else:
            for k, index in enumerate(self.layer_indexes):
                self.arrays[f"layer_{index}"][lines] = values[k]

    def end_window(self, start, end):
        pass

    def _small_arrays(self):
        e = self.examples
        small = {"layers": np.array(self.layer_indexes, np.int64),
                 "linex_index": np.arange(e.num_lines, dtype=np.int64),
                 "pooling": np.array(self.pooling)}
        if self.pooling == "none":
            vocab = np.array(self.vocab_tokens or [""])
            small["offsets"] = e.offsets.astype(np.int64)
            small["token_ids"] = e.token_ids.astype(np.int32)
            small["tokens"] = vocab[e.token_ids] if e.num_tokens else np.zeros([0], "<U1")
            small["segment_ids"] = (np.concatenate([e.segment_ids(i) for i in range(e.num_lines)])
                                    if e.num_tokens else np.zeros([0], np.int32))
        else:
            small["num_tokens"] = e.lengths.astype(np.int32)
        return small

    def close(self):
        for name, values in self.arrays.items():
            if isinstance(values, np.memmap):
                values.flush()
            else:
                np.save(os.path.join(self.scratch, f"{name}.npy"), values, allow_pickle=False)
        self.arrays.clear()
        for name, value in self._small_arrays().items():
            np.save(os.path.join(self.scratch, f"{name}.npy"), value, allow_pickle=False)
        local = (os.path.join(self.scratch, "out.npz") if file_io.is_remote(self.tmp)
                 else self.tmp)
        with zipfile.ZipFile(local, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name in sorted(os.listdir(self.scratch)):
                if name.endswith(".npy"):
                    archive.write(os.path.join(self.scratch, name), arcname=name)
        if local != self.tmp:
            tf.io.gfile.copy(local, self.tmp, overwrite=True)
        shutil.rmtree(self.scratch, ignore_errors=True)
        super().close()

    def abort(self):
        self.arrays.clear()
        shutil.rmtree(self.scratch, ignore_errors=True)
        super().abort()


SINKS = {"jsonl": JsonlSink, "npz": NpzSink, "tfrecord": TFRecordSink}


class BackgroundWriter:
    """Runs a sink's add / end_window in a thread, so formatting overlaps the model's next batch."""

    _STOP = object()

    def __init__(self, sink, max_queued=4):
        self.sink = sink
        self.queue = queue.Queue(maxsize=max_queued)
        self.error = None
        self.thread = threading.Thread(target=self._run, name="extract_features-writer",
                                       daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            item = self.queue.get()
            if item is self._STOP:
                return
            if self.error is not None:
                continue  # drain; the error is raised in the main thread
            method, args = item
            try:
                getattr(self.sink, method)(*args)
            except BaseException as e:  # pylint: disable=broad-except
                self.error = e

    def _put(self, method, *args):
        if self.error is not None:
            raise self.error
        self.queue.put((method, args))

    def add(self, lines, values):
        self._put("add", lines, values)

    def end_window(self, start, end):
        self._put("end_window", start, end)

    def _join(self):
        self.queue.put(self._STOP)
        self.thread.join()

    def close(self):
        self._join()
        if self.error is not None:
            self.sink.abort()
            raise self.error
        try:
            self.sink.close()
        except BaseException:
            self.sink.abort()
            raise

    def abort(self):
        self._join()
        self.sink.abort()


# ---------------------------------------------------------------------------------------------------
# Putting it together


class Progress:
    """A line on stderr at most every PROGRESS_SECONDS: lines done, rate, ETA."""

    def __init__(self, total, stream=None, enabled=True):
        self.total, self.stream, self.enabled = total, stream, enabled
        self.start = self.last = time.perf_counter()

    def update(self, done, final=False):
        now = time.perf_counter()
        if not self.enabled or (not final and now - self.last < PROGRESS_SECONDS):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = (self.total - done) / rate if rate else 0.0
        percent = 100.0 * done / self.total if self.total else 100.0
        stream = self.stream or sys.stderr
        stream.write(f"extract_features: {done}/{self.total} lines ({percent:.0f}%), "
                     f"{rate:.1f} lines/s, ETA {int(eta) // 60}:{int(eta) % 60:02d}\n")
        stream.flush()


def line_windows(examples, ordered, per_token, row_bytes):
    """[(start, end)] of consecutive lines sorted together: everything when the output takes lines
    in any order, else windows whose outputs take about WINDOW_BYTES."""
    n = examples.num_lines
    if n == 0:
        return []
    if not ordered:
        return [(0, n)]
    sizes = row_bytes * (examples.lengths.astype(np.int64) if per_token else np.ones(n, np.int64))
    window_of = (np.cumsum(sizes) - sizes) // WINDOW_BYTES
    bounds = [0] + (np.flatnonzero(np.diff(window_of)) + 1).tolist() + [n]
    return list(zip(bounds[:-1], bounds[1:]))


class Extractor:
    """Everything that does not depend on the input: tokenizer, model, compiled function.

    extract_file() runs one input file to one output file; it can be called repeatedly.
    """

    def __init__(self, bert_config_file, init_checkpoint, vocab_file, layers="-1,-2,-3,-4",
                 do_lower_case=True, max_seq_length=128, batch_size=32, pooling="none",
                 compute_dtype=tf.float32, strategy=None):
        if not bert_config_file:
            raise InputError("--bert_config_file is required")
        if not vocab_file:
            raise InputError("--vocab_file is required")
        if batch_size < 1:
            raise InputError(f"--batch_size={batch_size} must be at least 1")
        if pooling not in POOLINGS:
            raise InputError(f"--pooling={pooling!r}; expected one of {', '.join(POOLINGS)}")
        config = modeling.BertConfig.from_json_file(bert_config_file)
        layer_indexes = parse_layers(layers, config.num_hidden_layers)
        if max_seq_length > config.max_position_embeddings:
            raise InputError(f"Cannot use sequence length {max_seq_length} because the BERT model "
                             f"was only trained up to sequence length "
                             f"{config.max_position_embeddings} ({bert_config_file})")
        if max_seq_length < 3:
            raise InputError(f"--max_seq_length={max_seq_length} leaves no room for text: it must "
                             "be at least 3 ([CLS] A [SEP] B [SEP] with one word piece)")
        if not init_checkpoint:
            raise checkpoints.CheckpointError(_NO_CHECKPOINT)
        checkpoints.resolve(init_checkpoint)   # a missing checkpoint fails before anything else
        self.config = config
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.pooling = pooling
        self.tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
        self.vocab_tokens = [None] * (max(self.tokenizer.inv_vocab, default=-1) + 1)
        for index, token in self.tokenizer.inv_vocab.items():
            self.vocab_tokens[index] = token
        # Indexes of duplicated vocabulary lines are never produced; fill them for numpy.
        self.vocab_tokens = [t if t is not None else "" for t in self.vocab_tokens]
        self.model = FeatureExtractor(config, init_checkpoint, layer_indexes, pooling,
                                      compute_dtype, strategy)
        self.layer_indexes = self.model.layer_indexes

    def extract_file(self, input_file, output_file, output_format="jsonl", progress=True):
        """Reads input_file, writes output_file. Returns a summary dict."""
        if output_format not in SINKS:
            raise InputError(f"--output_format={output_format!r}; expected one of "
                             f"{', '.join(OUTPUT_FORMATS)}")
        if not output_file:
            raise InputError("--output_file is required")
        started = time.perf_counter()
        examples = read_examples(input_file, self.tokenizer, self.max_seq_length)
        self.model.check_ids(examples)
        if examples.num_truncated:
            logging.warning("%d of %d lines were longer than --max_seq_length=%d word pieces and "
                            "were truncated", examples.num_truncated, examples.num_lines,
                            self.max_seq_length)
        directory = os.path.dirname(output_file)
        if directory:
            tf.io.gfile.makedirs(directory)
        sink = SINKS[output_format](output_file, examples, self.layer_indexes, self.pooling,
                                    self.config.hidden_size, self.vocab_tokens)
        writer = BackgroundWriter(sink)
        meter = Progress(examples.num_lines, enabled=progress)
        try:
            self._run(examples, writer, meter)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        seconds = time.perf_counter() - started
        meter.update(examples.num_lines, final=True)
        summary = dict(lines=examples.num_lines, tokens=examples.num_tokens,
                       truncated=examples.num_truncated, seconds=seconds, output_file=output_file)
        logging.info("Wrote features of %d lines (%d word pieces, %d truncated) to %s in %.1f s",
                     examples.num_lines, examples.num_tokens, examples.num_truncated, output_file,
                     seconds)
        return summary

    def _run(self, examples, writer, meter):
        rows = self.model.batch_rows(self.batch_size)
        row_bytes = 4 * self.config.hidden_size * len(self.layer_indexes)
        done = 0
        for start, end in line_windows(examples, writer.sink.ordered, self.pooling == "none",
                                       row_bytes):
            order = start + np.argsort(examples.lengths[start:end], kind="stable")
            for b in range(0, len(order), self.batch_size):
                lines = order[b:b + self.batch_size]
                values = self.model(*examples.batch(lines, rows, self.model.length_multiple,
                                                    self.max_seq_length))
                if self.pooling != "none":
                    values = values[:, :len(lines)]
                writer.add(lines, values)
                done += len(lines)
                meter.update(done)
            writer.end_window(start, end)


REQUIRED_FLAGS = ("input_file", "output_file", "vocab_file", "bert_config_file",
                  "init_checkpoint")


def run(input_file, output_file, bert_config_file, init_checkpoint, vocab_file,
        layers="-1,-2,-3,-4", do_lower_case=True, max_seq_length=128, batch_size=32,
        output_format="jsonl", pooling="none", compute_dtype=tf.float32, strategy=None,
        progress=True):
    """extract_features.py as a function; returns extract_file's summary."""
    values = dict(input_file=input_file, output_file=output_file, vocab_file=vocab_file,
                  bert_config_file=bert_config_file, init_checkpoint=init_checkpoint)
    for name in REQUIRED_FLAGS:
        if not values[name]:
            if name == "init_checkpoint":
                raise checkpoints.CheckpointError(_NO_CHECKPOINT)
            raise InputError(f"--{name} is required")
    if output_format not in SINKS:
        raise InputError(f"--output_format={output_format!r}; expected one of "
                         f"{', '.join(OUTPUT_FORMATS)}")
    extractor = Extractor(bert_config_file, init_checkpoint, vocab_file, layers, do_lower_case,
                          max_seq_length, batch_size, pooling, compute_dtype, strategy)
    return extractor.extract_file(input_file, output_file, output_format, progress)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    f = FLAGS
    for name in REQUIRED_FLAGS:  # before building a strategy (TPU start-up takes a while)
        if not getattr(f, name):
            if name == "init_checkpoint":
                raise checkpoints.CheckpointError(_NO_CHECKPOINT)
            raise InputError(f"--{name} is required")
    checkpoints.resolve(f.init_checkpoint)
    strategy = common_flags.strategy_from_flags(f)
    run(f.input_file, f.output_file, f.bert_config_file, f.init_checkpoint, f.vocab_file,
        f.layers, f.do_lower_case, f.max_seq_length, f.batch_size, f.output_format,
        f.pooling, common_flags.compute_dtype_from_flags(f), strategy)
    return 0


if __name__ == "__main__":
    common_flags.run(main)
