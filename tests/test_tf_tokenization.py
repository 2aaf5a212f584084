"""tf_tokenization.py: the in-graph tokenizer gives tokenization.py's ids, token for token.

* the 1.4 MB real-text corpus (test_tokenization's), batched: ``Preprocessor.tokenize`` (flattened)
  equals ``FullTokenizer.tokenize_to_ids`` and ``Preprocessor.__call__`` equals
  ``tokenization.encode_pair``, with the real uncased vocabulary (cased and uncased) and a cased
  vocabulary;
* the multilingual sample and the random-Unicode fuzz of test_tokenization.py, every code point
  inside a word, and the two context-dependent steps (final sigma, canonical reordering): ids and
  the basic tokens, which show differences that [UNK] would hide;
* packing and truncation against ``encode_pair`` (``truncate_seq_pair``);
* vocabularies with odd entries, and bad input;
* the SavedModel, loaded in a fresh Python process that cannot import this project, and
  ``saved_model_cli``.
"""
import json
import os
import random
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (os.path.join(_ROOT, "benchmarks"), os.path.join(_ROOT, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import tf_tokenization  # noqa: E402
import tokenization  # noqa: E402
from errors import InputError  # noqa: E402
from real_model import real_vocab_file  # noqa: E402
from test_tokenization import (  # noqa: E402
    _ALL_CODE_POINTS, MULTILINGUAL_SAMPLE, _fuzz_strings, _walk_word)
from tokenization_speed import build_corpus  # noqa: E402

BATCH = 256


# ---------------------------------------------------------------------------
# Fixtures and helpers.
# ---------------------------------------------------------------------------


def _cased_vocab_entries(uncased_entries):
    """The uncased vocabulary plus capitalised and upper-case forms of its entries ("##"
    pieces too): a cased vocabulary, where capitals and accents make their own pieces."""
    entries = list(uncased_entries)
    seen = set(entries)
    for entry in uncased_entries:
        if entry.startswith("[") or not entry:
            continue
        prefix, body = ("##", entry[2:]) if entry.startswith("##") else ("", entry)
        for form in (body.capitalize(), body.upper()):
            if prefix + form not in seen:
                seen.add(prefix + form)
                entries.append(prefix + form)
    return entries


@pytest.fixture(name="vocab_files", scope="module")
def fixture_vocab_files(tmp_path_factory):
    uncased = real_vocab_file()
    cased = tmp_path_factory.mktemp("cased") / "vocab.txt"
    entries = _cased_vocab_entries(tokenization.load_vocab(uncased))
    cased.write_text("".join(entry + "\n" for entry in entries), encoding="utf-8")
    return {"uncased": uncased, "cased": str(cased)}


@pytest.fixture(name="tokenizers", scope="module")
def fixture_tokenizers(vocab_files):
    """(vocab name, do_lower_case) -> (Preprocessor, FullTokenizer), built once each."""
    built = {}

    def get(vocab, lower):
        if (vocab, lower) not in built:
            built[vocab, lower] = (
                tf_tokenization.Preprocessor(vocab_files[vocab], lower),
                tokenization.FullTokenizer(vocab_files[vocab], do_lower_case=lower))
        return built[vocab, lower]

    return get


@pytest.fixture(name="corpus", scope="module")
def fixture_corpus():
    return build_corpus()


def _utf8_only(text):
    """``text`` without lone surrogates, which UTF-8 (the graph's input) cannot carry."""
    return "".join(char for char in text if not 0xD800 <= ord(char) <= 0xDFFF)


def _batches(texts, size=BATCH):
    for start in range(0, len(texts), size):
        yield tf.constant([text.encode("utf-8") for text in texts[start:start + size]])


def _graph_ids(preprocessor, texts):
    """``preprocessor.tokenize`` of each text, flattened: a list of id lists."""
    values, lengths = [], []
    for batch in _batches(texts):
        pieces = preprocessor.tokenize(batch).merge_dims(1, 2)
        values.append(pieces.flat_values.numpy())
        lengths.append(pieces.row_lengths().numpy())
    ends = np.cumsum(np.concatenate(lengths))
    return [part.tolist() for part in np.split(np.concatenate(values), ends[:-1])]


def _graph_basic_tokens(preprocessor, texts):
    """``preprocessor.tokenize.basic_tokenize`` of each text: a list of str lists."""
    words = []
    for batch in _batches(texts):
        words.extend(preprocessor.tokenize.basic_tokenize(batch).to_list())
    return [[word.decode("utf-8") for word in row] for row in words]


def _first_mismatch(texts, ours, expected, full=None):
    """Describes the first text whose results differ (and how many do), or returns None."""
    assert len(texts) == len(ours) == len(expected)
    differing = [i for i, (a, b) in enumerate(zip(ours, expected)) if a != b]
    if not differing:
        return None
    i = differing[0]
    show = full.convert_ids_to_tokens if full is not None else (lambda tokens: tokens)
    return "%d of %d texts differ; first %r:\n  graph:    %r\n  expected: %r" % (
        len(differing), len(texts), texts[i], show(ours[i]), show(expected[i]))


def _check_ids(preprocessor, full, texts):
    expected = [full.tokenize_to_ids(text) for text in texts]
    mismatch = _first_mismatch(texts, _graph_ids(preprocessor, texts), expected, full)
    assert mismatch is None, mismatch


def _check_basic_tokens(preprocessor, full, texts):
    expected = [full.basic_tokenizer.tokenize(text) for text in texts]
    mismatch = _first_mismatch(texts, _graph_basic_tokens(preprocessor, texts), expected)
    assert mismatch is None, mismatch


# ---------------------------------------------------------------------------
# Real text, multilingual text, random Unicode.
# ---------------------------------------------------------------------------

CORPUS_CASES = [("uncased", True), ("uncased", False), ("cased", False)]


@pytest.mark.parametrize("vocab,lower", CORPUS_CASES)
def test_corpus_ids_and_encoder_inputs_equal_tokenization_py(tokenizers, corpus, vocab, lower):
    """Every line of the corpus: the word pieces, and the packed inputs at length 128."""
    preprocessor, full = tokenizers(vocab, lower)
    _check_ids(preprocessor, full, corpus)
    got = [preprocessor(batch) for batch in _batches(corpus)]
    _check_inputs({key: np.concatenate([out[key].numpy() for out in got]) for key in got[0]},
                  [tokenization.encode_pair(full, text, None, 128) for text in corpus], corpus)


def _check_inputs(got, expected, texts):
    """``got``: the packed inputs, int32 [N, L] each; ``expected``: N ``EncodedPair``s."""
    for key, field in (("input_word_ids", "input_ids"), ("input_mask", "input_mask"),
                       ("input_type_ids", "segment_ids")):
        want = np.array([getattr(pair, field) for pair in expected], np.int32)
        rows = np.flatnonzero(np.any(got[key] != want, axis=1)) if got[key].shape == \
            want.shape else [0]
        assert not len(rows), "%s differs on %d rows; first %r:\n  graph:    %r\n  expected: %r" % (
            key, len(rows), texts[rows[0]], got[key][rows[0]].tolist(), want[rows[0]].tolist())


def test_cased_vocabulary_is_cased(tokenizers):
    """The cased vocabulary makes capitals their own pieces (so the cased corpus run means
    something): "Hello" is one piece there, [UNK] with the uncased vocabulary."""
    for vocab, expected in (("cased", ["Hello"]), ("uncased", ["[UNK]"])):
        _, full = tokenizers(vocab, False)
        assert full.tokenize("Hello") == expected


@pytest.mark.parametrize("lower", [True, False])
def test_multilingual_sample(tokenizers, lower):
    preprocessor, full = tokenizers("uncased", lower)
    _check_ids(preprocessor, full, MULTILINGUAL_SAMPLE)
    _check_basic_tokens(preprocessor, full, MULTILINGUAL_SAMPLE)


@pytest.fixture(name="fuzz", scope="module")
def fixture_fuzz():
    """test_tokenization's random Unicode (every code point can be drawn), lone surrogates
    removed; long words around the 200-character limit."""
    texts = [_utf8_only(text) for text in _fuzz_strings()]
    return texts + [("xyz" * 200)[:n] + " " + "ab" * n for n in (199, 200, 201, 450)]


@pytest.mark.parametrize("lower", [True, False])
def test_fuzz(tokenizers, fuzz, lower):
    preprocessor, full = tokenizers("uncased", lower)
    _check_ids(preprocessor, full, fuzz)
    _check_basic_tokens(preprocessor, full, fuzz)


@pytest.mark.parametrize("lower", [True, False])
def test_every_code_point_in_a_word(tokenizers, lower):
    """U+0000..U+10FFFF but the surrogates (UTF-8 cannot carry them), each inside a word
    ("a%sb", as test_tokenization's walk), 4,096 words per text: basic tokens and ids.

    The expected ids are FullTokenizer's by its definition (each basic token's memoised
    WordPiece), computed from the basic tokens once; a text that differs is redone word by
    word to name the code points."""
    preprocessor, full = tokenizers("uncased", lower)
    chunks = [_ALL_CODE_POINTS[start:start + 4096]
              for start in range(0, len(_ALL_CODE_POINTS), 4096)]
    texts = [" ".join(_walk_word(cp) for cp in chunk) for chunk in chunks]
    basic = [full.basic_tokenizer.tokenize(text) for text in texts]
    pieces = full.wordpiece_tokenizer.tokenize_word
    expected = [full.convert_tokens_to_ids([p for t in tokens for p in pieces(t)])
                for tokens in basic]
    assert full.tokenize_to_ids(texts[7]) == expected[7]  # the definition, on one text
    graph_basic = _graph_basic_tokens_joined(preprocessor, texts)
    graph_ids = _graph_ids(preprocessor, texts)
    differing = [index for index, text in enumerate(texts)
                 if graph_basic[index] != " ".join(basic[index])
                 or graph_ids[index] != expected[index]]
    assert not differing, "%d of %d texts differ; first code points:\n%s" % (
        len(differing), len(texts), "\n".join(_differing_words(preprocessor, full, chunks[
            differing[0]])))


def _graph_basic_tokens_joined(preprocessor, texts):
    """The basic tokens of each text joined by spaces (cheap to compare): a list of str."""
    joined = []
    for batch in _batches(texts, size=16):
        words = preprocessor.tokenize.basic_tokenize(batch)
        joined.extend(tf.strings.reduce_join(words, axis=-1, separator=" ").numpy().tolist())
    return [text.decode("utf-8") for text in joined]


def _differing_words(preprocessor, full, code_points, limit=20):
    """The first code points whose word the graph tokenizes unlike tokenization.py."""
    words = [_walk_word(cp) for cp in code_points]
    graph = zip(_graph_basic_tokens(preprocessor, words), _graph_ids(preprocessor, words))
    found = []
    for cp, word, (tokens, ids) in zip(code_points, words, graph):
        want = (full.basic_tokenizer.tokenize(word), full.tokenize_to_ids(word))
        if (tokens, ids) != want and len(found) < limit:
            found.append("U+%04X (%s): graph %r, expected %r" % (
                cp, unicodedata.category(chr(cp)), (tokens, ids), want))
    return found


# ---------------------------------------------------------------------------
# The context-dependent steps of lower-casing.
# ---------------------------------------------------------------------------


def _random_texts(alphabet, count, seed, length=(1, 10)):
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(*length)))
            for _ in range(count)]


