"""In-graph BERT tokenization, token for token as ``tokenization.py``, and the TF Hub preprocessor.

``Preprocessor`` is a ``tf.Module`` whose functions are TensorFlow graphs (core ops, plus
``tensorflow_text``'s WordPiece op), so it can be saved as a SavedModel and served without
Python; ``save_preprocessor`` writes it in TF Hub's preprocessor format (``bert_*_preprocess``):
callable on a string batch, with ``.tokenize`` and ``.bert_pack_inputs``.

Why not ``tensorflow_text.BertTokenizer``
-----------------------------------------
Its normaliser is not the original's: it lower-cases by NFKC case folding ("…" becomes "...")
and treats control characters and some spaces as separators instead of dropping them. The
rules here are ``tokenization.py``'s (see its module docstring), evaluated with the exporting
interpreter's ``unicodedata`` and baked into the graph as tables, so the graph gives the same
tokens wherever it runs, whatever Unicode version TensorFlow's own ops were built with.

The graph, for a batch of strings (shapes: B batch, N characters of the batch, W words)
-------------------------------------------------------------------------------------
1. decode UTF-8 into code points [N] (invalid UTF-8 is an error, as in ``tokenization.py``);
   look each up in a per-code-point table of properties (``_char_properties``);
2. drop U+0000, U+FFFD and controls (Cc, Cf); characters that ``str.split()`` splits on
   (cleaned whitespace, U+2028, U+2029) end a token and vanish; a CJK ideograph is a token
   of its own. Tokens never cross strings;
3. if lower-casing, per token as ``str.lower()`` then NFD then dropping Mn marks: each code
   point is replaced by its lower-cased, fully decomposed form (a table of replacement
   sequences: U+0130 becomes "i" + U+0307, a Hangul syllable its jamo); a capital sigma
   becomes final sigma in CPython's Final_Sigma context within the token; NFD's canonical
   reordering is applied where it can matter after the marks go (combining characters that
   are not Mn); then Mn marks are dropped;
4. every punctuation character is a word of its own; the rest of a token is split there;
5. WordPiece on the words [W]: ``tensorflow_text.FastWordpieceTokenizer`` without its own
   pre-tokenization (the same pieces as the original's greedy longest-match-first search, "##"
   for non-initial pieces, a word with an unmatchable position [UNK]), with the ids of the
   vocabulary as ``tokenization.load_vocab`` reads it; a word longer than 200 code points (the
   original counts characters, the op counts bytes) becomes [UNK] first (``WordPiece``).

Steps 1-4 are ``basic_tokenize`` (``BasicTokenizer.tokenize``), all in core TensorFlow ops over
the flat [N] code points of the batch, so their cost does not depend on how the text is split
into strings; ``pack_inputs`` is the packing.

The tables describe the exporting Python's Unicode (``unicodedata.unidata_version``); a
SavedModel keeps them, so it tokenizes as the Python that wrote it.
"""
import functools
import unicodedata

import numpy as np
import tensorflow as tf
import tensorflow_text as text

import file_io
import tokenization
from errors import InputError

# Per-code-point property bits (``_char_properties``).
_DROP = 1          # deleted by the cleaner (U+0000, U+FFFD, Cc and Cf but tab, newline, CR)
_SPLIT = 2         # ends a token: cleaned whitespace, and U+2028/U+2029 for str.split()
_CJK = 4           # a CJK ideograph: a token of its own
_PUNCT = 8         # a word of its own
_MN = 16           # a non-spacing mark: dropped after NFD when lower-casing
_CASE_IGNORABLE = 32   # skipped by str.lower()'s Final_Sigma context test
_CASED = 64            # a cased letter for that test (and not case-ignorable)
_CCC_SHIFT = 8         # bits 8-15: canonical combining class (NFD reordering)
_MAP_SHIFT = 16        # bits 16-47: row of the lower-case + NFD replacement table (0: none)
_BLOCK = 256           # code points per block of the two-level table

