"""BERT WordPiece tokenization (same API and output as the original BERT code).

The algorithm
-------------
``BasicTokenizer.tokenize`` turns text into "basic tokens":

1. decode bytes as UTF-8;
2. clean: drop U+0000, U+FFFD and control characters (Unicode categories Cc
   and Cf, except tab, newline and carriage return); every whitespace
   character (space, tab, newline, CR, category Zs) becomes one plain space.
   Unassigned (Cn), private-use (Co) and surrogate (Cs) code points are kept
   as ordinary characters, as in the original since March 2019 (before, it
   dropped every category C*);
3. put spaces around every CJK ideograph;
4. split with ``str.split()``;
5. per token: optionally lower-case, NFD-normalise and drop non-spacing marks
   (Mn); then make every punctuation character (non-alphanumeric printable
   ASCII, or category P*) a token of its own;
6. re-join with spaces and ``str.split()`` again.

``WordpieceTokenizer`` splits each basic token greedily into the longest
vocabulary entries, left to right ("##" marks a non-initial piece); a word
with an unmatchable position, or longer than ``max_input_chars_per_word``,
becomes ``unk_token``.

Why the fast path gives identical output
----------------------------------------
Every step above is either per character (2, 3) or per whitespace-separated
token (4-6, WordPiece), so the result for a text is the concatenation of the
results for its ``str.split()`` chunks -- provided that each separator
``str.split()`` sees in the raw text is still a separator after cleaning.
That holds for every whitespace character except the few that are also
control characters: U+000B, U+000C, U+001C-U+001F and U+0085, all Cc (no
whitespace character is Cf, Cn, Co or Cs; U+180E and U+200B are Cf but not
whitespace).  The cleaner deletes them, gluing their neighbours together, so
the fast path first deletes exactly those characters (``_DROPPED_SPACES``,
computed from the rules at import) and then handles each raw chunk on its own:

* ``FullTokenizer`` memoises chunk -> word pieces in a size-capped dict, so a
  repeated chunk (most of them, in real text) costs one dict lookup.  Its
  output depends only on the chunk and the tokenizer's fixed settings.
* An ASCII chunk has no CJK, accents or Unicode punctuation, and contains no
  whitespace; its only non-printable characters are controls (Cc); what
  remains of the rules is: delete ASCII controls,
  ``str.lower()``, and split into runs of ``[A-Za-z0-9]`` and single other
  characters (all non-alphanumeric printable ASCII is punctuation).
* Any other chunk runs the steps above with ``str.translate`` and per-code-
  point tables filled lazily from ``unicodedata``.
* WordPiece never tries a candidate longer than the longest vocabulary entry
  (it could not match), answers ``unk_token`` at once for a word holding a
  character no vocabulary entry holds (no piece could cover it; the greedy
  search would fail there), and memoises word -> pieces.

``benchmarks/_reference_tokenizer.py`` is the direct port used as the oracle
in ``tests/test_tokenization.py``.
"""
import collections
import re
import unicodedata

from errors import InputError
import file_io

_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
_CJK_SPAN = (min(low for low, _ in _CJK_RANGES), max(high for _, high in _CJK_RANGES))

# Upper bound on the entries of every memo table; a table that reaches it is
# emptied (the chunk caches) or stops growing (the per-code-point tables).
CACHE_LIMIT = 1_000_000
# Chunks longer than this are not memoised (they rarely repeat).
_MAX_CACHED_CHUNK_CHARS = 100


# ---------------------------------------------------------------------------
# Text and vocabulary helpers.
# ---------------------------------------------------------------------------


def convert_to_unicode(text, source=None):
    """Returns ``text`` as ``str``; bytes must be valid UTF-8.

    ``source`` optionally names where the text came from (a file name, ...)
    and is used in the error message.
    """
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as err:
            where = source if source is not None else "input %r" % _snippet(text)
            raise InputError(
                "%s is not valid UTF-8: byte 0x%02x at byte offset %d (%s)"
                % (where, text[err.start], err.start, err.reason)
            ) from None
    raise ValueError(
        "Unsupported string type %s (expected str or UTF-8 bytes)" % type(text).__name__
    )


def _snippet(data, limit=40):
    return data if len(data) <= limit else data[:limit] + b"..."