# Capital sigma among characters of each class for CPython's Final_Sigma test: cased letters
# (A, Greek, Latin with accent), case-ignorable ones (apostrophe, period: also punctuation;
# U+0301 and U+0345: marks; U+02B0: a modifier letter, cased and ignorable; U+00AD and U+200D:
# format characters the cleaner drops first), uncased ones (digit, CJK, hyphen), a space.
SIGMA_ALPHABET = ["\u03a3", "\u03a3", "A", "\u0391", "\u00c9", "a", "'", ".", "\u0301", "\u0345",
                  "\u02b0", "\u00ad", "\u200d", "1", "\u4e2d", "-", " ", "\u03c3", "\u0130"]


def test_final_sigma_follows_str_lower(tokenizers):
    preprocessor, full = tokenizers("uncased", True)
    assert _graph_basic_tokens(preprocessor, ["\u039f\u0394\u039f\u03a3 \u03a3\u0391 A'\u03a3'"]) \
        == [["\u03bf\u03b4\u03bf\u03c2", "\u03c3\u03b1", "a", "'", "\u03c2", "'"]]
    texts = _random_texts(SIGMA_ALPHABET, 3000, seed=7)
    _check_basic_tokens(preprocessor, full, texts)
    _check_ids(preprocessor, full, texts)
    finals = sum("\u03c2" in "".join(full.basic_tokenizer.tokenize(t)) for t in texts)
    assert 300 < finals < 2700  # both outcomes are frequent