_CAPITAL_SIGMA, _FINAL_SIGMA = 0x3A3, 0x3C2
_MAX_CHARS_PER_WORD = 200   # tokenization.WordpieceTokenizer's default: longer words are [UNK]
_MAX_BYTES_PER_WORD = 1024  # out of reach: a word that gets to the op has 800 bytes at most
_SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]")


# ---------------------------------------------------------------------------
# Tables (Python, from tokenization.py's rules).
# ---------------------------------------------------------------------------


def _sigma_class(char):
    """``_CASE_IGNORABLE``, ``_CASED`` or 0, read off CPython's own ``str.lower()``.

    CPython lower-cases U+03A3 to final sigma when a cased character precedes it and none
    follows it, skipping case-ignorable characters both ways; Python does not expose those two
    properties, so they are probed: a character right before the sigma makes it final iff it
    is cased and not ignorable; between "A" and the sigma, iff it is ignorable or cased.
    """
    if (char + "\u03a3").lower()[-1] == "\u03c2":
        return _CASED
    if ("A" + char + "\u03a3").lower()[-1] == "\u03c2":
        return _CASE_IGNORABLE
    return 0


def _flags(char):
    cp = ord(char)
    if tokenization._is_dropped(char):  # pylint: disable=protected-access
        return _DROP
    flags = 0
    if tokenization._is_whitespace(char) or char.isspace():  # pylint: disable=protected-access
        flags |= _SPLIT
    if tokenization._is_chinese_char(cp):  # pylint: disable=protected-access
        flags |= _CJK
    if tokenization._is_punctuation(char):  # pylint: disable=protected-access
        flags |= _PUNCT
    if unicodedata.category(char) == "Mn":
        flags |= _MN
    return flags | _sigma_class(char) | unicodedata.combining(char) << _CCC_SHIFT


@functools.lru_cache(maxsize=1)
def _char_properties():
    """(properties int64 [0x110000], replacement values int32 [R], row splits int64 [rows + 1]).

    Row 0 of the replacement table is unused (no replacement); row ``k`` of a code point is
    what lower-casing then NFD makes of it, its canonical reordering left to the graph (step 3).
    A capital sigma's row is the small sigma; the last row is the final sigma.
    """
    props = np.zeros(0x110000, np.int64)
    rows, values = [0], [0]
    for cp in range(0x110000):
        char = chr(cp)
        flags = _flags(char)
        props[cp] = flags
        if flags & (_DROP | _SPLIT):
            continue
        mapped = unicodedata.normalize("NFD", char.lower())
        if mapped != char:
            if any(c.isspace() for c in mapped):  # the original splits only once, before
                raise AssertionError("U+%04X lower-cases to a space" % cp)
            props[cp] |= len(rows) << _MAP_SHIFT
            rows.append(len(values))
            values.extend(map(ord, mapped))
    rows.append(len(values))
    values.append(_FINAL_SIGMA)
    rows.append(len(values))
    return props, np.array(values, np.int32), np.array(rows, np.int64)


