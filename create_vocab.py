"""Learns a WordPiece vocabulary (a BERT ``vocab.txt``) from a text corpus.

The original BERT release shipped its vocabularies but no script to make one; this is that script.

    python3 create_vocab.py --input_file=data/demo_corpus.txt --output_file=/tmp/vocab.txt \\
        --vocab_size=8000 [--do_lower_case=false] [--num_unused=99] [--min_char_frequency=1] \\
        [--min_word_frequency=1] [--scoring=frequency|likelihood]

Input: the format of ``create_pretraining_data.py`` -- plain UTF-8 text, one sentence per line,
blank lines between documents (the line structure does not matter here). ``--input_file`` is a
comma-separated list of files or glob patterns, local or on any filesystem ``tf.io.gfile`` reads
(``gs://...``); a file named twice is read once (see ``file_io.expand_patterns``).

Output: ``--vocab_size`` lines in the layout of the released BERT vocabularies::

    [PAD]                          id 0
    [unused0] .. [unused98]        ids 1..99   (--num_unused=99)
    [UNK] [CLS] [SEP] [MASK]       ids 100..103
    a b c ... ##a ##b ##c ...      every character seen, as a word start and as a "##" continuation
    th ##er the ...                learned pieces, in the order they were learned

so that with the defaults the special tokens have the ids of the released uncased vocabulary.  If
the corpus runs out of pieces to learn before ``--vocab_size`` (a small corpus, where every word
has become a single entry), the file is filled up to ``--vocab_size`` with more ``[unusedN]``
entries (numbered on from ``--num_unused``) and a warning says so; ``--nopad_to_vocab_size``
writes the shorter file instead.  The file is written atomically (a temporary file in the same
directory, then ``os.replace``).  At the end a summary gives the number of words, the share of
``[UNK]`` tokens and the average number of pieces per word when the corpus is tokenized with the
new vocabulary exactly as ``tokenization.FullTokenizer`` does.

How it works
------------
1. Words: the text is split into "basic tokens" exactly as ``tokenization.BasicTokenizer`` does
   (``--do_lower_case``: lower-casing and accent stripping; punctuation and CJK characters split
   off), and their frequencies are counted.  The input is streamed: memory grows with the number
   of distinct words, not with the size of the corpus.
2. Alphabet: every character seen at least ``--min_char_frequency`` times enters the vocabulary
   in both forms, ``c`` and ``##c``.  Greedy longest-match-first WordPiece can then split any word
   made of these characters without producing ``[UNK]`` (at worst into single characters).  Words
   with a rarer character, or longer than the tokenizer's 200-character limit, become ``[UNK]``
   whatever the vocabulary, so they take no part in learning.
3. Merges: each word (seen at least ``--min_word_frequency`` times) starts as its characters
   (``w ##o ##r ##d``); the adjacent pair with the best score is merged into one new piece
   (``w ##o`` -> ``wo``; ``##o ##r`` -> ``##or``) everywhere, until the vocabulary is full or every
   word is a single piece.  Two scores (``--scoring``):

   * ``frequency`` (the default; BPE-style, as HuggingFace's WordPiece trainer does): the pair's
     count.  Merging a pair that occurs ``n`` times shortens the segmented corpus by exactly ``n``
     pieces, so this is the greedy choice for the fewest pieces per word -- what a BERT model's
     sequence length budget cares about -- and it spends no entries on rare strings.
   * ``likelihood``: ``count(ab) / (count(a) * count(b))``, the score usually given for WordPiece
     (how much more often the parts occur together than independent parts would: a pointwise
     mutual information without the log).  It favours pairs whose parts
     rarely occur apart, which on real text means it first spends entries on rare words and rare
     character combinations (a pair seen once, of characters seen once, scores 1.0, far above any
     common pair).  On 1.4 MB of English (Python's documentation) with 8,000 entries it gives 2.13
     pieces per word against 1.02 for ``frequency``; on 100 MB of Python source with 30,522
     entries, 2.86 against 1.04 (it learns long digit strings first).  Raise the minimum
     frequencies when using it.

   Learning is incremental: an index from each pair to the words containing it means a merge
   touches only those words, updating the pair counts by the difference; a heap of pair scores
   with lazy invalidation picks the next pair (for ``likelihood``, a merge also raises the scores of
   every pair containing the merged parts, found through an index from symbol to pairs).  Ties go
   to the more frequent pair, then to the pair of earlier-learned pieces, so the output depends only
   on the input.

This script does not import TensorFlow for local files (it starts in well under a second).
"""
import collections
import heapq
import os
import time