# Combining characters that are not Mn (so NFD's reordering shows after the marks go: U+1D165,
# U+1D16D, U+302E; classes 216, 226, 224) among Mn marks of other classes (U+0301: 230,
# U+0316: 220, U+0334: 1, U+093C: 7; U+034F: 0, which ends a run), letters, precomposed
# letters and a Hangul syllable.
REORDER_ALPHABET = ["\U0001d165", "\U0001d16d", "\u302e", "\U0001d16e", "\u0301", "\u0316",
                    "\u0334", "\u093c", "\u034f", "a", "\u00e9", "\u1e69", "\uac00", " ", "."]


def test_canonical_reordering_follows_nfd(tokenizers):
    preprocessor, full = tokenizers("uncased", True)
    text = "a\U0001d16d\u0301\U0001d165"  # classes 226, 230, 216: NFD puts U+1D165 first
    assert _graph_basic_tokens(preprocessor, [text]) == [["a\U0001d165\U0001d16d"]]
    text = "a\U0001d16d\u034f\U0001d165"  # U+034F (Mn, class 0) keeps them apart
    assert _graph_basic_tokens(preprocessor, [text]) == [["a\U0001d16d\U0001d165"]]
    texts = _random_texts(REORDER_ALPHABET, 3000, seed=11)
    _check_basic_tokens(preprocessor, full, texts)
    _check_ids(preprocessor, full, texts)