class _CharTables:
    """The graph's copy of ``_char_properties``: a two-level table (blocks of 256 code points,
    identical blocks stored once: ~1 MB instead of 9) and the replacement rows."""

    def __init__(self):
        props, values, splits = _char_properties()
        blocks, block_of = np.unique(props.reshape(-1, _BLOCK), axis=0, return_inverse=True)
        self.block_of = tf.constant(block_of.reshape(-1).astype(np.int32))
        self.blocks = tf.constant(blocks.reshape(-1))
        self.values = tf.constant(values)
        self.splits = tf.constant(splits)
        self.final_sigma_row = len(splits) - 2

    def lookup(self, cps):
        """Properties int64 [n] of code points int32 [n]."""
        block = tf.gather(self.block_of, cps // _BLOCK)
        return tf.gather(self.blocks, block * _BLOCK + cps % _BLOCK)


def _has(props, flag):
    return tf.not_equal(props & flag, 0)


# ---------------------------------------------------------------------------
# Basic tokenization in the graph (steps 1-4).
# ---------------------------------------------------------------------------


def _shifted(values, first):
    """``values`` moved one place right, ``first`` in front: each element's predecessor."""
    return tf.concat([tf.fill([1], tf.cast(first, values.dtype)), values[:-1]], axis=0)


def _tokens(strings, tables):
    """Steps 1 and 2: the kept code points, the string and the token each belongs to.

    Args:
      strings: string [B].
    Returns:
      (code points int32 [N], their row in the batch int64 [N], their token's index int64 [N],
      counting across the batch, their properties int64 [N]).
    """
    cps = tf.strings.unicode_decode(strings, "UTF-8", errors="strict")
    chars, rows = cps.flat_values, cps.value_rowids()
    props = tables.lookup(chars)
    kept = tf.logical_not(_has(props, _DROP))
    chars, rows, props = (tf.boolean_mask(t, kept) for t in (chars, rows, props))
    split, cjk = _has(props, _SPLIT), _has(props, _CJK)
    starts = (tf.not_equal(rows, _shifted(rows, -1)) | _shifted(split, True) | cjk
              | _shifted(cjk, False))
    kept = tf.logical_not(split)
    chars, rows, props, starts = (tf.boolean_mask(t, kept) for t in (chars, rows, props, starts))
    token = tf.cumsum(tf.cast(starts, tf.int64)) - 1
    return chars, rows, token, props


def _final_sigmas(chars, token, props):
    """Which capital sigmas ``str.lower()`` makes final: bool [number of U+03A3 in chars].

    CPython's rule, within the token: the nearest character before that is not case-ignorable
    is cased, and the nearest after that is not case-ignorable is missing or not cased.
    """
    at = tf.where(tf.equal(chars, _CAPITAL_SIGMA))[:, 0]
    stops = tf.where(tf.logical_not(_has(props, _CASE_IGNORABLE)))[:, 0]  # sigma is one
    count = tf.size(stops, out_type=tf.int64)

    def cased_stop(index):
        """Whether stops[index] exists, is in the sigma's token and is cased."""
        valid = (index >= 0) & (index < count)
        where = tf.gather(stops, tf.clip_by_value(index, 0, tf.maximum(count - 1, 0)))
        same = tf.equal(tf.gather(token, where), tf.gather(token, at))
        return valid & same & _has(tf.gather(props, where), _CASED)

    before = tf.searchsorted(stops, at, side="left", out_type=tf.int64) - 1
    after = tf.searchsorted(stops, at, side="right", out_type=tf.int64)
    return cased_stop(before) & tf.logical_not(cased_stop(after))


def _replace(chars, rows, token, props, tables):
    """Step 3 up to the marks: each code point replaced by its lower-cased NFD sequence.

    Returns (code points, rows, tokens), each [M] (M >= N: a replacement may be longer).
    """
    row = tf.bitwise.right_shift(props, _MAP_SHIFT)
    sigma_at = tf.where(tf.equal(chars, _CAPITAL_SIGMA))
    row = tf.cond(
        tf.size(sigma_at) > 0,
        lambda: tf.tensor_scatter_nd_update(
            row, sigma_at, tf.where(_final_sigmas(chars, token, props),
                                    tf.constant(tables.final_sigma_row, tf.int64),
                                    tf.gather_nd(row, sigma_at))),
        lambda: row)
    starts = tf.gather(tables.splits, row)
    lengths = tf.where(row > 0, tf.gather(tables.splits, row + 1) - starts, 1)

    def expand():
        source = tf.repeat(tf.range(tf.size(chars, out_type=tf.int64)), lengths)
        offset = tf.range(tf.reduce_sum(lengths)) - tf.gather(
            tf.cumsum(lengths, exclusive=True), source)
        replaced = tf.gather(tables.values, tf.gather(starts, source) + offset)
        out = tf.where(tf.gather(row, source) > 0, replaced, tf.gather(chars, source))
        return out, tf.gather(rows, source), tf.gather(token, source)

    def one_for_one():  # the same when no replacement is longer or shorter (most text)
        return tf.where(row > 0, tf.gather(tables.values, starts), chars), rows, token

    return tf.cond(tf.reduce_all(tf.equal(lengths, 1)), one_for_one, expand)


def _canonical_order(chars, token, props):
    """NFD's canonical reordering: within each run of characters with a non-zero combining
    class (in one token), a stable sort by class. Only [M] code points and their properties
    change places (returned in the new order); rows and tokens stay as they are."""
    ccc = tf.bitwise.right_shift(props, _CCC_SHIFT) % 256
    starts = tf.equal(ccc, 0) | tf.not_equal(token, _shifted(token, -1))
    run = tf.cumsum(tf.cast(starts, tf.int64))
    order = tf.argsort(run * 256 + ccc, stable=True)
    return tf.gather(chars, order), tf.gather(props, order)


def _lower_and_strip_accents(chars, rows, token, tables):
    """Step 3: ``str.lower()``, NFD and dropping Mn marks, per token. Returns the [M'] kept
    code points, rows, tokens and their properties."""
    chars, rows, token = _replace(chars, rows, token, tables.lookup(chars), tables)
    props = tables.lookup(chars)
    # Reordering can only matter where a combining character survives the marks' removal.
    moves = _has(props, 255 << _CCC_SHIFT) & tf.logical_not(_has(props, _MN))
    chars, props = tf.cond(tf.reduce_any(moves),
                           lambda: _canonical_order(chars, token, props),
                           lambda: (chars, props))
    kept = tf.logical_not(_has(props, _MN))
    return tuple(tf.boolean_mask(t, kept) for t in (chars, rows, token, props))


def basic_tokenize(strings, tables, do_lower_case):
    """``tokenization.BasicTokenizer.tokenize`` of each string, as code points.

    Args:
      strings: string [B], UTF-8.
      tables: a ``_CharTables``.
      do_lower_case: a Python bool.
    Returns:
      int32 RaggedTensor [B, (words), (code points)].
    """
    chars, rows, token, props = _tokens(strings, tables)
    if do_lower_case:
        chars, rows, token, props = _lower_and_strip_accents(chars, rows, token, tables)
    punct = _has(props, _PUNCT)
    starts = tf.not_equal(token, _shifted(token, -1)) | punct | _shifted(punct, False)
    word = tf.cumsum(tf.cast(starts, tf.int64)) - 1
    words = tf.RaggedTensor.from_value_rowids(chars, word, nrows=tf.reduce_sum(
        tf.cast(starts, tf.int64)), validate=False)
    return tf.RaggedTensor.from_value_rowids(
        words, tf.boolean_mask(rows, starts), nrows=tf.size(strings, out_type=tf.int64),
        validate=False)


# ---------------------------------------------------------------------------
# WordPiece (step 5).
# ---------------------------------------------------------------------------


def _special_ids(vocab, vocab_file):
    """The ids packing and WordPiece need; a vocabulary without one is an InputError."""
    missing = [token for token in _SPECIAL_TOKENS if token not in vocab]
    if missing:
        raise InputError("Vocabulary file %s has no %s token" % (vocab_file, " or ".join(missing)))
    return {token: vocab[token] for token in _SPECIAL_TOKENS + ("[MASK]",) if token in vocab}


def _absent_char(vocab):
    """A code point that no vocabulary entry holds: a word made of it is [UNK] (no piece can
    cover it), which is what the original answers for a word over 200 characters."""
    held = set("".join(vocab))
    return next(chr(cp) for cp in range(0x10FFFF, 0, -1)
                if chr(cp) not in held and not 0xD800 <= cp <= 0xDFFF)


class WordPiece(tf.Module):
    """``tokenization.WordpieceTokenizer`` on words already split: ids of their pieces.

    ``tensorflow_text.FastWordpieceTokenizer`` (without its own pre-tokenization) finds the
    same pieces as the original's greedy longest-match-first search ("##" prefix, the whole
    word [UNK] where a position cannot be matched); it numbers pieces by their place in the
    list it is given, which is mapped to the ids of the vocabulary as
    ``tokenization.load_vocab`` reads it (entries stripped; a repeated entry gets its last
    line's id). Entries no word can match are left out of that list: the empty entry, "##"
    alone, and entries holding whitespace or characters the cleaner drops (the op's builder
    rejects some of them). Its length limit counts bytes, the original's characters: the op's
    is set out of reach and words over 200 code points are replaced by a word that is [UNK] by
    construction.
    """

    def __init__(self, vocab, name=None):
        super().__init__(name=name)
        props = _char_properties()[0]
        entries = [token for token in vocab if token not in ("", "##")
                   and not any(props[ord(char)] & (_DROP | _SPLIT) for char in token)]
        self.ids = tf.constant([vocab[token] for token in entries], tf.int32)
        self.tokenizer = text.FastWordpieceTokenizer(
            entries, suffix_indicator="##", max_bytes_per_word=_MAX_BYTES_PER_WORD,
            token_out_type=tf.int64, unknown_token="[UNK]", no_pretokenization=True)
        self.unknown_word = _absent_char(vocab)

    def __call__(self, words):
        """Word pieces int32 RaggedTensor [B, (words), (pieces)] of words int32 [B, (words),
        (code points)]."""
        too_long = words.values.row_lengths() > _MAX_CHARS_PER_WORD
        strings = tf.where(too_long, self.unknown_word,
                           tf.strings.unicode_encode(words.values, "UTF-8"))
        pieces = self.tokenizer.tokenize(strings)
        return words.with_values(pieces.with_values(tf.gather(self.ids, pieces.values)))


# ---------------------------------------------------------------------------
# Packing: [CLS] A [SEP] (B [SEP]), truncated as the original.
# ---------------------------------------------------------------------------


def _kept_lengths(lengths, seq_length):
    """How many tokens of each segment the original keeps: int64 [B] per segment.

    One segment keeps its first ``seq_length - 2``. Two go through ``truncate_seq_pair`` to
    ``m = seq_length - 3``: it drops the last token of the longer segment (of the second on a
    tie) until the pair fits, which leaves a segment shorter than m/2 whole, gives the other
    the rest, and splits m as ceil(m/2), floor(m/2) when both are longer.
    """
    seq_length = tf.cast(seq_length, tf.int64)
    if len(lengths) == 1:
        return [tf.minimum(lengths[0], seq_length - 2)]
    first, second = lengths
    room = seq_length - 3
    fits = first + second <= room
    kept_first = tf.where(fits, first,
                          tf.minimum(first, tf.maximum(room - second, (room + 1) // 2)))
    return [kept_first, tf.where(fits, second, room - kept_first)]


def _seq_length_checks(count, seq_length):
    """Raises ValueError, or returns the graph's checks, unless there are 1 or 2 segments and
    room for [CLS] and a [SEP] per segment."""
    if not 1 <= count <= 2:
        raise ValueError("bert_pack_inputs takes 1 or 2 segments, not %d" % count)
    if not isinstance(seq_length, int):
        return [tf.debugging.assert_greater_equal(
            seq_length, 1 + count, message="seq_length is below 1 + number of segments")]
    if seq_length < 1 + count:
        raise ValueError("seq_length %d is below %d" % (seq_length, 1 + count))
    return []


def pack_inputs(segments, seq_length, cls_id, sep_id):
    """The encoder inputs for one or two segments, as the original's fine-tuning scripts build.

    Args:
      segments: a list of 1 or 2 int32 RaggedTensors [B, (tokens)] or [B, (words), (pieces)].
      seq_length: a Python int, or an int32 scalar tensor: at least 1 + number of segments.
      cls_id, sep_id: Python ints.
    Returns:
      dict of int32 [B, seq_length]: ``input_word_ids`` (``[CLS] a [SEP] (b [SEP])``, padded
      with 0), ``input_mask`` (1 on tokens) and ``input_type_ids`` (1 on ``b [SEP]``).
    """
    segments = [s.merge_dims(1, -1) if s.ragged_rank > 1 else s for s in segments]
    with tf.control_dependencies(_seq_length_checks(len(segments), seq_length)):
        kept = _kept_lengths([s.row_lengths() for s in segments], seq_length)
    # The kept tokens, [CLS] and [SEP]s are scattered to their (row, column) in the output.
    batch = segments[0].nrows()
    every_row = tf.range(batch)
    rows, columns, values = [every_row], [tf.zeros_like(every_row)], [tf.fill([batch], cls_id)]
    end = tf.ones_like(every_row)  # where each row's next token goes
    for segment, keep in zip(segments, kept):
        row = segment.value_rowids()
        position = tf.range(tf.size(segment.values, out_type=tf.int64)) - tf.gather(
            segment.row_splits, row)
        taken = position < tf.gather(keep, row)
        rows += [tf.boolean_mask(row, taken), every_row]
        columns += [tf.boolean_mask(tf.gather(end, row) + position, taken), end + keep]
        values += [tf.boolean_mask(segment.values, taken), tf.fill([batch], sep_id)]
        end += keep + 1
    shape = tf.stack([batch, tf.cast(seq_length, tf.int64)])
    word_ids = tf.scatter_nd(tf.stack([tf.concat(rows, 0), tf.concat(columns, 0)], axis=1),
                             tf.concat(values, 0), shape)
    column = tf.expand_dims(tf.range(shape[1]), 0)
    mask = column < tf.expand_dims(end, 1)
    second = (column > tf.expand_dims(kept[0] + 1, 1)) & mask if len(segments) == 2 else None
    outputs = {
        "input_word_ids": word_ids,
        "input_mask": tf.cast(mask, tf.int32),
        "input_type_ids": tf.zeros_like(word_ids) if second is None else tf.cast(second, tf.int32),
    }
    static = seq_length if isinstance(seq_length, int) else None
    return {key: tf.ensure_shape(value, [None, static]) for key, value in outputs.items()}


# ---------------------------------------------------------------------------
# The preprocessor (TF Hub's preprocessing API) and its SavedModel.
# ---------------------------------------------------------------------------

_STRINGS = tf.TensorSpec([None], tf.string, name="sentences")


class Tokenize(tf.Module):
    """The preprocessor's ``tokenize``: string [B] -> int32 RaggedTensor [B, (words), (pieces)],
    words being the original's basic tokens; with ``get_special_tokens_dict()`` as TF Hub's."""

    def __init__(self, vocab, do_lower_case, special_ids, name="tokenize"):
        super().__init__(name=name)
        self._tables = _CharTables()
        self._lower = bool(do_lower_case)
        self._special = dict(
            vocab_size=max(vocab.values()) + 1, start_of_sequence_id=special_ids["[CLS]"],
            end_of_segment_id=special_ids["[SEP]"], padding_id=0,
            **({"mask_id": special_ids["[MASK]"]} if "[MASK]" in special_ids else {}))
        self.wordpiece = WordPiece(vocab)

    @tf.function(input_signature=[_STRINGS], autograph=False)
    def __call__(self, strings):
        return self.wordpiece(basic_tokenize(strings, self._tables, self._lower))

    @tf.function(input_signature=[_STRINGS], autograph=False)
    def basic_tokenize(self, strings):
        """``tokenization.BasicTokenizer.tokenize``: string RaggedTensor [B, (words)]."""
        words = basic_tokenize(strings, self._tables, self._lower)
        return tf.strings.unicode_encode(words, "UTF-8")

    @tf.function(input_signature=[], autograph=False)
    def get_special_tokens_dict(self):
        """vocab_size, start_of_sequence_id ([CLS]), end_of_segment_id ([SEP]), padding_id (0)
        and mask_id ([MASK], if the vocabulary has it): int32 scalars."""
        return {key: tf.constant(value, tf.int32) for key, value in self._special.items()}


class BertPackInputs(tf.Module):
    """The preprocessor's ``bert_pack_inputs(segments, seq_length=None)`` (``pack_inputs``);
    ``seq_length`` left out or None: the preprocessor's (a loaded SavedModel: left out).

    As TF Hub's, a function whose default ``seq_length`` is the preprocessor's, traced for 1 or
    2 segments of ragged rank 1 or 2 with ``seq_length`` an int32 scalar, so that a loaded
    SavedModel takes any of them, ``seq_length`` given (a Python int too) or left out.
    """

    def __init__(self, cls_id, sep_id, seq_length, name="bert_pack_inputs"):
        super().__init__(name=name)

        default = seq_length

        def call(segments, seq_length=default):
            length = default if seq_length is None else seq_length
            return pack_inputs(list(segments), length, cls_id, sep_id)

        # Saved under the name __call__, which makes the loaded object callable; the method
        # below makes this one callable (Python looks __call__ up on the class).
        self.__call__ = tf.function(call, autograph=False)
        for rank in (1, 2):
            spec = tf.RaggedTensorSpec([None] * (rank + 1), tf.int32, ragged_rank=rank)
            for count in (1, 2):
                self.__call__.get_concrete_function([spec] * count, tf.TensorSpec([], tf.int32))

    def __call__(self, segments, *args, **kwargs):  # pylint: disable=method-hidden
        return self.__dict__["__call__"](segments, *args, **kwargs)


class Preprocessor(tf.Module):
    """BERT's text preprocessing in TensorFlow ops, as TF Hub's ``bert_*_preprocess`` models.

    ``preprocessor(strings)``: string [B] -> dict(input_word_ids, input_mask, input_type_ids)
    int32 [B, seq_length], ``[CLS] text [SEP]`` truncated and padded as the original;
    ``preprocessor.tokenize(strings)``: int32 RaggedTensor [B, (words), (pieces)];
    ``preprocessor.bert_pack_inputs(segments, seq_length=None)``: one or two tokenized segments
    to the encoder inputs (``seq_length`` None: ``preprocessor.seq_length``). Ids are ``tokenization.FullTokenizer``'s. ``vocab_file`` (an asset
    when saved) and ``do_lower_case`` (a variable) tell a consumer how the text was tokenized;
    the graph does not read them (changing the variable changes nothing).
    """

    def __init__(self, vocab_file, do_lower_case, seq_length=128):
        super().__init__(name="preprocessor")
        if seq_length < 2:
            raise InputError("seq_length %d is too short for [CLS] [SEP]" % seq_length)
        vocab = tokenization.load_vocab(vocab_file)
        special = _special_ids(vocab, vocab_file)
        self.vocab_file = tf.saved_model.Asset(vocab_file)
        self.do_lower_case = tf.Variable(bool(do_lower_case), trainable=False,
                                         name="do_lower_case")
        self.seq_length = seq_length
        self._cls_sep = (special["[CLS]"], special["[SEP]"])
        self.tokenize = Tokenize(vocab, do_lower_case, special)
        self.bert_pack_inputs = BertPackInputs(*self._cls_sep, seq_length)

    @tf.function(input_signature=[_STRINGS], autograph=False)
    def __call__(self, strings):
        return pack_inputs([self.tokenize(strings)], self.seq_length, *self._cls_sep)


def save_preprocessor(vocab_file, do_lower_case, export_dir, seq_length=128, overwrite=False):
    """Writes a ``Preprocessor`` as a SavedModel in TF Hub's preprocessor format.

    The SavedModel's ``serving_default`` signature takes ``sentences``, string [B], and returns
    the three encoder inputs. Loading it needs ``import tensorflow_text`` first (WordPiece is
    its op). The directory appears whole or not at all. Returns the ``Preprocessor``.

    Raises:
      errors.InputError: ``export_dir`` exists and not ``overwrite``; the vocabulary cannot be
        read or lacks [UNK], [CLS] or [SEP].
    """
    with file_io.atomic_directory(export_dir, overwrite=overwrite) as temp_dir:
        preprocessor = Preprocessor(vocab_file, do_lower_case, seq_length)
        signatures = {"serving_default": preprocessor.__call__.get_concrete_function()}
        tf.saved_model.save(preprocessor, temp_dir, signatures=signatures)
    return preprocessor