def printable_text(text):
    """Returns ``text`` as a ``str`` suitable for printing or logging."""
    return convert_to_unicode(text)


def load_vocab(vocab_file):
    """Loads a vocabulary file (one token per line) into an OrderedDict."""
    with file_io.open_file(vocab_file, "rb") as reader:
        lines = reader.read().split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the newline ending the last line starts no new line
    if not lines:
        raise InputError("Vocabulary file %s is empty" % vocab_file)
    vocab = collections.OrderedDict()
    for index, line in enumerate(lines):
        try:
            token = line.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise InputError(
                "Vocabulary file %s, line %d: not valid UTF-8 (byte offset %d in the line)"
                % (vocab_file, index + 1, err.start)
            ) from None
        vocab[token] = index
    return vocab


class VocabLookupError(KeyError, InputError):
    """A token (or id) is missing from the vocabulary; both a KeyError and an errors.InputError
    (a ValueError): what reaches a user is a vocabulary file without a token the code needs."""

    def __str__(self):
        return self.args[0]


def convert_by_vocab(vocab, items):
    """Maps every item through ``vocab`` (token -> id or id -> token)."""
    try:
        return [vocab[item] for item in items]
    except KeyError as err:
        missing = err.args[0]
        raise VocabLookupError("%r is not in the vocabulary" % (missing,)) from None


def convert_tokens_to_ids(vocab, tokens):
    return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids):
    return convert_by_vocab(inv_vocab, ids)


def whitespace_tokenize(text):
    """Strips and splits ``text`` on whitespace (Python's ``str.split``)."""
    return text.strip().split()


# ---------------------------------------------------------------------------
# Checkpoint / casing consistency.
# ---------------------------------------------------------------------------


