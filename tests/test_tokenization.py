"""Tests for tokenization.py.

* hand-written cases on a small vocabulary;
* parity with the HuggingFace ``tokenizers`` BERT tokenizer (the oracle) on
  >= 1 MB of real English and on a hand-written multilingual sample;
* random-Unicode fuzzing: the fast paths against the direct port in
  ``benchmarks/_reference_tokenizer.py``, a lost-character check, and an
  explained comparison with the HF oracle;
* error handling (bad UTF-8, bad vocabularies, checkpoint casing).
"""
import collections
import os
import random
import sys
import unicodedata

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (os.path.join(_ROOT, "benchmarks"), os.path.join(_ROOT, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import tokenization  # noqa: E402
from _reference_tokenizer import ReferenceFullTokenizer  # noqa: E402
from real_model import real_vocab_file  # noqa: E402
from tokenization_speed import build_corpus, hf_tokens, make_hf_tokenizer  # noqa: E402

SMALL_VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "quick", "brown", "fox", "hello", "world", "how", "are", "you",
    "un", "##want", "##ed", "want", "runn", "##ing", "low", "##er", "##est",
    "a", "##a", "naive", "cafe", "Héllo", "Wörld", "中", "文", "博", "推",
    ",", ".", "!", "?", "'", "-", "«", "»", "$", "5",
]


@pytest.fixture(name="vocab_file")
def fixture_vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("".join(token + "\n" for token in SMALL_VOCAB), encoding="utf-8")
    return str(path)


@pytest.fixture(name="lower_tokenizer")
def fixture_lower_tokenizer(vocab_file):
    return tokenization.FullTokenizer(vocab_file, do_lower_case=True)


def _wordpiece(tokens=SMALL_VOCAB, **kwargs):
    return tokenization.WordpieceTokenizer({t: i for i, t in enumerate(tokens)}, **kwargs)


# ---------------------------------------------------------------------------
# Hand-written cases.
# ---------------------------------------------------------------------------

BASIC_LOWER_CASES = [
    (" \tHeLLo!how  \n Are yoU?  ", ["hello", "!", "how", "are", "you", "?"]),
    ("Héllo WÖRLD naïve café", ["hello", "world", "naive", "cafe"]),
    ("ah\u535a\u63a8zz", ["ah", "\u535a", "\u63a8", "zz"]),
    ("中文abc", ["中", "文", "abc"]),
    ("don't stop-now...", ["don", "'", "t", "stop", "-", "now", ".", ".", "."]),
    ("«bonjour»", ["«", "bonjour", "»"]),
    ("$5 €5 ^`~", ["$", "5", "€5", "^", "`", "~"]),
    ("a\x00b\x07c\ufffdd\x7fe", ["abcde"]),
    ("a\u200bb\u200dc\ufeffd", ["abcd"]),  # format characters (Cf) are dropped
    ("a\x0bb a\x0cb a\x1cb a\x1fb a\x85b", ["ab"] * 5),  # control whitespace glues
    ("a\u00a0b\u3000c\u2028d\u2029e\u1680f\u202fg", list("abcdefg")),
    ("tab\tnew\nline\r\nend", ["tab", "new", "line", "end"]),
    ("", []),
    ("   \x00 \x0b ", []),
    ("İstanbul ß ﬁ", ["istanbul", "ß", "ﬁ"]),
]


@pytest.mark.parametrize("text,expected", BASIC_LOWER_CASES)
def test_basic_tokenizer_lower(text, expected):
    assert tokenization.BasicTokenizer(do_lower_case=True).tokenize(text) == expected


def test_basic_tokenizer_cased_keeps_case_and_accents():
    tokenizer = tokenization.BasicTokenizer(do_lower_case=False)
    assert tokenizer.tokenize(" HéLLo, Wörld!  naïve ") == ["HéLLo", ",", "Wörld", "!", "naïve"]
    assert tokenizer.tokenize("e\u0301") == ["e\u0301"]  # combining mark kept


def test_basic_tokenizer_accepts_bytes():
    assert tokenization.BasicTokenizer().tokenize("Héllo".encode("utf-8")) == ["hello"]


def test_wordpiece_tokenizer():
    tokenizer = _wordpiece()
    assert tokenizer.tokenize("") == []
    assert tokenizer.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tokenizer.tokenize("lowest lower low") == ["low", "##est", "low", "##er", "low"]
    assert tokenizer.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
    assert _wordpiece(unk_token="<unk>").tokenize("xyz") == ["<unk>"]


def test_wordpiece_max_input_chars_per_word():
    tokenizer = _wordpiece()
    assert tokenizer.tokenize("a" * 200) == ["a"] + ["##a"] * 199
    assert tokenizer.tokenize("a" * 201) == ["[UNK]"]
    short = _wordpiece(max_input_chars_per_word=3)
    assert short.tokenize("aaa aaaa") == ["a", "##a", "##a", "[UNK]"]


def test_full_tokenizer(lower_tokenizer):
    tokens = lower_tokenizer.tokenize("UNwanted, running! Héllo 中文")
    assert tokens == ["un", "##want", "##ed", ",", "runn", "##ing", "!", "hello", "中", "文"]
    ids = lower_tokenizer.convert_tokens_to_ids(tokens)
    assert ids == [SMALL_VOCAB.index(token) for token in tokens]
    assert lower_tokenizer.convert_ids_to_tokens(ids) == tokens
    assert lower_tokenizer.tokenize("x" * 201 + " fox") == ["[UNK]", "fox"]
    assert lower_tokenizer.tokenize("zebra") == ["[UNK]"]


def test_full_tokenizer_cased(vocab_file):
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=False)
    assert tokenizer.tokenize("Héllo Wörld hello Hello") == ["Héllo", "Wörld", "hello", "[UNK]"]