# ---------------------------------------------------------------------------
# Packing.
# ---------------------------------------------------------------------------


class _ListTokenizer:
    """What ``tokenization.encode_pair`` needs of a tokenizer, for texts that are token lists."""

    def __init__(self, vocab):
        self.vocab = vocab

    def tokenize(self, tokens):
        return list(tokens)


def test_packing_and_truncation_equal_encode_pair():
    """Every pair of lengths 0..12 and every single length 0..14, at lengths 2 (singles) or 3
    to 17 and 128: ``truncate_seq_pair`` (the longer segment loses its last token, the second
    on a tie) and the first ``seq_length - 2`` tokens of a single segment."""
    vocab = {"[CLS]": 1, "[SEP]": 2, **{"a%d" % i: 100 + i for i in range(20)},
             **{"b%d" % i: 200 + i for i in range(20)}}
    tokenizer = _ListTokenizer(vocab)
    packer = tf_tokenization.BertPackInputs(1, 2, seq_length=128)
    pairs = [(i, j) for i in range(13) for j in range(13)]
    for seq_length in list(range(2, 18)) + [128]:
        for cases, two in ((pairs, True), ([(n, 0) for n in range(15)], False)):
            if two and seq_length < 3:
                continue
            a = [["a%d" % k for k in range(n)] for n, _ in cases]
            b = [["b%d" % k for k in range(m)] for _, m in cases] if two else [None] * len(a)
            segments = [tf.ragged.constant([[vocab[t] for t in tokens] for tokens in segment],
                                           tf.int32, row_splits_dtype=tf.int64)
                        for segment in ([a, b] if two else [a])]
            got = {k: v.numpy() for k, v in packer(segments, tf.constant(seq_length)).items()}
            _check_inputs(got, [tokenization.encode_pair(tokenizer, x, y, seq_length)
                                for x, y in zip(a, b)], list(zip(a, b)))