def _known_models():
    lower = {
        "uncased_L-24_H-1024_A-16",
        "uncased_L-12_H-768_A-12",
        "multilingual_L-12_H-768_A-12",
        "chinese_L-12_H-768_A-12",
        "wwm_uncased_L-24_H-1024_A-16",
    }
    for layers in (2, 4, 6, 8, 10, 12):
        for hidden in (128, 256, 512, 768):
            lower.add("uncased_L-%d_H-%d_A-%d" % (layers, hidden, hidden // 64))
    cased = {
        "cased_L-12_H-768_A-12",
        "cased_L-24_H-1024_A-16",
        "multi_cased_L-12_H-768_A-12",
        "wwm_cased_L-24_H-1024_A-16",
    }
    return lower, cased


_LOWER_CASED_MODELS, _CASED_MODELS = _known_models()


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
    """Raises ValueError if ``do_lower_case`` contradicts a known checkpoint name."""
    if not init_checkpoint:
        return
    match = re.match(r"^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", init_checkpoint)
    if match is None:
        return
    model_name = match.group(1)
    if model_name in _LOWER_CASED_MODELS and not do_lower_case:
        kind, expected = "lower-cased (uncased)", True
    elif model_name in _CASED_MODELS and do_lower_case:
        kind, expected = "cased", False
    else:
        return
    raise ValueError(
        "do_lower_case=%s does not match init_checkpoint=%s: %s is a %s model, so "
        "fine-tuning must use do_lower_case=%s to tokenize text the way it was "
        "pre-trained. Pass --do_lower_case=%s (if the checkpoint name is "
        "misleading, remove this check)."
        % (do_lower_case, init_checkpoint, model_name, kind, expected, expected)
    )


# ---------------------------------------------------------------------------
# Character classes (the rules; the tables below are filled from these).
# ---------------------------------------------------------------------------


def _is_whitespace(char):
    """Characters the cleaner turns into a plain space."""
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def _is_control(char):
    """Characters the cleaner drops (tab, newline and CR are not control).

    Only categories Cc and Cf, as the original since March 2019 ("to support
    emojis"): unassigned (Cn), private-use (Co) and surrogate (Cs) code points
    are ordinary characters, so WordPiece sees them (a word holding one is
    [UNK] unless the vocabulary has the character) instead of losing them.
    """
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
    """Non-alphanumeric printable ASCII, or Unicode category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp):
    # Most code points lie outside the span of all the ranges: one comparison.
    if not _CJK_SPAN[0] <= cp <= _CJK_SPAN[1]:
        return False
    return any(low <= cp <= high for low, high in _CJK_RANGES)


def _is_dropped(char):
    cp = ord(char)
    return cp == 0 or cp == 0xFFFD or _is_control(char)


class _LazyTable(dict):
    """A ``str.translate`` table computing (and memoising) entries on demand."""

    def __init__(self, compute):
        super().__init__()
        self._compute = compute

    def __missing__(self, cp):
        value = self._compute(chr(cp))
        if len(self) < CACHE_LIMIT:
            self[cp] = value
        return value


def _clean_char(char):
    if _is_dropped(char):
        return None
    if _is_whitespace(char):
        return " "
    if _is_chinese_char(ord(char)):
        return " %s " % char
    return char


# Steps 2 and 3 for one character; punctuation spaced out; Mn marks deleted.
_CLEAN_TABLE = _LazyTable(_clean_char)
_PUNCT_TABLE = _LazyTable(lambda c: " %s " % c if _is_punctuation(c) else c)
_MN_TABLE = _LazyTable(lambda c: None if unicodedata.category(c) == "Mn" else c)

# Whitespace (for str.split) that the cleaner deletes instead of turning into
# a space; deleting them first makes raw str.split() chunks independent.
_DROPPED_SPACES = "".join(
    chr(cp) for cp in range(0x110000) if chr(cp).isspace() and _is_dropped(chr(cp))
)
_DROPPED_SPACES_RE = re.compile("[%s]" % re.escape(_DROPPED_SPACES))
_ASCII_CONTROLS = {cp: None for cp in range(128) if _is_dropped(chr(cp))}
_ASCII_PIECES_RE = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]")


def _split_chunks(text):
    """``str.split()`` after deleting the whitespace the cleaner would delete."""
    if _DROPPED_SPACES_RE.search(text):
        text = _DROPPED_SPACES_RE.sub("", text)
    return text.split()


def _strip_accents(text):
    if text.isascii():
        return text
    return unicodedata.normalize("NFD", text).translate(_MN_TABLE)


# ---------------------------------------------------------------------------
# Tokenizers.
# ---------------------------------------------------------------------------


class BasicTokenizer:
    """Cleaning, CJK spacing, lower-casing/accent stripping, punctuation split."""

    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text):
        tokens = []
        for chunk in _split_chunks(convert_to_unicode(text)):
            tokens.extend(self.tokenize_chunk(chunk))
        return tokens

    def tokenize_chunk(self, chunk):
        """Basic tokens of ``chunk``, a piece of text with no whitespace."""
        if chunk.isascii():
            if not chunk.isprintable():
                chunk = chunk.translate(_ASCII_CONTROLS)
            if self.do_lower_case:
                chunk = chunk.lower()
            return _ASCII_PIECES_RE.findall(chunk)
        return self._tokenize_unicode(chunk)

    def _tokenize_unicode(self, text):
        pieces = []
        for token in text.translate(_CLEAN_TABLE).split():
            if self.do_lower_case:
                token = _strip_accents(token.lower())
            pieces.append(token.translate(_PUNCT_TABLE))
        return " ".join(pieces).split()


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece.

    ``vocab`` is read when the tokenizer is built; later changes to it are not
    seen (build a new tokenizer instead).
    """

    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # token -> the same string object, so memoised pieces share memory.
        self._pieces = {token: token for token in vocab}
        self._longest = max(map(len, self._pieces), default=0)
        # Characters of the vocabulary entries: a word holding any other
        # character is unk_token, as no piece can cover that character.
        self._chars = frozenset("".join(self._pieces))
        self._cache = {}

    def tokenize(self, text):
        output = []
        for word in whitespace_tokenize(convert_to_unicode(text)):
            output.extend(self.tokenize_word(word))
        return output

    def tokenize_word(self, word):
        """Word pieces of one whitespace-free word (memoised)."""
        pieces = self._cache.get(word)
        if pieces is None:
            pieces = self._split_word(word)
            if len(word) <= _MAX_CACHED_CHUNK_CHARS:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                self._cache[word] = pieces
        return pieces

    def _split_word(self, word):
        if len(word) > self.max_input_chars_per_word or not self._chars.issuperset(word):
            return (self.unk_token,)
        known, longest = self._pieces, self._longest
        pieces = []
        start = 0
        while start < len(word):
            prefix = "##" if start else ""
            # A candidate longer than the longest vocabulary entry cannot match.
            end = min(len(word), start + longest - len(prefix))
            while end > start:
                piece = known.get(prefix + word[start:end])
                if piece is not None:
                    break
                end -= 1
            else:
                return (self.unk_token,)
            pieces.append(piece)
            start = end
        return tuple(pieces)


class FullTokenizer:
    """Basic tokenization followed by WordPiece, memoised per whitespace chunk."""

    def __init__(self, vocab_file, do_lower_case=True):
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        self._cache = {}
        self._id_cache = {}

    def tokenize(self, text):
        output = []
        cache = self._cache
        for chunk in _split_chunks(convert_to_unicode(text)):
            pieces = cache.get(chunk)
            if pieces is None:
                pieces = self._tokenize_chunk(chunk)
            output.extend(pieces)
        return output

    def tokenize_to_ids(self, text):
        """``convert_tokens_to_ids(tokenize(text))``, memoised per chunk (for data pipelines)."""
        output = []
        cache = self._id_cache
        for chunk in _split_chunks(convert_to_unicode(text)):
            ids = cache.get(chunk)
            if ids is None:
                pieces = self._cache.get(chunk) or self._tokenize_chunk(chunk)
                ids = tuple(convert_by_vocab(self.vocab, pieces))
                if len(chunk) <= _MAX_CACHED_CHUNK_CHARS:
                    if len(cache) >= CACHE_LIMIT:
                        cache.clear()
                    cache[chunk] = ids
            output.extend(ids)
        return output

    def _tokenize_chunk(self, chunk):
        word_pieces = self.wordpiece_tokenizer.tokenize_word
        tokens = self.basic_tokenizer.tokenize_chunk(chunk)
        if len(tokens) == 1:
            pieces = word_pieces(tokens[0])  # the word's memoised tuple, shared
        else:
            pieces = tuple(piece for token in tokens for piece in word_pieces(token))
        if len(chunk) <= _MAX_CACHED_CHUNK_CHARS:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[chunk] = pieces
        return pieces

    def convert_tokens_to_ids(self, tokens):
        return convert_by_vocab(self.vocab, tokens)

    def convert_ids_to_tokens(self, ids):
        return convert_by_vocab(self.inv_vocab, ids)


# ---------------------------------------------------------------------------
# Model inputs: [CLS] A [SEP] (B [SEP]), as every fine-tuning script builds them.
# ---------------------------------------------------------------------------


def truncate_seq_pair(tokens_a, tokens_b, max_length):
    """Shortens the longer list from its end, one token at a time, until both fit in `max_length`.

    The original's rule for fine-tuning inputs: it keeps the shorter text whole where it can,
    which suits pairs whose texts matter equally. Modifies the lists in place.
    """
    while len(tokens_a) + len(tokens_b) > max_length:
        (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()


class EncodedPair:
    """`input_ids`, `input_mask`, `segment_ids` padded to the sequence length, and the tokens."""

    def __init__(self, tokens, segment_ids, max_seq_length, vocab, truncated):
        self.tokens = tokens
        self.truncated = truncated  # whether text was cut to fit
        pad = max_seq_length - len(tokens)
        self.input_ids = convert_by_vocab(vocab, tokens) + [0] * pad
        self.input_mask = [1] * len(tokens) + [0] * pad
        self.segment_ids = segment_ids + [0] * pad


def encode_pair(tokenizer, text_a, text_b=None, max_seq_length=128):
    """`[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]` for a `FullTokenizer`, truncated as the original.

    Single texts keep their first `max_seq_length - 2` tokens; pairs go through
    `truncate_seq_pair` to `max_seq_length - 3`.
    """
    tokens_a = tokenizer.tokenize(text_a)
    tokens_b = tokenizer.tokenize(text_b) if text_b is not None else None
    length = len(tokens_a) + (len(tokens_b) if tokens_b is not None else 0)
    if tokens_b is not None:
        truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
    else:
        del tokens_a[max_seq_length - 2:]
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b is not None:
        tokens += tokens_b + ["[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)
    truncated = len(tokens_a) + (len(tokens_b) if tokens_b is not None else 0) < length
    return EncodedPair(tokens, segment_ids, max_seq_length, tokenizer.vocab, truncated)