def test_full_tokenizer_attributes(lower_tokenizer):
    assert list(lower_tokenizer.vocab) == SMALL_VOCAB
    assert lower_tokenizer.inv_vocab[5] == "the"
    assert isinstance(lower_tokenizer.basic_tokenizer, tokenization.BasicTokenizer)
    assert isinstance(lower_tokenizer.wordpiece_tokenizer, tokenization.WordpieceTokenizer)


def test_full_tokenizer_cache_is_bounded_and_not_aliased(lower_tokenizer, monkeypatch):
    monkeypatch.setattr(tokenization, "CACHE_LIMIT", 10)
    for i in range(100):
        lower_tokenizer.tokenize("word%d, the quick" % i)
    assert len(lower_tokenizer._cache) <= 10  # pylint: disable=protected-access
    assert len(lower_tokenizer.wordpiece_tokenizer._cache) <= 10  # pylint: disable=protected-access
    first = lower_tokenizer.tokenize("the quick fox")
    first.append("mutated")
    assert lower_tokenizer.tokenize("the quick fox") == ["the", "quick", "fox"]


def test_hand_written_cases_match_reference(vocab_file):
    for lower in (True, False):
        ours = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
        port = ReferenceFullTokenizer(vocab_file, do_lower_case=lower)
        for text, _ in BASIC_LOWER_CASES:
            assert ours.tokenize(text) == port.tokenize(text), text


def test_whitespace_the_cleaner_deletes_is_the_documented_set():
    """The fast path's argument (module docstring): the only str.split()
    separators the cleaner deletes are these Cc characters; no whitespace
    character is Cf, Cn, Co or Cs."""
    assert tokenization._DROPPED_SPACES == "\x0b\x0c\x1c\x1d\x1e\x1f\x85"  # pylint: disable=protected-access
    spaces = [chr(cp) for cp in range(0x110000) if chr(cp).isspace()]
    assert {unicodedata.category(char) for char in spaces} == {"Cc", "Zs", "Zl", "Zp"}


def test_whitespace_tokenize():
    assert tokenization.whitespace_tokenize("  a b\u2028c\t\n ") == ["a", "b", "c"]
    assert tokenization.whitespace_tokenize("") == []


# ---------------------------------------------------------------------------
# Errors and helpers.
# ---------------------------------------------------------------------------


def test_convert_to_unicode():
    assert tokenization.convert_to_unicode("héllo") == "héllo"
    assert tokenization.convert_to_unicode("héllo".encode("utf-8")) == "héllo"
    assert tokenization.printable_text(b"abc") == "abc"
    with pytest.raises(ValueError, match=r"b'ab\\xffcd'.*offset 2"):
        tokenization.convert_to_unicode(b"ab\xffcd")
    with pytest.raises(ValueError, match=r"train\.txt.*offset 1"):
        tokenization.convert_to_unicode(b"a\xc3(", source="train.txt")
    with pytest.raises(ValueError, match="int"):
        tokenization.convert_to_unicode(5)
    with pytest.raises(ValueError, match="offset 0"):
        tokenization.BasicTokenizer().tokenize(b"\xff")


def test_convert_by_vocab_names_missing_token(lower_tokenizer):
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        lower_tokenizer.convert_tokens_to_ids(["the", "zebra"])
    with pytest.raises(ValueError, match="99999"):
        lower_tokenizer.convert_ids_to_tokens([99999])


def test_load_vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"[PAD]\r\n  spaced  \nh\xc3\xa9\n\nlast")
    vocab = tokenization.load_vocab(str(path))
    assert isinstance(vocab, collections.OrderedDict)
    assert list(vocab.items()) == [("[PAD]", 0), ("spaced", 1), ("hé", 2), ("", 3), ("last", 4)]


def test_load_vocab_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad_vocab.txt"
    path.write_bytes(b"[PAD]\n[UNK]\nbad\xff\nok\n")
    with pytest.raises(ValueError, match=r"bad_vocab\.txt, line 3"):
        tokenization.load_vocab(str(path))


def test_load_vocab_empty_file(tmp_path):
    path = tmp_path / "empty_vocab.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty_vocab\.txt.*empty"):
        tokenization.load_vocab(str(path))