from absl import app, flags, logging

import common_flags
from errors import InputError
import file_io
import tokenization

FLAGS = flags.FLAGS


def _define_flags():
    def define(kind, name, *args, **kwargs):
        if name not in FLAGS:  # another script imported into the same process may define it
            getattr(flags, "DEFINE_" + kind)(name, *args, **kwargs)

    define("string", "input_file", None,
           "Input raw text file(s): comma-separated files or glob patterns. One sentence per line, "
           "blank lines between documents (the input format of create_pretraining_data.py).")
    define("string", "output_file", None, "Where to write the vocabulary (vocab.txt).")
    define("integer", "vocab_size", 30522,
           "Total number of entries written, including [PAD], the [unused*] entries, [UNK], "
           "[CLS], [SEP] and [MASK].")
    define("bool", "do_lower_case", True,
           "Whether to lower case the input text. Should be True for uncased models and False for "
           "cased models.")
    define("integer", "num_unused", 99,
           "Number of [unusedN] entries between [PAD] and [UNK] (99 gives the special-token ids of "
           "the released uncased vocabulary: [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103).")
    define("integer", "min_char_frequency", 1,
           "Characters seen fewer times than this get no entry (words containing them tokenize "
           "to [UNK]). Raise it for large, noisy corpora whose alphabet is too big.")
    define("integer", "min_word_frequency", 1,
           "Words seen fewer times than this take no part in learning the merges (they are still "
           "counted, and still tokenize into pieces). Raising it speeds up learning on large "
           "corpora.")
    define("enum", "scoring", "frequency", ["frequency", "likelihood"],
           "Merge score: frequency (pair count, BPE-style) or likelihood "
           "(count(ab) / (count(a) * count(b)), the WordPiece score).")
    define("bool", "pad_to_vocab_size", True,
           "If the corpus runs out of pieces to learn, fill the file up to --vocab_size with "
           "[unusedN] entries (otherwise write the shorter vocabulary).")


_define_flags()

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[MASK]")
# WordpieceTokenizer's default (the one FullTokenizer uses): longer words become [UNK].
MAX_INPUT_CHARS_PER_WORD = 200
SCORINGS = ("frequency", "likelihood")

# Pairs of symbol ids are packed into one int: (left << _SHIFT) | right.
_SHIFT = 32
_MASK = (1 << _SHIFT) - 1


class VocabSizeError(InputError):
    """The requested vocabulary cannot hold the special tokens and every needed character."""


# ---------------------------------------------------------------------------
# Input.
# ---------------------------------------------------------------------------


def read_text_blocks(path, block_bytes=1 << 22):
    """Yields the text of ``path`` (local or remote) in blocks of whole lines (about
    ``block_bytes`` each, more when a line is longer).

    Bytes that are not UTF-8 are an error naming the file and the line.
    """
    line_number = 0  # lines before the current block
    pending = b""
    with file_io.open_file(path, "rb") as f:
        while True:
            data = f.read(block_bytes)
            pending += data
            cut = len(pending) if not data else pending.rfind(b"\n") + 1
            if cut:
                yield _decode_lines(pending[:cut], path, line_number)
                line_number += pending.count(b"\n", 0, cut)
                pending = pending[cut:]
            if not data:
                return


