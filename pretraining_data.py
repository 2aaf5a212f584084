"""Pretraining data, the algorithm and the record format: what create_pretraining_data.py's worker
processes and its Apache Beam pipeline (pretraining_pipeline.py) share.

  * `Settings` (the flags that shape the data), `Counts` (what was made, for the summary),
    `Instances` (masked examples as arrays).
  * `InstanceMaker`: the original algorithm on token ids (document packing, short targets,
    random-next B segments, truncation, masking with 80/10/10, whole-word masking), for a block
    of documents with one seed (`from_documents`) or one document with a seed of its own
    (`document_pairs`, then `masked`).
  * `ExampleEncoder`: `Instances` -> serialized `tf.train.Example`s, without TensorFlow.
  * Reading text: `file_pieces` (a file in pieces that end at document breaks, in bounded
    memory), `decode_piece` (UTF-8, an error naming file, line and column), `document_lines` and
    `read_documents` (documents of sentences, tokenized).
  * `output_paths` (--output_file: a list, or PREFIX@N), `check_vocab` and `summary`.

Nothing here imports TensorFlow or Apache Beam, or reads flags.
"""
import dataclasses
import itertools
import re
import struct

import numpy as np
from absl import logging

from errors import InputError
import records
import tokenization

FEATURES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
            "masked_lm_weights", "next_sentence_labels")
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[MASK]", "[UNK]")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a worker needs to turn a block of text into serialized records."""
    vocab_file: str
    do_lower_case: bool = True
    do_whole_word_mask: bool = False
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    random_seed: int = 12345
    dupe_factor: int = 10
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    num_outputs: int = 1

    def validate(self):
        problems = []
        if self.max_seq_length < 5:
            problems.append("--max_seq_length=%d: need at least 5 ([CLS] A [SEP] B [SEP])"
                            % self.max_seq_length)
        if self.max_predictions_per_seq < 1:
            problems.append("--max_predictions_per_seq must be at least 1")
        if not 0.0 < self.masked_lm_prob <= 1.0:
            problems.append("--masked_lm_prob=%g: expected a value in (0, 1]" % self.masked_lm_prob)
        if not 0.0 <= self.short_seq_prob <= 1.0:
            problems.append("--short_seq_prob=%g: expected a value in [0, 1]" % self.short_seq_prob)
        if self.dupe_factor < 1:
            problems.append("--dupe_factor must be at least 1")
        if problems:
            raise InputError("; ".join(problems))


@dataclasses.dataclass
class Counts:
    """What a block produced; added up for progress and the summary."""
    bytes: int = 0
    documents: int = 0
    instances: int = 0
    tokens: int = 0
    masked: int = 0
    masked_as_mask: int = 0
    masked_kept: int = 0
    random_next: int = 0

    def add(self, other):
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


@dataclasses.dataclass
class Instances:
    """N training examples, [CLS] A [SEP] B [SEP] after masking, as arrays (S = max_seq_length,
    P = max_predictions_per_seq)."""
    input_ids: np.ndarray             # [N, S], 0 after each example's end
    lengths: np.ndarray               # [N] tokens of each example
    len_a: np.ndarray                 # [N] tokens of A; B starts at len_a + 2
    masked_lm_positions: np.ndarray   # [N, P] sorted, 0 after the num_masked first
    masked_lm_ids: np.ndarray         # [N, P] the original ids at those positions, 0 after
    num_masked: np.ndarray            # [N]
    is_random_next: np.ndarray        # [N] bool

    def __len__(self):
        return len(self.lengths)