@pytest.mark.parametrize(
    "name,lower_ok",
    [
        ("uncased_L-12_H-768_A-12", True),
        ("uncased_L-24_H-1024_A-16", True),
        ("multilingual_L-12_H-768_A-12", True),
        ("chinese_L-12_H-768_A-12", True),
        ("wwm_uncased_L-24_H-1024_A-16", True),
        ("uncased_L-2_H-128_A-2", True),
        ("uncased_L-4_H-256_A-4", True),
        ("uncased_L-8_H-512_A-8", True),
        ("uncased_L-10_H-768_A-12", True),
        ("cased_L-12_H-768_A-12", False),
        ("cased_L-24_H-1024_A-16", False),
        ("multi_cased_L-12_H-768_A-12", False),
        ("wwm_cased_L-24_H-1024_A-16", False),
    ],
)
def test_validate_case_matches_checkpoint(name, lower_ok):
    checkpoint = "gs://bucket/models/%s/bert_model.ckpt" % name
    tokenization.validate_case_matches_checkpoint(lower_ok, checkpoint)
    with pytest.raises(ValueError, match="do_lower_case=%s" % lower_ok) as info:
        tokenization.validate_case_matches_checkpoint(not lower_ok, checkpoint)
    assert name in str(info.value)


def test_validate_case_ignores_unknown_or_missing_checkpoints():
    for checkpoint in (None, "", "/tmp/model.ckpt", "/x/my_model/bert_model.ckpt"):
        for lower in (True, False):
            tokenization.validate_case_matches_checkpoint(lower, checkpoint)


# ---------------------------------------------------------------------------
# Real vocabulary: oracle parity on real text.
# ---------------------------------------------------------------------------


@pytest.fixture(name="real_vocab", scope="module")
def fixture_real_vocab():
    return real_vocab_file()


@pytest.fixture(name="corpus", scope="module")
def fixture_corpus():
    return build_corpus()


def _first_mismatch(texts, ours, theirs):
    """Describes the first text whose token lists differ (with the tokens around
    the first difference), or returns None."""
    assert len(texts) == len(ours) == len(theirs)
    for number, (text, mine, other) in enumerate(zip(texts, ours, theirs), 1):
        if mine != other:
            diffs = [i for i, (a, b) in enumerate(zip(mine, other)) if a != b]
            at = diffs[0] if diffs else min(len(mine), len(other))
            window = slice(max(0, at - 3), at + 5)
            return "line %d %r:\n  ours:   %r\n  oracle: %r" % (
                number, text, mine[window], other[window])
    return None


def test_real_vocab_is_the_uncased_bert_vocab(real_vocab):
    vocab = tokenization.load_vocab(real_vocab)
    assert len(vocab) == 30522
    assert vocab["[UNK]"] == 100 and vocab["[CLS]"] == 101 and vocab["##ing"] > 0


def test_corpus_is_large_enough(corpus):
    assert sum(len(line.encode("utf-8")) for line in corpus) >= 1_000_000


@pytest.mark.parametrize("lower", [True, False])
def test_parity_with_hf_oracle_on_english_corpus(real_vocab, corpus, lower):
    ours = tokenization.FullTokenizer(real_vocab, do_lower_case=lower)
    theirs = hf_tokens(make_hf_tokenizer(real_vocab, lower), corpus)
    mismatch = _first_mismatch(corpus, [ours.tokenize(line) for line in corpus], theirs)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("lower", [True, False])
def test_fast_path_matches_direct_port_on_english_corpus(real_vocab, corpus, lower):
    ours = tokenization.FullTokenizer(real_vocab, do_lower_case=lower)
    port = ReferenceFullTokenizer(real_vocab, do_lower_case=lower)
    sample = corpus[::3]  # a third of the corpus keeps the slow port under a few seconds
    mismatch = _first_mismatch(
        sample, [ours.tokenize(t) for t in sample], [port.tokenize(t) for t in sample])
    assert mismatch is None, mismatch


@pytest.mark.parametrize("lower", [True, False])
def test_tokenize_to_ids_matches_tokenize(real_vocab, corpus, lower):
    tokenizer = tokenization.FullTokenizer(real_vocab, do_lower_case=lower)
    sample = corpus[::5] + MULTILINGUAL_SAMPLE + ["", " \x0b\t ", "x\x1fy"]
    for text in sample + sample:  # the second pass reads the memo
        assert tokenizer.tokenize_to_ids(text) == tokenizer.convert_tokens_to_ids(
            tokenizer.tokenize(text)), text