@pytest.mark.parametrize("seq_length", [8, 32, 128])
def test_real_text_pairs_equal_encode_pair(tokenizers, corpus, seq_length):
    """Consecutive corpus lines as pairs, words-pieces (ragged rank 2) or flat pieces."""
    preprocessor, full = tokenizers("uncased", True)
    firsts, seconds = corpus[0:2000:2], corpus[1:2000:2]
    a = preprocessor.tokenize(tf.constant(firsts))
    b = preprocessor.tokenize(tf.constant(seconds))
    got = preprocessor.bert_pack_inputs([a, b.merge_dims(1, 2)], seq_length=seq_length)
    _check_inputs({k: v.numpy() for k, v in got.items()},
                  [tokenization.encode_pair(full, x, y, seq_length)
                   for x, y in zip(firsts, seconds)], firsts)
    single = preprocessor.bert_pack_inputs([a], seq_length=seq_length)
    _check_inputs({k: v.numpy() for k, v in single.items()},
                  [tokenization.encode_pair(full, x, None, seq_length) for x in firsts], firsts)


def test_packing_arguments_defaults_and_bad_ones(tokenizers):
    preprocessor, _ = tokenizers("uncased", True)
    tokens = preprocessor.tokenize(tf.constant(["a b c"]))
    with pytest.raises(ValueError, match="1 or 2 segments, not 3"):
        preprocessor.bert_pack_inputs([tokens] * 3)
    with pytest.raises(ValueError, match="seq_length 2 is below 3"):
        preprocessor.bert_pack_inputs([tokens, tokens], seq_length=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="seq_length is below"):
        preprocessor.bert_pack_inputs([tokens, tokens], seq_length=tf.constant(2))
    assert preprocessor.bert_pack_inputs([tokens], seq_length=2)["input_word_ids"].numpy() \
        .tolist() == [[101, 102]]
    for default in (preprocessor.bert_pack_inputs([tokens]),
                    preprocessor.bert_pack_inputs([tokens], seq_length=None)):
        assert default["input_word_ids"].shape == (1, 128)


# ---------------------------------------------------------------------------
# Vocabularies, edge cases, bad input.
# ---------------------------------------------------------------------------

ODD_VOCAB = ["[PAD]", "  [UNK] ", "[CLS]", "[SEP]", "", "##", "the", "a b", "x\x00y", "quick",
             "the", "##s", "brown", "fox", "\u00e9t\u00e9", "##\u00e9", "x", "##y", "\u200d",
             "\u4e2d", "##\u4e2d", "!"]


def test_odd_vocabulary_entries(tmp_path):
    """A repeated entry takes its last line's id, entries are stripped, entries no word can
    match (empty, "##", holding a space or NUL) are harmless; no [MASK]: no mask_id."""
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(ODD_VOCAB) + "\n", encoding="utf-8")
    texts = ["the quick browns fox!", "a b", "x\x00y xy", "\u00e9t\u00e9\u00e9 \u4e2d\u4e2d",
             "THE Quick", "\u200d", "##", "the" * 70, "x" + "y" * 199, "x" + "y" * 200]
    for lower in (True, False):
        preprocessor = tf_tokenization.Preprocessor(str(path), lower, seq_length=8)
        full = tokenization.FullTokenizer(str(path), do_lower_case=lower)
        _check_ids(preprocessor, full, texts)
    assert full.tokenize_to_ids("the") == [10]
    special = {k: v.numpy() for k, v in preprocessor.tokenize.get_special_tokens_dict().items()}
    assert special == {"vocab_size": 22, "start_of_sequence_id": 2, "end_of_segment_id": 3,
                       "padding_id": 0}


