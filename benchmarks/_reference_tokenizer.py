"""Direct, unoptimised port of the BERT WordPiece tokenization algorithm.

This module is deliberately naive: it walks the text one character at a time
exactly in the order the algorithm is specified (clean, space out CJK
characters, split, lower-case and strip accents, split punctuation, WordPiece).
It exists for two reasons:

* it is the speed baseline for ``benchmarks/tokenization_speed.py``;
* it is the oracle that the fast paths of ``tokenization.py`` are tested
  against (``tests/test_tokenization.py``).

Do not optimise it; its value is that it is obviously correct.
"""
import unicodedata

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


def is_whitespace(char):
    """True for the characters the cleaner turns into a plain space."""
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char):
    """True for the characters the cleaner drops (tab/newline/CR excluded).

    Categories Cc and Cf only, as the original since March 2019: unassigned
    (Cn), private-use (Co) and surrogate (Cs) code points are kept.
    """
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def is_punctuation(char):
    """True for non-alphanumeric printable ASCII and Unicode category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk(cp):
    """True if the code point lies in one of the CJK ideograph blocks."""
    for low, high in _CJK_RANGES:
        if low <= cp <= high:
            return True
    return False


def to_text(text):
    """Return ``text`` as ``str`` (bytes are decoded strictly as UTF-8)."""
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8")
    raise ValueError("unsupported type %s" % type(text).__name__)


def load_vocab(vocab_file):
    """Read one token per line into a dict token -> line index."""
    vocab = {}
    with open(vocab_file, "r", encoding="utf-8", newline="\n") as handle:
        for index, line in enumerate(handle):
            vocab[line.strip()] = index
    return vocab


class ReferenceBasicTokenizer:
    """Cleaning, CJK spacing, lower-casing/accent stripping, punctuation split."""

    def __init__(self, do_lower_case=True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text):
        text = self._clean(to_text(text))
        text = self._space_cjk(text)
        pieces = []
        for token in text.split():
            if self.do_lower_case:
                token = self._strip_accents(token.lower())
            pieces.extend(self._split_punctuation(token))
        return " ".join(pieces).split()

    @staticmethod
    def _clean(text):
        out = []
        for char in text:
            cp = ord(char)
            if cp == 0 or cp == 0xFFFD or is_control(char):
                continue
            out.append(" " if is_whitespace(char) else char)
        return "".join(out)

    @staticmethod
    def _space_cjk(text):
        out = []
        for char in text:
            if is_cjk(ord(char)):
                out.extend((" ", char, " "))
            else:
                out.append(char)
        return "".join(out)

    @staticmethod
    def _strip_accents(text):
        out = []
        for char in unicodedata.normalize("NFD", text):
            if unicodedata.category(char) != "Mn":
                out.append(char)
        return "".join(out)

    @staticmethod
    def _split_punctuation(text):
        groups = []
        start_new = True
        for char in text:
            if is_punctuation(char):
                groups.append([char])
                start_new = True
            else:
                if start_new:
                    groups.append([])
                    start_new = False
                groups[-1].append(char)
        return ["".join(group) for group in groups]


class ReferenceWordpieceTokenizer:
    """Greedy longest-match-first WordPiece over a fixed vocabulary."""

    def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=200):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text):
        output = []
        for token in to_text(text).split():
            output.extend(self._tokenize_word(token))
        return output

    def _tokenize_word(self, word):
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            match = None
            while start < end:
                candidate = word[start:end]
                if start > 0:
                    candidate = "##" + candidate
                if candidate in self.vocab:
                    match = candidate
                    break
                end -= 1
            if match is None:
                return [self.unk_token]
            pieces.append(match)
            start = end
        return pieces


class ReferenceFullTokenizer:
    """Basic tokenization followed by WordPiece on every basic token."""

    def __init__(self, vocab_file, do_lower_case=True):
        self.vocab = load_vocab(vocab_file)
        self.basic_tokenizer = ReferenceBasicTokenizer(do_lower_case)
        self.wordpiece_tokenizer = ReferenceWordpieceTokenizer(self.vocab)

    def tokenize(self, text):
        output = []
        for token in self.basic_tokenizer.tokenize(text):
            output.extend(self.wordpiece_tokenizer.tokenize(token))
        return output