MULTILINGUAL_SAMPLE = [
    "自然语言处理是人工智能的一个重要方向。我们今天去北京大学。",
    "東京都は日本の首都です。ひらがな、カタカナ、漢字を混ぜて書きます。ｶﾀｶﾅもあります。",
    "한국어 문장도 토큰화해야 합니다. 서울은 대한민국의 수도입니다!",
    "اللغة العربية جميلة، وَالكِتابَةُ بِالتَّشْكِيلِ أيضاً.",
    "Москва — столица России. ПРИВЕТ, мир! Ёлка и ёжик.",
    "Η γλώσσα είναι όμορφη· καλημέρα κόσμε, ο δρόμος είναι μακρύς;",
    "हिन्दी एक सुंदर भाषा है। नमस्ते दुनिया!",
    "Ça m'a coûté très cher : « l'été à Noël » – naïve façade, cœur ŒUVRE.",
    "Größere Straßen in München, Köln und Düsseldorf; ÄÖÜ äöü ß ẞ.",
    "Tiếng Việt có nhiều dấu: Hà Nội, Thành phố Hồ Chí Minh, người Việt.",
    "Emoji: 😀 👍🏽 👨‍👩‍👧 ❤️ 🇫🇷 and text🙂mixed.",
    "Mixed scripts: data科学 NLP模型 Ünïcödé 123,456.78 $9.99 €5 ¥100 ＡＢＣ１２３",
    "עברית עם ניקוד: שָׁלוֹם עוֹלָם. ภาษาไทยไม่มีช่องว่าง ქართული ენა",
    "Turkish İstanbul ılık; ligatures ﬁ ﬂ; fractions ½ ¾; superscripts x² H₂O; № ™ ©",
]


@pytest.mark.parametrize("lower", [True, False])
def test_parity_with_hf_oracle_on_multilingual_sample(real_vocab, lower):
    ours = tokenization.FullTokenizer(real_vocab, do_lower_case=lower)
    theirs = hf_tokens(make_hf_tokenizer(real_vocab, lower), MULTILINGUAL_SAMPLE)
    mine = [ours.tokenize(text) for text in MULTILINGUAL_SAMPLE]
    mismatch = _first_mismatch(MULTILINGUAL_SAMPLE, mine, theirs)
    assert mismatch is None, mismatch
    assert sum(map(len, mine)) > 200  # the sample is not trivially short


def test_final_sigma_follows_python_lower_not_hf(real_vocab):
    """Known oracle difference: str.lower() maps a word-final capital sigma to 'ς'
    (as the original BERT code, which calls str.lower()); HF lower-cases per
    character and always produces 'σ'."""
    text = "ΟΔΟΣ"
    ours = tokenization.FullTokenizer(real_vocab, do_lower_case=True).tokenize(text)
    assert ours == ReferenceFullTokenizer(real_vocab, do_lower_case=True).tokenize(text)
    assert ours == ["ο", "##δ", "##ος"]
    assert hf_tokens(make_hf_tokenizer(real_vocab, True), [text])[0] == ["ο", "##δ", "##ο", "##σ"]


# ---------------------------------------------------------------------------
# Every code point, against a plain port of the original's rules.
# ---------------------------------------------------------------------------

# The original tokenization.py (google-research/bert, current version),
# restated here from its rules so that the walk trusts neither
# tokenization.py nor benchmarks/_reference_tokenizer.py.


def _original_is_whitespace(char):
    if char in (" ", "\t", "\n", "\r"):
        return True
    return unicodedata.category(char) == "Zs"