def test_vocabulary_without_special_tokens_is_an_input_error(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\nthe\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"vocab\.txt has no \[SEP\] token"):
        tf_tokenization.Preprocessor(str(path), True)


def test_empty_batch_and_empty_strings(tokenizers):
    preprocessor, _ = tokenizers("uncased", True)
    assert preprocessor.tokenize(tf.constant([], tf.string)).nrows().numpy() == 0
    assert preprocessor(tf.constant([], tf.string))["input_word_ids"].shape == (0, 128)
    out = preprocessor(tf.constant(["", " \x00\u200b ", "\u0301"]))
    assert out["input_word_ids"][:, :3].numpy().tolist() == [[101, 102, 0]] * 3
    assert preprocessor.tokenize(tf.constant(["", "\u0301"])).to_list() == [[], []]


def test_invalid_utf8_is_an_error(tokenizers):
    """As tokenization.convert_to_unicode, which raises an InputError."""
    preprocessor, _ = tokenizers("uncased", True)
    with pytest.raises(tf.errors.InvalidArgumentError):
        preprocessor.tokenize(tf.constant([b"ab\xffcd"]))
    with pytest.raises(tf.errors.InvalidArgumentError):  # an encoded surrogate is not UTF-8
        preprocessor.tokenize(tf.constant([b"a\xed\xa0\x80b"]))


def test_tables_follow_the_rules():
    """A few entries of the baked tables, read back: what the graph is built from."""
    props, values, splits = tf_tokenization._char_properties()  # pylint: disable=protected-access
    map_shift = tf_tokenization._MAP_SHIFT  # pylint: disable=protected-access

    def replacement(char):
        row = int(props[ord(char)]) >> map_shift
        return "".join(map(chr, values[splits[row]:splits[row + 1]])) if row else char

    assert replacement("\u0130") == "i\u0307"  # str.lower() lengthens it
    assert replacement("\u00c9") == "e\u0301" and replacement("A") == "a"
    assert replacement("\uac01") == unicodedata.normalize("NFD", "\uac01")  # Hangul: L V T
    assert replacement("\uf900") == "\u8c48"  # a CJK compatibility ideograph
    flags = lambda char: int(props[ord(char)]) & 31  # noqa: E731
    assert flags("\x0b") == flags("\u200b") == flags("\x00") == flags("\ufffd") == 1  # dropped
    assert flags("\u2028") == flags("\u3000") == flags("\t") == 2  # split
    assert flags("\u4e2d") == 4 and flags("!") == flags("\u00bf") == 8
    assert flags("\U000e0100") & 16 and flags("\ue000") == 0  # Mn; private use is ordinary


# ---------------------------------------------------------------------------
# The SavedModel.
# ---------------------------------------------------------------------------

_LOAD_AND_RUN = r"""
import importlib.util, json, sys
for name in ("tokenization", "tf_tokenization"):
    assert importlib.util.find_spec(name) is None, "the project is importable"
import tensorflow as tf
import tensorflow_text  # registers the WordPiece op
export_dir, texts_file, out_file = sys.argv[1:]
with open(texts_file, encoding="utf-8") as f:
    texts, firsts, seconds = json.load(f)
model = tf.saved_model.load(export_dir)
out = {}
out["call"] = {k: v.numpy().tolist() for k, v in model(tf.constant(texts)).items()}
serve = model.signatures["serving_default"](sentences=tf.constant(texts))
out["serve"] = {k: v.numpy().tolist() for k, v in serve.items()}
out["tokenize"] = model.tokenize(tf.constant(texts)).to_list()
a, b = model.tokenize(tf.constant(firsts)), model.tokenize(tf.constant(seconds))
pair = model.bert_pack_inputs([a, b], seq_length=24)
out["pair"] = {k: v.numpy().tolist() for k, v in pair.items()}
out["single_default"] = model.bert_pack_inputs([a])["input_word_ids"].numpy().tolist()
out["special"] = {k: int(v) for k, v in model.tokenize.get_special_tokens_dict().items()}
with open(model.vocab_file.asset_path.numpy().decode(), encoding="utf-8") as f:
    out["vocab"] = f.read()
out["do_lower_case"] = bool(model.do_lower_case.numpy())
with open(out_file, "w", encoding="utf-8") as f:
    json.dump(out, f)
"""