def _decode_lines(data, path, line_number):
    """``data`` (whole lines of ``path`` after its first ``line_number``) decoded as UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # A UTF-8 sequence never contains b"\n", so the bad bytes are inside one line.
        for index, line in enumerate(data.split(b"\n")):
            tokenization.convert_to_unicode(
                line, source="Input file %s, line %d" % (path, line_number + index + 1))
        raise  # not reached


# ---------------------------------------------------------------------------
# Word counting.
# ---------------------------------------------------------------------------


def count_words(lines, do_lower_case=True, max_chunks=1 << 20):
    """Counter of the basic tokens of ``lines`` (strings), as ``BasicTokenizer`` makes them.

    The text is first cut at whitespace into chunks (exactly where ``BasicTokenizer`` cuts it, see
    tokenization.py); each distinct chunk is basic-tokenized once and its tokens counted as often
    as the chunk occurs.  At most ``max_chunks`` distinct chunks are held at a time.
    """
    basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    words = collections.Counter()
    chunks = collections.Counter()

    def flush():
        for chunk, count in chunks.items():
            for token in basic.tokenize_chunk(chunk):
                words[token] += count
        chunks.clear()

    for text in lines:
        chunks.update(tokenization._split_chunks(text))  # pylint: disable=protected-access
        if len(chunks) >= max_chunks:
            flush()
    flush()
    return words


def count_words_in_files(paths, do_lower_case=True):
    """``count_words`` over the files ``paths``; a corpus without any word is an error."""
    words = collections.Counter()
    for path in paths:
        before = sum(words.values())
        words.update(count_words(read_text_blocks(path), do_lower_case))
        if sum(words.values()) == before:
            logging.warning("Input file %s contains no words", path)
    if not words:
        raise InputError("The input contains no words: %s" % ", ".join(paths))
    return words


# ---------------------------------------------------------------------------
# Learning.
# ---------------------------------------------------------------------------


def reserved_tokens(num_unused=99):
    """[PAD], [unused0..num_unused-1], [UNK], [CLS], [SEP], [MASK]."""
    if num_unused < 0:
        raise InputError("num_unused must be >= 0, got %d" % num_unused)
    return [PAD_TOKEN] + ["[unused%d]" % i for i in range(num_unused)] + list(SPECIAL_TOKENS)


def _learnable(word):
    return 0 < len(word) <= MAX_INPUT_CHARS_PER_WORD


def character_counts(word_counts):
    """Counter of the characters of the words that can tokenize (at most 200 characters)."""
    chars = collections.Counter()
    for word, count in word_counts.items():
        if _learnable(word):
            for char in word:
                chars[char] += count
    return chars


def select_characters(word_counts, min_char_frequency=1):
    """The characters seen at least ``min_char_frequency`` times, sorted by code point."""
    chars = character_counts(word_counts)
    return sorted(char for char, count in chars.items() if count >= min_char_frequency)


def _merge_word(symbols, left, right, merged):
    """``symbols`` with each non-overlapping ``left right`` (from the left) replaced; None if none."""
    out = None
    start = 0  # symbols[start:] are not copied yet
    end = len(symbols) - 1
    find = symbols.index
    try:
        i = find(left)
        while i < end:
            if symbols[i + 1] == right:
                if out is None:
                    out = symbols[:i]
                else:
                    out.extend(symbols[start:i])
                out.append(merged)
                start = i + 2
                i = find(left, start)
            else:
                i = find(left, i + 1)
    except ValueError:
        pass
    if out is not None:
        out.extend(symbols[start:])
    return out


def learn_wordpiece(word_counts, max_pieces, min_char_frequency=1, min_word_frequency=1,
                    scoring="frequency", log_every=0):
    """Learns at most ``max_pieces`` WordPiece entries from ``word_counts`` (word -> count).

    Returns the list of entries: every selected character as ``c`` (sorted), then as ``##c``
    (same order), then the merged pieces in the order they were learned.  Fewer than
    ``max_pieces`` entries come back when every word has become a single piece.  Raises
    VocabSizeError (with ``.required``, the number of character entries) when ``max_pieces``
    cannot hold both forms of every character.  See the module docstring for the algorithm.
    """
    if scoring not in SCORINGS:
        raise ValueError("scoring must be one of %s, got %r" % (SCORINGS, scoring))
    chars = _alphabet(word_counts, max_pieces, min_char_frequency)
    learner = _MergeLearner(chars, word_counts, min_word_frequency, scoring == "likelihood")
    return learner.learn(max_pieces, log_every)


def _alphabet(word_counts, max_pieces, min_char_frequency):
    """The characters to learn from (``select_characters``), checked to fit ``max_pieces`` in both
    forms (``c`` and ``##c``)."""
    chars = select_characters(word_counts, min_char_frequency)
    if not chars:
        raise InputError("No character is seen at least %d times (in words of at most %d "
                         "characters): nothing to learn" % (min_char_frequency,
                                                             MAX_INPUT_CHARS_PER_WORD))
    if 2 * len(chars) > max_pieces:
        error = VocabSizeError(
            "%d entries cannot hold the %d characters seen at least %d times in both forms "
            "(c and ##c): %d are needed" % (max_pieces, len(chars), min_char_frequency,
                                             2 * len(chars)))
        error.required = 2 * len(chars)
        raise error
    return chars


def _segment_words(word_counts, chars, min_word_frequency):
    """(words, freqs, symbol_counts): the words to learn from as lists of symbol ids (``c`` is
    symbol i, ``##c`` symbol len(chars) + i, for chars[i]), their counts, and the count of each
    symbol in the segmented corpus.

    Words seen fewer than ``min_word_frequency`` times, too long to tokenize, or holding a
    character outside ``chars`` (``[UNK]`` whatever is learned) are left out.  Single-character
    words count towards the symbol counts (they are pieces of the segmented corpus too) but hold
    no pair, so they are not in ``words``.
    """
    initial = {char: i for i, char in enumerate(chars)}
    inner = {char: len(chars) + i for i, char in enumerate(chars)}
    symbol_counts = [0] * (2 * len(chars))
    words, freqs = [], []
    for word, count in sorted(word_counts.items(), key=lambda item: (-item[1], item[0])):
        if count < min_word_frequency or not _learnable(word):
            continue
        try:
            symbols = [initial[word[0]]] + [inner[char] for char in word[1:]]
        except KeyError:
            continue  # a character below --min_char_frequency: [UNK] whatever we learn
        for symbol in symbols:
            symbol_counts[symbol] += count
        if len(symbols) > 1:
            words.append(symbols)
            freqs.append(count)
    return words, freqs, symbol_counts


def _index_pairs(words, freqs):
    """(pair_counts, pair_words): the count of each adjacent pair of symbols in the corpus, and for
    each pair the indexes of the words that hold it."""
    pair_counts = {}
    pair_words = collections.defaultdict(list)  # pair -> words that held it (may go stale)
    for index, symbols in enumerate(words):
        count = freqs[index]
        pairs = [(symbols[i] << _SHIFT) | symbols[i + 1] for i in range(len(symbols) - 1)]
        for pair in pairs:
            pair_counts[pair] = pair_counts.get(pair, 0) + count
        for pair in dict.fromkeys(pairs):
            pair_words[pair].append(index)
    return pair_counts, pair_words


class _MergeLearner:
    """The incremental merge loop of ``learn_wordpiece`` (module docstring, "Learning is
    incremental").

    Symbols are ids into ``strings``; a pair of symbols is one int, ``(left << _SHIFT) | right``.
    Invariant of ``heap``: every live pair has an entry whose key is <= (as good as or better
    than) its current key.  A pair whose score improves is pushed again; a popped entry better
    than the pair's current key is re-pushed with the current key; one worse than it is a
    duplicate.
    """

    def __init__(self, chars, word_counts, min_word_frequency, likelihood):
        self.strings = chars + ["##" + char for char in chars]  # symbol id -> piece
        self.ids = {piece: i for i, piece in enumerate(self.strings)}
        self.pieces = list(self.strings)  # the entries learned so far
        self.likelihood = likelihood
        self.words, self.freqs, self.symbol_counts = _segment_words(word_counts, chars,
                                                                    min_word_frequency)
        self.pair_counts, self.pair_words = _index_pairs(self.words, self.freqs)
        # symbol -> live pairs containing it (likelihood scoring only)
        self.symbol_pairs = collections.defaultdict(set)
        if likelihood:
            for pair in self.pair_counts:
                self.symbol_pairs[pair >> _SHIFT].add(pair)
                self.symbol_pairs[pair & _MASK].add(pair)
        self.heap = [self.key(pair) + (pair,) for pair in self.pair_counts]
        heapq.heapify(self.heap)

    def key(self, pair):
        """Heap key, smaller is better: (-score, -count) -- ties go to the smaller pair id."""
        count = self.pair_counts[pair]
        if self.likelihood:
            counts = self.symbol_counts
            return (-count / (counts[pair >> _SHIFT] * counts[pair & _MASK]), -count)
        return (-count, 0)

    def learn(self, max_pieces, log_every=0):
        """Merges the best pair until there are ``max_pieces`` entries or no pair is left;
        returns the entries."""
        num_merges = 0
        start = time.time()
        while len(self.pieces) < max_pieces:
            pair = self._pop_best_pair()
            if pair is None:
                break
            piece = self._merge(pair)
            num_merges += 1
            if log_every and num_merges % log_every == 0:
                logging.info("%d merges, %d entries, last %r (%.1f s)", num_merges,
                             len(self.pieces), piece, time.time() - start)
        return self.pieces

    def _pop_best_pair(self):
        """The live pair with the best current key, off the heap (None when the heap is empty)."""
        heap, pair_counts = self.heap, self.pair_counts
        while heap:
            entry = heapq.heappop(heap)
            pair = entry[2]
            if pair not in pair_counts:
                continue
            current = self.key(pair)
            if current == entry[:2]:
                return pair
            if entry[:2] < current:
                heapq.heappush(heap, current + (pair,))
        return None

    def _merge(self, pair):
        """Merges ``pair`` in every word that holds it; returns the merged piece."""
        left, right = pair >> _SHIFT, pair & _MASK
        piece = self.strings[left] + self.strings[right][2:]  # the right part starts with "##"
        merged = self.ids.get(piece)
        if merged is None:
            merged = self.ids[piece] = len(self.strings)
            self.strings.append(piece)
            self.symbol_counts.append(0)
            self.pieces.append(piece)
        # (A piece already known -- "##ab"+"##c" after "##a"+"##bc" -- adds no entry.)
        deltas, merged_count = self._merge_in_words(pair, left, right, merged)
        self.symbol_counts[left] -= merged_count
        self.symbol_counts[right] -= merged_count
        self.symbol_counts[merged] += merged_count
        self._update_pairs(deltas, left, right)
        return piece

    def _merge_in_words(self, pair, left, right, merged):
        """Rewrites the words holding ``pair``; returns (the change of each pair's count, how
        many times the pair was merged in the corpus)."""
        words, freqs, pair_words = self.words, self.freqs, self.pair_words
        deltas = collections.defaultdict(int)
        merged_count = 0
        for index in set(pair_words.pop(pair)):
            symbols = words[index]
            new_symbols = _merge_word(symbols, left, right, merged)
            if new_symbols is None:
                continue  # stale index entry: an earlier merge took the pair away
            count = freqs[index]
            merged_count += count * (len(symbols) - len(new_symbols))
            # The word's pairs before and after: unchanged pairs cancel out in `deltas`.
            old_pairs = [(x << _SHIFT) | y for x, y in zip(symbols, symbols[1:])]
            new_pairs = [(x << _SHIFT) | y for x, y in zip(new_symbols, new_symbols[1:])]
            for other in old_pairs:
                deltas[other] -= count
            for other in new_pairs:
                deltas[other] += count
            # A pair the word already had is already indexed to it.
            for other in set(new_pairs).difference(old_pairs):
                pair_words[other].append(index)
            words[index] = new_symbols
        return deltas, merged_count

    def _update_pairs(self, deltas, left, right):
        """Applies the count changes of a merge of ``left right``, and pushes the pairs whose
        score improved (rebuilding the heap when stale entries pile up)."""
        pair_counts, symbol_pairs, likelihood = self.pair_counts, self.symbol_pairs, self.likelihood
        improved = set()
        for other, change in deltas.items():
            if not change:
                continue
            count = pair_counts.get(other, 0) + change
            if count <= 0:
                del pair_counts[other]
                self.pair_words.pop(other, None)
                if likelihood:
                    symbol_pairs[other >> _SHIFT].discard(other)
                    symbol_pairs[other & _MASK].discard(other)
                continue
            if likelihood and other not in pair_counts:
                symbol_pairs[other >> _SHIFT].add(other)
                symbol_pairs[other & _MASK].add(other)
            pair_counts[other] = count
            if change > 0:
                improved.add(other)
        if likelihood:  # count(left), count(right) fell: every pair with them scores higher
            improved.update(symbol_pairs[left])
            improved.update(symbol_pairs[right])
        for other in sorted(improved):
            heapq.heappush(self.heap, self.key(other) + (other,))
        if len(self.heap) > 4 * len(pair_counts) + 100_000:  # drop the stale entries
            self.heap = [self.key(other) + (other,) for other in pair_counts]
            heapq.heapify(self.heap)


def build_vocab(word_counts, vocab_size, num_unused=99, min_char_frequency=1,
                min_word_frequency=1, scoring="frequency", pad_to_vocab_size=True, log_every=0):
    """The complete vocabulary (a list of entries, id order) learned from ``word_counts``.

    Raises VocabSizeError, saying the smallest possible --vocab_size, when ``vocab_size`` cannot
    hold the reserved tokens and both forms of every character.
    """
    reserved = reserved_tokens(num_unused)
    try:
        learned = learn_wordpiece(word_counts, vocab_size - len(reserved), min_char_frequency,
                                  min_word_frequency, scoring, log_every)
    except VocabSizeError as err:
        raise VocabSizeError(
            "--vocab_size=%d is too small: the %d reserved tokens ([PAD], %d [unused], [UNK], "
            "[CLS], [SEP], [MASK]) and the %d characters seen at least %d times (each as c and "
            "##c) need at least --vocab_size=%d (or raise --min_char_frequency, or lower "
            "--num_unused)" % (vocab_size, len(reserved), num_unused, err.required // 2,
                               min_char_frequency, len(reserved) + err.required)) from None
    vocab = reserved + learned
    if len(vocab) < vocab_size and pad_to_vocab_size:
        vocab += ["[unused%d]" % i for i in range(num_unused, num_unused + vocab_size - len(vocab))]
    return vocab


# ---------------------------------------------------------------------------
# Output and evaluation.
# ---------------------------------------------------------------------------


def write_vocab(vocab, path):
    """Writes ``vocab`` (one entry a line, UTF-8) to ``path`` atomically.

    The entries go to a temporary file in the same directory, which then replaces ``path``; a
    failure leaves ``path`` as it was and no temporary file behind.
    """
    seen = set()
    for entry in vocab:
        if not entry or any(char.isspace() for char in entry):
            raise ValueError("Invalid vocabulary entry %r" % entry)
        if entry in seen:
            raise ValueError("Duplicate vocabulary entry %r" % entry)
        seen.add(entry)
    data = "".join(entry + "\n" for entry in vocab).encode("utf-8")
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    for attempt in range(100):
        temp = os.path.join(directory, ".%s.tmp-%d-%d" % (name, os.getpid(), attempt))
        try:
            # Mode 0o666 (less the umask), like a file opened with open(path, "w").
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise OSError("Cannot create a temporary file next to %s" % path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def evaluate_vocab(vocab, word_counts):
    """How the corpus tokenizes with ``vocab`` (a list of entries), as FullTokenizer does it.

    FullTokenizer is BasicTokenizer followed by WordpieceTokenizer on each basic token, so the
    counted basic tokens give its exact output.  Returns a dict: words, distinct_words, tokens,
    unk_tokens, unk_share (of all tokens), pieces_per_word, whole_words (share of words that are
    one entry).
    """
    wordpiece = tokenization.WordpieceTokenizer({entry: i for i, entry in enumerate(vocab)},
                                                unk_token=UNK_TOKEN,
                                                max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD)
    words = tokens = unk = whole = 0
    for word, count in word_counts.items():
        pieces = wordpiece.tokenize_word(word)
        words += count
        tokens += count * len(pieces)
        unk += count * pieces.count(UNK_TOKEN)
        if len(pieces) == 1 and pieces[0] != UNK_TOKEN:
            whole += count
    return {
        "words": words,
        "distinct_words": len(word_counts),
        "tokens": tokens,
        "unk_tokens": unk,
        "unk_share": unk / tokens if tokens else 0.0,
        "pieces_per_word": tokens / words if words else 0.0,
        "whole_words": whole / words if words else 0.0,
    }


# ---------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------


def run(input_file, output_file, vocab_size=30522, do_lower_case=True, num_unused=99,
        min_char_frequency=1, min_word_frequency=1, scoring="frequency", pad_to_vocab_size=True):
    """Counts, learns, writes and evaluates; returns the evaluation dict (see evaluate_vocab)."""
    start = time.time()
    paths = file_io.expand_patterns(input_file, flag="--input_file")
    word_counts = count_words_in_files(paths, do_lower_case)
    logging.info("Counted %d words (%d distinct) in %d file(s) in %.1f s",
                 sum(word_counts.values()), len(word_counts), len(paths), time.time() - start)
    learn_start = time.time()
    vocab = build_vocab(word_counts, vocab_size, num_unused, min_char_frequency,
                        min_word_frequency, scoring, pad_to_vocab_size, log_every=5000)
    learned = len(vocab)
    while learned and vocab[learned - 1].startswith("[unused"):
        learned -= 1
    num_reserved = len(reserved_tokens(num_unused))
    num_chars = sum(1 for entry in vocab[num_reserved:learned] if len(entry) == 1)
    logging.info("Learned %d entries in %.1f s: %d characters (as c and ##c) and %d merged "
                 "pieces (%s scoring)", learned - num_reserved, time.time() - learn_start,
                 num_chars, learned - num_reserved - 2 * num_chars, scoring)
    if 2 * num_chars > (vocab_size - num_reserved) // 4:
        char_counts = character_counts(word_counts)
        fewer = {n: sum(c >= n for c in char_counts.values()) for n in (10, 100)}
        if fewer[10] < num_chars:
            logging.warning(
                "The %d characters seen at least %d times take %d of the %d learned entries "
                "(--min_char_frequency=10 would keep %d characters, 100 would keep %d)",
                num_chars, min_char_frequency, 2 * num_chars, vocab_size - num_reserved,
                fewer[10], fewer[100])
    if len(vocab) > learned:
        logging.warning(
            "The corpus ran out of pieces to learn at %d entries (every word is a single entry); "
            "filled up to --vocab_size=%d with %d more [unused] entries", learned, vocab_size,
            len(vocab) - learned)
    elif len(vocab) < vocab_size:
        logging.warning("The corpus ran out of pieces to learn: writing %d entries, not "
                        "--vocab_size=%d", len(vocab), vocab_size)
    write_vocab(vocab, output_file)
    stats = evaluate_vocab(vocab, word_counts)
    stats["vocab_size"] = len(vocab)
    logging.info(
        "Wrote %d entries to %s. Tokenizing the corpus with it: %d words (%d distinct) -> %d "
        "pieces, %.3f pieces/word, %.1f%% of words are one entry, [UNK] %d = %.4f%% of tokens. "
        "Total %.1f s.", len(vocab), os.path.abspath(output_file), stats["words"],
        stats["distinct_words"], stats["tokens"], stats["pieces_per_word"],
        100 * stats["whole_words"], stats["unk_tokens"], 100 * stats["unk_share"],
        time.time() - start)
    return stats


def main(argv):
    if len(argv) > 1:
        raise app.UsageError("Unexpected arguments: %s" % " ".join(argv[1:]))
    for name in ("input_file", "output_file"):
        if not getattr(FLAGS, name):
            raise app.UsageError("--%s is required" % name)
    run(FLAGS.input_file, FLAGS.output_file, FLAGS.vocab_size, FLAGS.do_lower_case,
        FLAGS.num_unused, FLAGS.min_char_frequency, FLAGS.min_word_frequency, FLAGS.scoring,
        FLAGS.pad_to_vocab_size)


if __name__ == "__main__":
    common_flags.run(main)