def _original_is_control(char):
    if char in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def _original_is_punctuation(char):
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _original_is_chinese_char(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _original_char_tables():
    """``str.translate`` tables holding the original's per-character steps.

    clean: ``_clean_text`` (drop U+0000, U+FFFD and controls; whitespace to a
    space) followed by ``_tokenize_chinese_chars``; punctuation: a space on
    both sides, as ``_run_split_on_punc`` makes each one a token of its own;
    marks: the Mn characters ``_run_strip_accents`` deletes.  Each rule is
    evaluated once per code point, with Python's ``unicodedata``.
    """
    clean, punctuation, marks = {}, {}, {}
    for cp in range(0x110000):
        char = chr(cp)
        if cp == 0 or cp == 0xFFFD or _original_is_control(char):
            clean[cp] = None
        elif _original_is_whitespace(char):
            clean[cp] = " "
        elif _original_is_chinese_char(cp):
            clean[cp] = " %s " % char
        if _original_is_punctuation(char):
            punctuation[cp] = " %s " % char
        if unicodedata.category(char) == "Mn":
            marks[cp] = None
    return clean, punctuation, marks


def _original_wordpiece(word, vocab, vocab_chars, max_input_chars_per_word=200):
    if len(word) > max_input_chars_per_word:
        return ["[UNK]"]
    # Same result, sooner (most walked words): every candidate covering a
    # character contains it, so where no vocabulary entry holds that character
    # the loop below would end in [UNK].
    if not vocab_chars.issuperset(word):
        return ["[UNK]"]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        else:
            return ["[UNK]"]
        pieces.append(piece)
        start = end
    return pieces


def _original_tokenize(text, do_lower_case, vocab, tables):
    """The original ``FullTokenizer.tokenize`` (``text`` is a str; ``vocab`` a
    (dict, set of its characters) pair)."""
    clean, punctuation, marks = tables
    vocab, vocab_chars = vocab
    basic = []
    # _clean_text, _tokenize_chinese_chars, whitespace_tokenize:
    for token in text.translate(clean).split():
        if do_lower_case:  # lower(), then _run_strip_accents
            token = unicodedata.normalize("NFD", token.lower()).translate(marks)
        # _run_split_on_punc, then whitespace_tokenize(" ".join(...)):
        basic.extend(token.translate(punctuation).split())
    # WordpieceTokenizer.tokenize on each basic token (it holds no whitespace).
    return [piece for token in basic for piece in _original_wordpiece(token, vocab, vocab_chars)]


# Every code point but the surrogates, which UTF-8 text cannot hold (they are
# walked on their own below).
_ALL_CODE_POINTS = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
_SURROGATES = list(range(0xD800, 0xE000))


def _walk_word(cp):
    """``chr(cp)`` inside a word: dropped, it joins "a" and "b"; whitespace,
    punctuation or CJK, it splits them; a mark or an expanding lower-case
    (U+0130) changes the word; kept, it makes the word [UNK] unless the
    vocabulary holds "##" + it."""
    return "a%sb" % chr(cp)


def _walk(code_points, do_lower_case, vocab_file, tables, batch=4096):
    """Code points whose word ``FullTokenizer`` tokenizes unlike the original.

    Words are tokenized ``batch`` at a time, separated by plain spaces: every
    step of both tokenizers works per whitespace-separated token and a plain
    space is a separator for both, so a batch's output is the concatenation of
    its words' outputs (a word whose code point is whitespace splits into two
    tokens, one whose code point is dropped joins into one, neither touches
    its neighbours).  So equal batches mean equal words, short of two
    neighbouring words' differences cancelling exactly.  Only a batch that
    differs is redone one word at a time, to name the code points; returns
    (the first 20 of them, the number of differing batches).
    """
    ours = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
    with open(vocab_file, encoding="utf-8", newline="\n") as handle:  # the original's readline()
        entries = {line.strip(): index for index, line in enumerate(handle)}
    vocab = (entries, set("".join(entries)))
    differing, bad_batches = [], 0
    for start in range(0, len(code_points), batch):
        words = [_walk_word(cp) for cp in code_points[start:start + batch]]
        text = " ".join(words)
        if ours.tokenize(text) == _original_tokenize(text, do_lower_case, vocab, tables):
            continue
        bad_batches += 1
        for cp, word in zip(code_points[start:start + batch], words):
            if len(differing) >= 20:
                break
            mine = ours.tokenize(word)
            original = _original_tokenize(word, do_lower_case, vocab, tables)
            if mine != original:
                differing.append("U+%04X (%s): ours %r, original %r" % (
                    cp, unicodedata.category(chr(cp)), mine, original))
    return differing, bad_batches


@pytest.fixture(name="original_tables", scope="module")
def fixture_original_tables():
    return _original_char_tables()


@pytest.fixture(name="fresh_memo_tables", scope="module")
def fixture_fresh_memo_tables():
    """Empty per-code-point tables for the walks (shared by both casings, as in
    a process): the result cannot depend on what other tests filled in, and
    the walks' million entries are freed with this module's tests."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("_CLEAN_TABLE", "_PUNCT_TABLE", "_MN_TABLE"):
            compute = getattr(tokenization, name)._compute  # pylint: disable=protected-access
            patch.setattr(tokenization, name, tokenization._LazyTable(compute))  # pylint: disable=protected-access
        yield


@pytest.mark.parametrize("lower", [True, False])
def test_every_code_point_in_a_word_matches_the_original(
        real_vocab, original_tables, fresh_memo_tables, lower):  # pylint: disable=unused-argument
    """U+0000..U+10FFFF (surrogates walked below), cased and uncased.

    Both casings use the real uncased vocabulary, where a casing mistake shows
    in the word pieces: cased, "aAb" or "a\u0301b" is [UNK], lower-cased they
    would be "aab" or "ab"."""
    assert len(_ALL_CODE_POINTS) == 1_112_064
    differing, bad_batches = _walk(_ALL_CODE_POINTS, lower, real_vocab, original_tables)
    assert not differing and not bad_batches, "%d batches differ; first code points:\n%s" % (
        bad_batches, "\n".join(differing))


@pytest.mark.parametrize("lower", [True, False])
def test_lone_surrogates_in_a_word_match_the_original(real_vocab, original_tables, lower):
    """A str (not decoded UTF-8) may hold lone surrogates (Cs): kept as ordinary characters."""
    differing, bad_batches = _walk(_SURROGATES, lower, real_vocab, original_tables)
    assert not differing and not bad_batches, "\n".join(differing)
    ours = tokenization.FullTokenizer(real_vocab, do_lower_case=lower)
    assert ours.basic_tokenizer.tokenize("x\ud800y") == ["x\ud800y"]


def test_walk_reports_differing_code_points(real_vocab, original_tables, monkeypatch):
    """The walk can fail, and names the code points: with the pre-2019 rule
    (every category C* dropped), unassigned and private-use code points differ."""
    old_rule = lambda char: char not in "\t\n\r" and unicodedata.category(char)[0] == "C"  # noqa: E731
    monkeypatch.setattr(tokenization, "_is_control", old_rule)
    old_table = tokenization._LazyTable(tokenization._clean_char)  # pylint: disable=protected-access
    monkeypatch.setattr(tokenization, "_CLEAN_TABLE", old_table)
    code_points = list(range(0x360, 0x380)) + list(range(0xE000, 0xE010))
    differing, bad_batches = _walk(code_points, True, real_vocab, original_tables, batch=16)
    assert bad_batches == 2  # U+0370-U+037F holds the unassigned U+0378 and U+0379
    assert differing[0].startswith("U+0378 (Cn): ours ['ab'], original ['[UNK]']")
    assert differing[2].startswith("U+E000 (Co)")


# ---------------------------------------------------------------------------
# Random-Unicode fuzzing.
# ---------------------------------------------------------------------------

# (first code point, last code point, weight).  The pools cover every code
# point, unassigned (Cn), private-use (Co) and lone surrogates (Cs) included;
# the focused pools make the interesting classes frequent.
_FUZZ_POOLS = (
    (0x20, 0x7E, 8),          # printable ASCII
    (0x00, 0x1F, 1),          # C0 controls (incl. whitespace controls)
    (0x7F, 0x9F, 1),          # DEL and C1 controls
    (0x300, 0x36F, 2),        # combining diacritics
    (0xA0, 0x24F, 3),         # Latin-1 supplement and extended Latin
    (0x370, 0x52F, 2),        # Greek, Cyrillic
    (0x590, 0x6FF, 1),        # Hebrew, Arabic
    (0x900, 0x97F, 1),        # Devanagari
    (0x2000, 0x206F, 2),      # general punctuation, spaces, format characters
    (0x3000, 0x30FF, 2),      # CJK punctuation, kana
    (0x4E00, 0x9FFF, 2),      # CJK ideographs
    (0xAC00, 0xD7A3, 1),      # Hangul
    (0x0000, 0xD7FF, 3),      # anywhere in the BMP below the surrogates
    (0xD800, 0xDFFF, 1),      # lone surrogates (a str may hold them; UTF-8 input never does)
    (0xE000, 0xFFFF, 2),      # private use, compatibility, specials, noncharacters
    (0x10000, 0x10FFFF, 2),   # anywhere above the BMP (mostly unassigned)
    (0xF0000, 0x10FFFF, 1),   # supplementary private use planes
    (0x1F300, 0x1FAFF, 2),    # emoji
    (0x20000, 0x2FA1F, 2),    # CJK extensions
)
# Whitespace of every kind, zero-width space, NUL, U+FFFD, a combining accent.
_FUZZ_SPECIALS = " \t\n\r\u00a0\u3000\u2028\x0b\x1c\x85\u200b\x00\ufffd\u0301"


def _fuzz_strings(count=3000, seed=20240611):
    rng = random.Random(seed)
    weights = [pool[2] for pool in _FUZZ_POOLS]
    strings = []
    for _ in range(count):
        chars = []
        for _ in range(rng.randint(1, 30)):
            low, high, _ = rng.choices(_FUZZ_POOLS, weights)[0]
            chars.append(chr(rng.randint(low, high)))
            if rng.random() < 0.15:
                chars.append(rng.choice(_FUZZ_SPECIALS))
        strings.append("".join(chars))
    return strings


@pytest.fixture(name="fuzz", scope="module")
def fixture_fuzz():
    return _fuzz_strings()


def test_fuzz_draws_every_category(fuzz):
    """The fuzz reaches every general category, Cn, Co and Cs included, often."""
    categories = collections.Counter(unicodedata.category(char) for text in fuzz for char in text)
    every = {major + minor for major, minors in (
        ("L", "ultmo"), ("M", "nce"), ("N", "dlo"), ("P", "cdseifo"), ("S", "mcko"),
        ("Z", "slp"), ("C", "cfson")) for minor in minors}
    assert set(categories) == every
    for category in ("Cc", "Cf", "Cn", "Co", "Cs"):
        assert categories[category] >= 500, (category, categories[category])


@pytest.fixture(name="real_tokenizers", scope="module")
def fixture_real_tokenizers(real_vocab):
    return {
        lower: (
            tokenization.FullTokenizer(real_vocab, do_lower_case=lower),
            ReferenceFullTokenizer(real_vocab, do_lower_case=lower),
            make_hf_tokenizer(real_vocab, lower),
        )
        for lower in (True, False)
    }


@pytest.mark.parametrize("lower", [True, False])
def test_fuzz_fast_path_matches_direct_port(fuzz, real_tokenizers, lower):
    ours, port, _ = real_tokenizers[lower]
    basic = tokenization.BasicTokenizer(do_lower_case=lower)
    for text in fuzz:
        assert ours.tokenize(text) == port.tokenize(text), repr(text)
        assert basic.tokenize(text) == port.basic_tokenizer.tokenize(text), repr(text)
    # Long words made of vocabulary pieces, around the 200-character limit.
    for length in (199, 200, 201, 450):
        text = ("xyz" * 200)[:length] + " " + "ab" * length
        assert ours.tokenize(text) == port.tokenize(text)


def _expected_chars(text, lower):
    """Multiset of the characters the rules keep (before WordPiece)."""
    kept = collections.Counter()
    for char in text:
        if ord(char) in (0, 0xFFFD) or char.isspace() or unicodedata.category(char) == "Zs":
            continue
        # Only Cc and Cf are dropped (the original since March 2019); Cn, Co, Cs are kept.
        if unicodedata.category(char) in ("Cc", "Cf") and char not in "\t\n\r":
            continue
        pieces = unicodedata.normalize("NFD", char.lower()) if lower else char
        kept.update(c for c in pieces if not (lower and unicodedata.category(c) == "Mn"))
    return kept


def _lost_characters(text, lower, basic_tokenize, wordpiece_tokenize, unk="[UNK]"):
    """Describes a coverage failure of ``text``, or returns None if all is well.

    Every kept character must appear in exactly one basic token; every basic
    token must come back from WordPiece either as ``unk`` (the whole word is
    covered) or as pieces that spell it exactly.
    """
    tokens = basic_tokenize(text)
    # str.lower() picks 'ς' or 'σ' from context; per character it is always 'σ'.
    got = collections.Counter("".join(tokens).replace("ς", "σ"))
    want = _merge_sigma(_expected_chars(text, lower))
    if got != want:
        return "%r: lost %r, extra %r" % (text, dict(want - got), dict(got - want))
    for token in tokens:
        pieces = wordpiece_tokenize(token)
        spelled = "".join(p[2:] if i else p for i, p in enumerate(pieces))
        if pieces != [unk] and spelled != token:
            return "%r: word %r came back as %r" % (text, token, pieces)
    return None


def _merge_sigma(counter):
    merged = collections.Counter()
    for char, count in counter.items():
        merged["σ" if char == "ς" else char] += count
    return merged


@pytest.mark.parametrize("lower", [True, False])
def test_fuzz_no_lost_characters(fuzz, real_tokenizers, lower):
    ours = real_tokenizers[lower][0]
    for text in fuzz + MULTILINGUAL_SAMPLE:
        problem = _lost_characters(
            text, lower, ours.basic_tokenizer.tokenize, ours.wordpiece_tokenizer.tokenize
        )
        assert problem is None, problem


def test_lost_character_check_can_fail(real_tokenizers):
    ours = real_tokenizers[True][0]
    wordpiece = ours.wordpiece_tokenizer.tokenize
    drops_last = lambda text: ours.basic_tokenizer.tokenize(text)[:-1]  # noqa: E731
    assert _lost_characters("hello world", True, drops_last, wordpiece) is not None
    no_accent_strip = tokenization.BasicTokenizer(do_lower_case=False).tokenize
    assert _lost_characters("héllo", True, no_accent_strip, wordpiece) is not None
    bad_pieces = lambda word: ["he", "##llo", "##x"]  # noqa: E731
    assert _lost_characters("hello", True, ours.basic_tokenizer.tokenize, bad_pieces) is not None
    assert _lost_characters("hello", True, ours.basic_tokenizer.tokenize, wordpiece) is None


# Characters on which the HF oracle is known to disagree with the original's
# rules.  Where they disagree, the original's current rule is the contract
# (README, "Tokenizer notes"); these classes, and nothing else, are excused.
def _known_oracle_difference(char):
    """Why HF may tokenize ``char`` differently, or None."""
    category = unicodedata.category(char)
    if category == "Co":
        return ("private use: the original keeps it (it drops only Cc and Cf since March 2019), "
                "HF drops every category C*")
    if category == "Cn":
        return ("unassigned in Python's Unicode %s: an ordinary character for the original; HF "
                "lower-cases it with newer tables" % unicodedata.unidata_version)
    if 0x2B820 <= ord(char) <= 0x2B91F:
        return "CJK Extension E start: HF's CJK range begins at U+2B920"
    if char == "Σ":
        return "final sigma: str.lower() is context-sensitive, HF lower-cases per character"
    if unicodedata.ucd_3_2_0.category(char) != category:
        return "category changed or assigned after Unicode 3.2; HF's tables are older than Python's"
    return None


_PROBES = ("%s", "a%sb", "A%s", "%s%s", "x %s y")


def _differs_from_oracle(ours, hf, char):
    texts = [probe.replace("%s", char) for probe in _PROBES]
    return [ours.tokenize(text) for text in texts] != hf_tokens(hf, texts)


def _has_category(text, categories):
    return any(unicodedata.category(char) in categories for char in text)


@pytest.mark.parametrize("lower", [True, False])
def test_fuzz_oracle_disagreements_are_explained(fuzz, real_tokenizers, lower):
    """Every disagreement with HF must involve a character that (a) differs on
    its own in a small probe context and (b) is a known class of difference."""
    ours, _, hf = real_tokenizers[lower]
    # HF takes only valid Unicode (Rust strings), so strings holding a lone
    # surrogate cannot be passed to it; the tests against the port cover them.
    texts = [text for text in fuzz if not _has_category(text, ("Cs",))]
    # Strings without unassigned or private-use code points: HF must agree on
    # nearly all of them (the remaining known classes are rare).
    ordinary = sum(1 for text in texts if not _has_category(text, ("Cn", "Co")))
    probed = {}
    classes = collections.Counter()
    differing = differing_ordinary = 0
    for text, other in zip(texts, hf_tokens(hf, texts)):
        if ours.tokenize(text) == other:
            continue
        differing += 1
        differing_ordinary += not _has_category(text, ("Cn", "Co"))
        for char in text:
            if char not in probed:
                probed[char] = _differs_from_oracle(ours, hf, char)
        culprits = {char for char in text if probed[char]}
        assert culprits, "unexplained disagreement with HF on %r" % text
        for char in culprits:
            reason = _known_oracle_difference(char)
            assert reason is not None, "HF differs on U+%04X %s (%s) in %r" % (
                ord(char), unicodedata.name(char, "?"), unicodedata.category(char), text
            )
            classes[reason.split(":")[0]] += 1
    print("\nHF oracle disagreement (do_lower_case=%s): %.1f%% of %d fuzz strings, "
          "%.1f%% of the %d without unassigned or private-use code points; culprit characters "
          "by class: %s" % (lower, 100.0 * differing / len(texts), len(texts),
                            100.0 * differing_ordinary / ordinary, ordinary, dict(classes)))
    assert ordinary >= 400 and len(texts) >= 1500  # the fuzz still feeds this comparison
    assert differing_ordinary < 0.02 * ordinary


def test_private_use_and_unassigned_follow_the_original_not_hf(real_vocab):
    """The documented oracle differences, on single characters inside a word.

    Private use (Co): the original keeps it, so the word becomes [UNK]; HF
    drops it (the pre-2019 rule, any category C*).  Unassigned (Cn) in
    Python's Unicode tables: the original and HF both keep it, but HF
    lower-cases with newer tables: U+A7CB, assigned in Unicode 16, becomes
    U+0264 there.
    """
    ours = tokenization.FullTokenizer(real_vocab, do_lower_case=True)
    port = ReferenceFullTokenizer(real_vocab, do_lower_case=True)
    hf = make_hf_tokenizer(real_vocab, True)
    for char, hf_expected in (("\ue000", ["x", "##y"]), ("\U000f0000", ["x", "##y"]),
                              ("\u0378", ["[UNK]"]), ("\ua7cb", ["[UNK]"])):
        text = "x%sy" % char
        assert ours.tokenize(text) == port.tokenize(text) == ["[UNK]"], repr(text)
        assert hf_tokens(hf, [text])[0] == hf_expected, repr(text)
    assert unicodedata.category("\ua7cb") == "Cn"  # fails once Python knows Unicode 16
    assert ours.basic_tokenizer.tokenize("A\ua7cbB") == ["a\ua7cbb"]
    assert hf._tokenizer.normalizer.normalize_str("A\ua7cbB") == "a\u0264b"  # pylint: disable=protected-access


def test_encode_pair_single_and_pair(lower_tokenizer):
    single = tokenization.encode_pair(lower_tokenizer, "UNwant\u00E9d,running", None, 8)
    assert single.tokens == ["[CLS]", "un", "##want", "##ed", ",", "runn", "##ing", "[SEP]"]
    assert single.segment_ids == [0] * 8 and single.input_mask == [1] * 8
    assert not single.truncated
    assert single.input_ids == lower_tokenizer.convert_tokens_to_ids(single.tokens)

    short = tokenization.encode_pair(lower_tokenizer, "running", None, 6)
    assert short.tokens == ["[CLS]", "runn", "##ing", "[SEP]"]
    assert short.input_ids[4:] == [0, 0] and short.input_mask == [1, 1, 1, 1, 0, 0]

    cut = tokenization.encode_pair(lower_tokenizer, "UNwant\u00E9d,running", None, 5)
    assert cut.tokens == ["[CLS]", "un", "##want", "##ed", "[SEP]"] and cut.truncated

    pair = tokenization.encode_pair(lower_tokenizer, "unwanted running", "running", 9)
    assert pair.tokens == ["[CLS]", "un", "##want", "##ed", "runn", "[SEP]", "runn", "##ing",
                           "[SEP]"]
    assert pair.segment_ids == [0] * 6 + [1] * 3 and pair.truncated


def test_truncate_seq_pair_cuts_the_longer_from_its_end():
    a, b = list("abcdef"), list("xy")
    tokenization.truncate_seq_pair(a, b, 5)
    assert a == list("abc") and b == list("xy")
    a, b = list("abc"), list("wxyz")
    tokenization.truncate_seq_pair(a, b, 4)
    assert a == list("ab") and b == list("wx")