@pytest.fixture(name="exported", scope="module")
def fixture_exported(tmp_path_factory, vocab_files):
    export_dir = str(tmp_path_factory.mktemp("preprocessor") / "export")
    tf_tokenization.save_preprocessor(vocab_files["uncased"], True, export_dir)
    return export_dir


@pytest.fixture(name="saved_model_cli", scope="module")
def fixture_saved_model_cli(exported):
    """``saved_model_cli show --all`` on the export, started at once: it runs while the
    fresh-process test does (both spend most of their time importing TensorFlow)."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    process = subprocess.Popen([cli, "show", "--dir", exported, "--all"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    yield process
    process.kill()
    process.communicate()


def test_saved_model_in_a_fresh_process(exported, saved_model_cli, tokenizers, corpus, fuzz,
                                        tmp_path):  # pylint: disable=unused-argument
    """A process that does not import this project (cwd elsewhere, the project not on the path)
    loads the SavedModel and gets tokenization.py's ids and the original packing."""
    preprocessor, full = tokenizers("uncased", True)
    texts = corpus[::97] + MULTILINGUAL_SAMPLE + fuzz[::20]
    firsts, seconds = corpus[:200:2], corpus[1:200:2]
    (tmp_path / "texts.json").write_text(json.dumps([texts, firsts, seconds]), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-I", "-c", _LOAD_AND_RUN, exported,
                    str(tmp_path / "texts.json"), str(tmp_path / "out.json")],
                   cwd=str(tmp_path), env=env, check=True, timeout=600)
    out = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert [sum(words, []) for words in out["tokenize"]] == [full.tokenize_to_ids(t)
                                                            for t in texts]
    for key, value in preprocessor(tf.constant(texts)).items():
        assert out["call"][key] == out["serve"][key] == value.numpy().tolist(), key
    for row, (first, second) in enumerate(zip(firsts, seconds)):
        expected = tokenization.encode_pair(full, first, second, 24)
        assert out["pair"]["input_word_ids"][row] == expected.input_ids
        assert out["pair"]["input_type_ids"][row] == expected.segment_ids
        assert out["single_default"][row] == tokenization.encode_pair(full, first).input_ids
    assert out["special"] == {"vocab_size": 30522, "start_of_sequence_id": 101,
                              "end_of_segment_id": 102, "padding_id": 0, "mask_id": 103}
    with open(real_vocab_file(), encoding="utf-8") as f:
        assert out["vocab"] == f.read()
    assert out["do_lower_case"] is True


def test_saved_model_cli_lists_the_signature(saved_model_cli):
    stdout, stderr = saved_model_cli.communicate(timeout=600)
    assert saved_model_cli.returncode == 0, stderr
    assert "signature_def['serving_default']" in stdout
    for name in ("inputs['sentences']", "outputs['input_word_ids']", "outputs['input_mask']",
                 "outputs['input_type_ids']"):
        assert name in stdout, stdout


def test_save_refuses_an_existing_directory_and_leaves_nothing_half_written(vocab_files, tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="existing already exists"):
        tf_tokenization.save_preprocessor(vocab_files["uncased"], True, str(existing))
    assert os.listdir(existing) == ["keep.txt"]
    bad_vocab = tmp_path / "vocab.txt"
    bad_vocab.write_text("[UNK]\n[CLS]\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"no \[SEP\]"):
        tf_tokenization.save_preprocessor(str(bad_vocab), True, str(tmp_path / "new"))
    assert sorted(os.listdir(tmp_path)) == ["existing", "vocab.txt"]