class InstanceMaker:
    """The original algorithm, on token ids.

    Per document: one target length (the budget `max_seq_length - 3`, or with `short_seq_prob` a
    random length from 2 to the budget); sentences accumulate until the target is reached or the
    document ends; A takes a random number (at least one) of them; B is the rest, or -- when only
    one sentence accumulated, or with probability 0.5 -- the continuation of a random other
    document, in which case the sentences A did not take are used again. The longer of A and B
    loses a token from its front or back at random until both fit. Then
    `min(max_predictions_per_seq, max(1, round(len(tokens) * masked_lm_prob)))` positions other
    than [CLS]/[SEP] are masked, in random order (with whole-word masking, whole words that still
    fit); each becomes [MASK] with probability 0.8, a random vocabulary id with 0.1, and stays with
    0.1.

    The random draws follow the original's where they shape the pairs (Python's `random`, in the
    original's order). The masking is drawn with the same distribution but differently: for a
    whole block at once with numpy (a uniformly random subset of the candidates per instance,
    and the 80/10/10 choices), or, with whole-word masking, by a shuffle of the words that stops
    once enough are chosen. It costs a fraction of the original's shuffle of every candidate list.
    """

    def __init__(self, settings, vocab):
        self.settings = settings
        self.vocab_size = len(vocab)
        self.cls_id, self.sep_id, self.mask_id = (vocab[t] for t in ("[CLS]", "[SEP]", "[MASK]"))
        size = max(vocab.values()) + 1
        self.is_continuation = bytearray(size)
        for token, index in vocab.items():
            if token.startswith("##"):
                self.is_continuation[index] = 1

    def from_documents(self, documents, rng, np_rng, counts):
        """All masked instances of `dupe_factor` passes over `documents` (lists of id lists),
        shuffled; adds what they hold to `counts`."""
        pairs = []
        for _ in range(self.settings.dupe_factor):
            for index in range(len(documents)):
                pairs.extend(self.from_document(documents, index, rng))
        rng.shuffle(pairs)
        return self.masked(pairs, rng, np_rng, counts)

    def document_pairs(self, documents, index, rng):
        """The pairs of `dupe_factor` passes over `documents[index]` (random next sentences from
        the others), unmasked, drawn from `rng` alone: a document's own seed makes them the same
        wherever and in whatever order the documents are processed (pretraining_pipeline.py)."""
        pairs = []
        for _ in range(self.settings.dupe_factor):
            pairs.extend(self.from_document(documents, index, rng))
        return pairs

    def from_document(self, documents, index, rng):
        """(ids of [CLS] A [SEP] B [SEP], len(A), is_random_next) for one pass over a document."""
        document = documents[index]
        budget = self.settings.max_seq_length - 3
        target = budget
        if rng.random() < self.settings.short_seq_prob:
            target = _randint(rng, 2, budget)
        pairs = []
        chunk, chunk_length = [], 0
        i = 0
        while i < len(document):
            chunk.append(document[i])
            chunk_length += len(document[i])
            if i == len(document) - 1 or chunk_length >= target:
                a_end = _randint(rng, 1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = _concat(chunk[:a_end])
                if len(chunk) == 1 or rng.random() < 0.5:
                    is_random_next = True
                    tokens_b = _random_continuation(documents, index, target - len(tokens_a), rng)
                    i -= len(chunk) - a_end  # the sentences A left are used again
                else:
                    is_random_next = False
                    tokens_b = _concat(chunk[a_end:])
                _truncate_pair(tokens_a, tokens_b, budget, rng)
                ids = [self.cls_id, *tokens_a, self.sep_id, *tokens_b, self.sep_id]
                pairs.append((ids, len(tokens_a), is_random_next))
                chunk, chunk_length = [], 0
            i += 1
        return pairs

    def masked(self, pairs, rng, np_rng, counts):
        """`Instances` of `pairs`, masked; shapes: N pairs, S = max_seq_length, P = predictions."""
        settings = self.settings
        n, s, p = len(pairs), settings.max_seq_length, settings.max_predictions_per_seq
        lengths = np.fromiter((len(t) for t, _, _ in pairs), np.int64, n)          # [N]
        ids = np.zeros((n, s), np.int64)                                            # [N, S]
        ids[np.arange(s) < lengths[:, None]] = np.fromiter(
            itertools.chain.from_iterable(t for t, _, _ in pairs), np.int64, int(lengths.sum()))
        len_a = np.fromiter((a for _, a, _ in pairs), np.int64, n)                 # [N]
        # np.round rounds halves to even, as Python 3's round() in the original.
        k = np.minimum(p, np.maximum(1, np.round(lengths * settings.masked_lm_prob))).astype(int)
        if settings.do_whole_word_mask:
            positions = np.full((n, p), s)
            for row, (tokens, a, _) in enumerate(pairs):
                chosen = self._whole_word_positions(tokens, a, k[row], rng)
                positions[row, :len(chosen)] = chosen
        else:
            position = np.arange(s)
            candidate = ((position >= 1) & (position < lengths[:, None] - 1)
                         & (position != len_a[:, None] + 1))                        # [N, S]
            # The k smallest of i.i.d. uniform keys: a uniformly random k-subset per row.
            keys = np.where(candidate, np_rng.random((n, s)), 2.0)
            first = np.argsort(keys, axis=1)[:, :p]                                 # [N, P]
            k = np.minimum(k, candidate.sum(1))
            positions = np.where(np.arange(p) < k[:, None], first, s)
        positions.sort(axis=1)                                 # [N, P], padded with S at the end
        valid = positions < s
        gather = np.minimum(positions, s - 1)
        labels = np.take_along_axis(ids, gather, 1)
        as_mask = valid & (np_rng.random((n, p)) < 0.8)
        kept = valid & ~as_mask & (np_rng.random((n, p)) < 0.5)
        replaced = valid & ~as_mask & ~kept
        new = np.where(as_mask, self.mask_id,
                       np.where(kept, labels, np_rng.integers(0, self.vocab_size, (n, p))))
        rows = np.broadcast_to(np.arange(n)[:, None], (n, p))
        ids[rows[valid], positions[valid]] = new[valid]

        counts.instances += n
        counts.tokens += int(lengths.sum())
        counts.masked += int(valid.sum())
        counts.masked_as_mask += int(as_mask.sum())
        counts.masked_kept += int(kept.sum()) + int((replaced & (new == labels)).sum())
        is_random_next = np.fromiter((r for _, _, r in pairs), bool, n)
        counts.random_next += int(is_random_next.sum())
        return Instances(ids, lengths, len_a, np.where(valid, positions, 0),
                         np.where(valid, labels, 0), valid.sum(1), is_random_next)

    def _whole_word_positions(self, ids, len_a, num_to_predict, rng):
        """Whole words (a token and its "##" pieces) in random order, while they still fit."""
        groups = []
        continuation = self.is_continuation
        for p in (*range(1, len_a + 1), *range(len_a + 2, len(ids) - 1)):
            # As the original: a "##" piece joins the group before it, even across the [SEP].
            if groups and continuation[ids[p]]:
                groups[-1].append(p)
            else:
                groups.append([p])
        positions = []
        # A Fisher-Yates shuffle, stopped once enough positions are chosen.
        for j in range(len(groups)):
            if len(positions) >= num_to_predict:
                break
            r = _randint(rng, j, len(groups) - 1)
            groups[j], groups[r] = groups[r], groups[j]
            if len(positions) + len(groups[j]) <= num_to_predict:
                positions.extend(groups[j])
        return positions


def _randint(rng, a, b):
    """Like rng.randint(a, b), a fraction of the cost (bias below 2**-40 for any b - a here)."""
    return a + int(rng.random() * (b - a + 1))


def _concat(sentences):
    tokens = []
    for sentence in sentences:
        tokens.extend(sentence)
    return tokens


def _random_continuation(documents, index, target_length, rng):
    """Sentences from a random point of a random other document, up to `target_length` tokens."""
    for _ in range(10):
        other = _randint(rng, 0, len(documents) - 1)
        if other != index:
            break
    document = documents[other]
    tokens = []
    for j in range(_randint(rng, 0, len(document) - 1), len(document)):
        tokens.extend(document[j])
        if len(tokens) >= target_length:
            break
    return tokens


def _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Shortens the longer list, from the front or the back at random, until both fit."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


# ---------------------------------------------------------------------------
# Serialization: tf.train.Example protos without TensorFlow (importing it would cost each worker
# seconds), from records.py's wire-format primitives.
# ---------------------------------------------------------------------------


class ExampleEncoder:
    """`Instances` -> serialized `tf.train.Example`s with the original features.

    Every feature has a fixed number of values, so everything but the varint-packed ids and
    positions is the same for all records, and the bytes in front of each feature's values
    (records.feature_prefix) are computed once per size.
    """

    def __init__(self, max_seq_length, max_predictions_per_seq, vocab_size):
        self.seq, self.pred = max_seq_length, max_predictions_per_seq
        self._prefixes = {}
        self._weights = [struct.pack("<%df" % self.pred, *([1.0] * k + [0.0] * (self.pred - k)))
                         for k in range(self.pred + 1)]
        self._next_sentence = [
            self._prefix("next_sentence_labels", records.INT64_LIST, 1) + bytes([v])
            for v in (0, 1)]

    def _prefix(self, name, kind, num_bytes):
        key = (name, num_bytes)
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = self._prefixes[key] = records.feature_prefix(name, kind, num_bytes)
        return prefix

    def encode(self, instances):
        """Serialized Examples of `Instances` (the varints of a whole block at once)."""
        ids, ids_end = records.varint_rows(instances.input_ids)
        positions, positions_end = records.varint_rows(instances.masked_lm_positions)
        labels, labels_end = records.varint_rows(instances.masked_lm_ids)
        s, prefix, int64 = self.seq, self._prefix, records.INT64_LIST
        mask_prefix = prefix("input_mask", int64, s)
        segment_prefix = prefix("segment_ids", int64, s)
        weights_prefix = prefix("masked_lm_weights", records.FLOAT_LIST, 4 * self.pred)
        serialized = []
        ids_start = positions_start = labels_start = 0
        for n, len_a, k, random_next, ids_stop, positions_stop, labels_stop in zip(
                instances.lengths.tolist(), instances.len_a.tolist(),
                instances.num_masked.tolist(), instances.is_random_next.tolist(), ids_end,
                positions_end, labels_end):
            b_start = len_a + 2
            serialized.append(records.example_bytes(b"".join((
                prefix("input_ids", int64, ids_stop - ids_start), ids[ids_start:ids_stop],
                mask_prefix, b"\x01" * n, bytes(s - n),
                segment_prefix, bytes(b_start), b"\x01" * (n - b_start), bytes(s - n),
                prefix("masked_lm_positions", int64, positions_stop - positions_start),
                positions[positions_start:positions_stop],
                prefix("masked_lm_ids", int64, labels_stop - labels_start),
                labels[labels_start:labels_stop],
                weights_prefix, self._weights[k],
                self._next_sentence[random_next]))))
            ids_start, positions_start, labels_start = ids_stop, positions_stop, labels_stop
        return serialized


# ---------------------------------------------------------------------------
# Reading text: files in document-aligned pieces, documents of tokenized sentences.
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Piece:
    """Whole documents of one file, from line `first_line` on."""
    path: str
    first_line: int
    data: bytes


def _last_document_break(data):
    return max(data.rfind(b"\n\n"), data.rfind(b"\n\r\n"))


def file_pieces(f, path, piece_size):
    """Yields `Piece`s of the open binary file `f` (named `path` in messages) of about
    `piece_size` bytes that end at a document break; an empty file yields none."""
    split_warned = saw_break = False
    first_line = 1
    pending = b""
    empty = True
    while True:
        data = f.read(piece_size)
        pending += data
        if data and len(pending) < piece_size:
            continue
        if not data:
            cut = len(pending)
            if empty and not cut:
                logging.warning("%s is empty; skipping it.", path)
        else:
            cut = _last_document_break(pending) + 1
            if cut == 0:
                cut = pending.rfind(b"\n") + 1
                if cut == 0:
                    continue  # one line longer than a piece: read on
                if not split_warned:
                    logging.warning(
                        "%s: a document longer than --block_size_mb=%g MB (line %d on) is "
                        "split into several. Separate documents with blank lines.",
                        path, piece_size / 1e6, first_line)
                    split_warned = True
        if cut:
            piece = Piece(path, first_line, pending[:cut])
            saw_break = saw_break or _last_document_break(piece.data) >= 0
            first_line += piece.data.count(b"\n")
            pending = pending[cut:]
            empty = False
            yield piece
        if not data:
            break
    if not saw_break and first_line > 2:
        logging.warning("%s has no blank lines between documents, so it is read as one "
                        "document: next-sentence pairs then pair parts of that document.", path)


def decode_piece(piece):
    """The text of a `Piece`; bytes that are not UTF-8 raise an InputError naming the file, line
    and column."""
    try:
        return piece.data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = piece.first_line + piece.data.count(b"\n", 0, err.start)
        column = err.start - (piece.data.rfind(b"\n", 0, err.start) + 1) + 1
        raise InputError(
            "%s line %d, column %d: not valid UTF-8 (byte 0x%02x); the input must be UTF-8 text"
            % (piece.path, line, column, piece.data[err.start])) from None


def document_lines(text):
    """Yields each document of `text` (documents end at blank lines) as its list of stripped,
    non-empty lines."""
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if line:
            lines.append(line)
        elif lines:
            yield lines
            lines = []
    if lines:
        yield lines


def tokenized_document(lines, tokenizer):
    """The sentences of a document (its lines) as id lists; lines without tokens are left out."""
    tokenize = tokenizer.tokenize_to_ids
    return [ids for ids in map(tokenize, lines) if ids]


def read_documents(text, tokenizer):
    """Documents (lists of non-empty sentences, each a list of ids) of one block of text;
    documents without tokens are left out."""
    documents = (tokenized_document(lines, tokenizer) for lines in document_lines(text))
    return [document for document in documents if document]


# ---------------------------------------------------------------------------
# Output names, the vocabulary and the summary.
# ---------------------------------------------------------------------------


def output_paths(output_file):
    """The files of --output_file: a comma-separated list, or PREFIX@N for N files named
    PREFIX-00000-of-0000N (the shard names of Beam's file sinks)."""
    sharded = re.fullmatch(r"(.+)@(\d+)", output_file.strip())
    if sharded and "," not in output_file:
        prefix, count = sharded.group(1), int(sharded.group(2))
        if count < 1:
            raise InputError("--output_file=%s: the number of files must be at least 1"
                             % output_file)
        return ["%s-%05d-of-%05d" % (prefix, i, count) for i in range(count)]
    paths = [p.strip() for p in output_file.split(",") if p.strip()]
    if not paths:
        raise InputError("--output_file names no file")
    return paths


def check_vocab(vocab_file):
    vocab = tokenization.load_vocab(vocab_file)
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise InputError("%s lacks the special tokens %s that pretraining data needs (a BERT "
                         "vocab.txt has [PAD], [UNK], [CLS], [SEP], [MASK])"
                         % (vocab_file, ", ".join(missing)))


def summary(c, seconds):
    """The closing line of a run: what `Counts` `c` holds, made in `seconds`."""
    share = lambda part, whole: 100.0 * part / whole if whole else 0.0
    return ("%d instances, %d tokens (%.1f per instance), %d documents, %.1f MB in %.1f s "
            "(%.2f MB/s, %.0f instances/s); masked %.2f%% of tokens (%.1f%% [MASK], %.1f%% "
            "random, %.1f%% kept); random next sentence in %.1f%% of pairs" % (
                c.instances, c.tokens, c.tokens / max(c.instances, 1), c.documents,
                c.bytes / 1e6, seconds, c.bytes / 1e6 / max(seconds, 1e-9),
                c.instances / max(seconds, 1e-9), share(c.masked, c.tokens),
                share(c.masked_as_mask, c.masked),
                share(c.masked - c.masked_as_mask - c.masked_kept, c.masked),
                share(c.masked_kept, c.masked), share(c.random_next, c.instances)))
