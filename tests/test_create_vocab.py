"""Tests for create_vocab.py: layout, coverage, quality on the demo corpus, casing, determinism,
errors, the atomic write, and the incremental learner against a brute-force one."""
import collections
import os
import random
import subprocess
import sys

import pytest

import create_vocab
import file_io
import tokenization
from script_main import error_line

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_CORPUS = os.path.join(_ROOT, "data", "demo_corpus.txt")
RESERVED = 104  # [PAD] + 99 [unused] + [UNK] [CLS] [SEP] [MASK]


@pytest.fixture(name="demo_counts", scope="module")
def fixture_demo_counts():
    return create_vocab.count_words_in_files([DEMO_CORPUS], do_lower_case=True)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def _read_vocab(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n") and b"\r" not in data
    return data.decode("utf-8").split("\n")[:-1]


def _full_tokenize(vocab_file, lines, do_lower_case=True):
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
    return [piece for line in lines for piece in tokenizer.tokenize(line)]


def _demo_lines():
    with open(DEMO_CORPUS, encoding="utf-8") as f:
        return f.read().splitlines()


# ---------------------------------------------------------------------------
# Layout.
# ---------------------------------------------------------------------------


def test_layout_of_written_vocab(tmp_path, demo_counts):
    vocab = create_vocab.build_vocab(demo_counts, vocab_size=500)
    path = str(tmp_path / "vocab.txt")
    create_vocab.write_vocab(vocab, path)
    entries = _read_vocab(path)
    assert entries == vocab
    assert len(entries) == 500
    assert len(set(entries)) == 500
    assert all(entry and not any(c.isspace() for c in entry) for entry in entries)
    assert entries[0] == "[PAD]"
    assert entries[1:100] == ["[unused%d]" % i for i in range(99)]
    assert entries[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # Learned part: characters (c, then ##c), then merged pieces; no special-looking entries.
    learned = entries[RESERVED:]
    chars = create_vocab.select_characters(demo_counts)
    assert learned[:2 * len(chars)] == chars + ["##" + c for c in chars]
    assert not any(entry.startswith("[") and len(entry) > 1 for entry in learned)
    # The ids as the library reads them.
    loaded = tokenization.load_vocab(path)
    assert (loaded["[PAD]"], loaded["[unused0]"], loaded["[unused98]"]) == (0, 1, 99)
    assert (loaded["[UNK]"], loaded["[CLS]"], loaded["[SEP]"], loaded["[MASK]"]) == (
        100, 101, 102, 103)
    assert len(loaded) == 500


@pytest.mark.parametrize("num_unused", [0, 5])
def test_num_unused(demo_counts, num_unused):
    vocab = create_vocab.build_vocab(demo_counts, vocab_size=300, num_unused=num_unused)
    assert len(vocab) == 300 and len(set(vocab)) == 300
    assert vocab[:num_unused + 5] == (["[PAD]"] + ["[unused%d]" % i for i in range(num_unused)]
                                      + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    assert sum(entry.startswith("[unused") for entry in vocab) == num_unused


def test_small_corpus_is_padded_to_vocab_size(demo_counts):
    # The demo corpus has 291 distinct words: learning stops once each is a single entry.
    vocab = create_vocab.build_vocab(demo_counts, vocab_size=8000)
    assert len(vocab) == 8000 and len(set(vocab)) == 8000
    learned = [entry for entry in vocab[RESERVED:] if not entry.startswith("[unused")]
    assert vocab[RESERVED + len(learned):] == ["[unused%d]" % i for i in range(
        99, 99 + 8000 - RESERVED - len(learned))]
    assert set(demo_counts) <= set(learned)  # every word is an entry
    short = create_vocab.build_vocab(demo_counts, vocab_size=8000, pad_to_vocab_size=False)
    assert short == vocab[:RESERVED + len(learned)]


# ---------------------------------------------------------------------------
# Pre-tokenization and coverage.
# ---------------------------------------------------------------------------

TRICKY_TEXT = [
    "Héllo, WORLD! naïve café -- it's 3.14 o'clock...",
    "中文字 and 日本語 mixed\twith\u00a0spaces\u2003here",
    "glued\x0bby\x0cvertical\x1ctab\x85and\u2028line separator",
    "control\x00chars\x07and\ufffdreplacement \u200bzero-width",
    "Ünïcödé ÀÉÎÕÜ ß Ωμέγα «quotes» „more“ ¿qué? ¡sí!",
    "",
    "   ",
    "tab\tended\t",
]


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_count_words_is_basic_tokenizer(do_lower_case):
    basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    expected = collections.Counter()
    for line in TRICKY_TEXT * 3:
        expected.update(basic.tokenize(line))
    assert create_vocab.count_words(TRICKY_TEXT * 3, do_lower_case) == expected
    # A tiny chunk cache (flushed every few chunks) gives the same counts.
    assert create_vocab.count_words(TRICKY_TEXT * 3, do_lower_case, max_chunks=2) == expected


def test_every_character_in_both_forms(tmp_path):
    counts = create_vocab.count_words(TRICKY_TEXT, do_lower_case=True)
    chars = {c for word in counts for c in word}
    # Smallest possible vocabulary: reserved + both forms of every character, nothing learned.
    vocab = create_vocab.build_vocab(counts, vocab_size=RESERVED + 2 * len(chars))
    assert {c for c in chars} | {"##" + c for c in chars} == set(vocab[RESERVED:])
    # So every word of the corpus tokenizes without [UNK], here and with a learned vocabulary.
    for size in (len(vocab), len(vocab) + 30):
        path = str(tmp_path / ("vocab%d.txt" % size))
        create_vocab.write_vocab(create_vocab.build_vocab(counts, vocab_size=size), path)
        pieces = _full_tokenize(path, TRICKY_TEXT)
        assert pieces and "[UNK]" not in pieces


def test_min_frequencies():
    counts = collections.Counter({"aaab": 5, "ab": 3, "abq": 1, "zz": 1})
    vocab = create_vocab.learn_wordpiece(counts, 100, min_char_frequency=2)
    assert "q" not in vocab and "##q" not in vocab and "##z" in vocab  # z is seen twice
    wordpiece = tokenization.WordpieceTokenizer({e: i for i, e in enumerate(vocab)})
    assert wordpiece.tokenize_word("abq") == ("[UNK]",)
    # Words below --min_word_frequency are not learned whole, but still tokenize.
    vocab = create_vocab.learn_wordpiece(counts, 100, min_word_frequency=2)
    assert "aaab" in vocab and "zz" not in vocab and "##z" in vocab


def test_cased_and_uncased(tmp_path):
    lines = ["Héllo WORLD, Héllo World.", "HELLO again; ÉCOLE école"]
    uncased = create_vocab.count_words(lines, do_lower_case=True)
    cased = create_vocab.count_words(lines, do_lower_case=False)
    assert set(uncased) == {"hello", "world", ",", ".", "again", ";", "ecole"}
    assert {"Héllo", "WORLD", "World", "HELLO", "ÉCOLE", "école"} <= set(cased)
    vocab_uncased = create_vocab.build_vocab(uncased, vocab_size=200)
    vocab_cased = create_vocab.build_vocab(cased, vocab_size=200)
    learned = "".join(vocab_uncased[RESERVED:])
    assert learned == learned.lower() and "é" not in learned
    assert {"H", "##O", "é", "##é", "É", "Héllo", "WORLD"} <= set(vocab_cased)
    for name, vocab, lower in (("u", vocab_uncased, True), ("c", vocab_cased, False)):
        path = str(tmp_path / (name + ".txt"))
        create_vocab.write_vocab(vocab, path)
        pieces = _full_tokenize(path, lines, do_lower_case=lower)
        assert "[UNK]" not in pieces
        assert len(pieces) == sum((uncased if lower else cased).values())  # all words whole


# ---------------------------------------------------------------------------
# Quality on the demo corpus.
# ---------------------------------------------------------------------------


def test_demo_corpus_tokenizes_well(tmp_path, demo_counts):
    lines = _demo_lines()
    words = sum(demo_counts.values())
    chars_only = create_vocab.build_vocab(
        demo_counts, vocab_size=RESERVED + 2 * len(create_vocab.select_characters(demo_counts)))
    results = {}
    for size in (len(chars_only), 300, 500, 8000):
        path = str(tmp_path / ("vocab%d.txt" % size))
        vocab = create_vocab.build_vocab(demo_counts, vocab_size=size)
        create_vocab.write_vocab(vocab, path)
        pieces = _full_tokenize(path, lines)
        # evaluate_vocab (the script's summary) is exactly what FullTokenizer does.
        stats = create_vocab.evaluate_vocab(vocab, demo_counts)
        assert stats["tokens"] == len(pieces) and stats["words"] == words
        assert stats["unk_tokens"] == pieces.count("[UNK]") == 0
        results[size] = len(pieces) / words
    # Measured: 3.85 (characters only), 2.15, 1.48, 1.00 pieces per word.
    assert results[len(chars_only)] > 3.8
    assert results[300] < 2.2
    assert results[500] < 1.5
    assert results[8000] == 1.0  # every one of the 291 words is an entry


def test_demo_corpus_held_out_unk_share(tmp_path):
    # Learn from the first 90% of the documents, tokenize the rest.
    documents = open(DEMO_CORPUS, encoding="utf-8").read().split("\n\n")
    cut = len(documents) * 9 // 10
    train, held_out = documents[:cut], "\n\n".join(documents[cut:]).splitlines()
    counts = create_vocab.count_words(train)
    path = str(tmp_path / "vocab.txt")
    create_vocab.write_vocab(create_vocab.build_vocab(counts, vocab_size=500), path)
    pieces = _full_tokenize(path, held_out)
    words = sum(create_vocab.count_words(held_out).values())
    assert len(pieces) > 5000
    assert pieces.count("[UNK]") / len(pieces) < 0.001  # measured: 0
    assert len(pieces) / words < 1.6  # measured: 1.48


# ---------------------------------------------------------------------------
# The learner.
# ---------------------------------------------------------------------------


def _brute_force_learn(word_counts, max_pieces, scoring="frequency", min_word_frequency=1):
    """Recounts every pair after every merge; ties as documented (count, then earlier pieces)."""
    alphabet = sorted({c for word in word_counts for c in word})
    order = {piece: i for i, piece in enumerate(alphabet + ["##" + c for c in alphabet])}
    pieces = list(order)
    corpus = [[[w[0]] + ["##" + c for c in w[1:]], n]
              for w, n in word_counts.items() if n >= min_word_frequency]
    while len(pieces) < max_pieces:
        unigrams, pairs = collections.Counter(), collections.Counter()
        for symbols, n in corpus:
            for s in symbols:
                unigrams[s] += n
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += n
        if not pairs:
            break

        def rank(pair):
            n = pairs[pair]
            score = n / (unigrams[pair[0]] * unigrams[pair[1]]) if scoring == "likelihood" else n
            return (-score, -n, order[pair[0]], order[pair[1]])

        a, b = min(pairs, key=rank)
        merged = a + b[2:]
        if merged not in order:
            order[merged] = len(order)
            pieces.append(merged)
        for item in corpus:
            symbols, out, i = item[0], [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == (a, b):
                    out.append(merged)
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            item[0] = out
    return pieces


@pytest.mark.parametrize("scoring", ["frequency", "likelihood"])
def test_incremental_learner_matches_brute_force(scoring, demo_counts):
    for size in (120, 400):
        assert (create_vocab.learn_wordpiece(demo_counts, size, scoring=scoring)
                == _brute_force_learn(demo_counts, size, scoring))
    rng = random.Random(1234)
    for _ in range(150):  # tiny alphabets: many repeats, overlaps (aaa), ties, duplicate pieces
        counts = collections.Counter()
        for _ in range(rng.randrange(1, 25)):
            word = "".join(rng.choice("aabc") for _ in range(rng.randrange(1, 10)))
            counts[word] += rng.randrange(1, 5)
        size = rng.randrange(8, 50)
        min_word_frequency = rng.choice([1, 2])
        assert (create_vocab.learn_wordpiece(counts, size, scoring=scoring,
                                             min_word_frequency=min_word_frequency)
                == _brute_force_learn(counts, size, scoring, min_word_frequency)), dict(counts)


def test_frequency_scoring_needs_fewer_pieces(demo_counts):
    stats = {}
    for scoring in ("frequency", "likelihood"):
        vocab = create_vocab.build_vocab(demo_counts, vocab_size=400, scoring=scoring)
        stats[scoring] = create_vocab.evaluate_vocab(vocab, demo_counts)["pieces_per_word"]
    assert stats["frequency"] < stats["likelihood"]


def test_deterministic(tmp_path, demo_counts):
    items = list(demo_counts.items())
    random.Random(0).shuffle(items)
    shuffled = collections.Counter(dict(items))
    paths = []
    for i, counts in enumerate((demo_counts, shuffled, demo_counts)):
        paths.append(str(tmp_path / ("vocab%d.txt" % i)))
        create_vocab.write_vocab(create_vocab.build_vocab(counts, vocab_size=600), paths[-1])
    data = [open(path, "rb").read() for path in paths]
    assert data[0] == data[1] == data[2]


# ---------------------------------------------------------------------------
# Input files and errors.
# ---------------------------------------------------------------------------


def test_input_files_and_globs(tmp_path):
    # The patterns themselves: tests/test_file_io.py (file_io.expand_patterns).
    a = _write(tmp_path / "a.txt", "alpha beta\n\ngamma\n")
    _write(tmp_path / "b.txt", "beta delta\n")
    _write(tmp_path / "c.md", "ignored\n")
    pattern = str(tmp_path / "*.txt")
    counts = create_vocab.count_words_in_files(
        file_io.expand_patterns(pattern, flag="--input_file"))
    assert counts == {"alpha": 1, "beta": 2, "gamma": 1, "delta": 1}
    # run() reads a file named twice once.
    stats = create_vocab.run("%s,%s" % (pattern, a), str(tmp_path / "vocab.txt"), vocab_size=200)
    assert stats["words"] == 5
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="does not exist") as err:
        create_vocab.run("%s,%s" % (a, missing), str(tmp_path / "vocab.txt"))
    assert "--input_file: %r" % missing in str(err.value)


def test_text_blocks_are_whole_lines(tmp_path):
    text = "".join("line %d%s\n" % (i, "x" * (i % 50)) for i in range(500)) + "no newline"
    path = _write(tmp_path / "text.txt", text)
    blocks = list(create_vocab.read_text_blocks(path, block_bytes=1000))
    assert len(blocks) > 10 and "".join(blocks) == text
    assert all(block.endswith("\n") for block in blocks[:-1])
    long_line = _write(tmp_path / "long.txt", "a" * 5000 + "\nb\n")
    # A line longer than a block is not cut.
    assert list(create_vocab.read_text_blocks(long_line, block_bytes=1000)) == [
        "a" * 5000 + "\nb\n"]


def test_empty_corpus_names_the_file(tmp_path):
    for name, text in (("empty.txt", ""), ("blank.txt", "\n\n  \n\t\n")):
        path = _write(tmp_path / name, text)
        with pytest.raises(ValueError, match="no words") as err:
            create_vocab.run(path, str(tmp_path / "vocab.txt"))
        assert path in str(err.value)
    assert not os.path.exists(tmp_path / "vocab.txt")


def test_non_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    lines = [("line %d is fine\n" % i).encode() for i in range(1, 2000)]
    lines[1500] = b"caf\xe9 au lait\n"  # Latin-1, not UTF-8
    path.write_bytes(b"".join(lines))
    with pytest.raises(ValueError) as err:
        # Small blocks, so the bad line is not in the first one.
        list(create_vocab.read_text_blocks(str(path), block_bytes=1000))
    message = str(err.value)
    assert str(path) in message and "line 1501" in message and "0xe9" in message
    with pytest.raises(ValueError, match="line 1501"):
        create_vocab.run(str(path), str(tmp_path / "vocab.txt"))
    assert os.listdir(tmp_path) == ["bad.txt"]


def test_vocab_size_too_small_says_the_minimum(tmp_path):
    path = _write(tmp_path / "corpus.txt", "abc cab\nbca!\n")  # a b c ! -> 8 character entries
    with pytest.raises(create_vocab.VocabSizeError, match=r"at least --vocab_size=112\b"):
        create_vocab.run(path, str(tmp_path / "vocab.txt"), vocab_size=111)
    with pytest.raises(create_vocab.VocabSizeError, match=r"at least --vocab_size=13\b"):
        create_vocab.run(path, str(tmp_path / "vocab.txt"), vocab_size=12, num_unused=0)
    create_vocab.run(path, str(tmp_path / "vocab.txt"), vocab_size=112)
    assert len(_read_vocab(str(tmp_path / "vocab.txt"))) == 112


# ---------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------


def test_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "out" / "vocab.txt")  # the directory is created
    create_vocab.write_vocab(["[PAD]", "a", "##a"], path)
    create_vocab.write_vocab(["[PAD]", "b", "##b"], path)  # replaces
    assert _read_vocab(path) == ["[PAD]", "b", "##b"]
    assert os.listdir(tmp_path / "out") == ["vocab.txt"]

    def failing_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(create_vocab.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        create_vocab.write_vocab(["[PAD]", "c"], path)
    monkeypatch.undo()
    assert _read_vocab(path) == ["[PAD]", "b", "##b"]  # untouched
    assert os.listdir(tmp_path / "out") == ["vocab.txt"]  # no temporary file left

    for bad in (["a", "a"], ["a", ""], ["a b"], ["a\tb"]):
        with pytest.raises(ValueError):
            create_vocab.write_vocab(bad, path)
    assert os.listdir(tmp_path / "out") == ["vocab.txt"]


# ---------------------------------------------------------------------------
# The script, end to end.
# ---------------------------------------------------------------------------


def _script(*args):
    env = dict(os.environ, PYTHONPATH=_ROOT)
    return subprocess.run([sys.executable, os.path.join(_ROOT, "create_vocab.py"), *args],
                          capture_output=True, text=True, cwd=str(_ROOT), env=env, timeout=120,
                          check=False)


def test_script_end_to_end(tmp_path):
    output = str(tmp_path / "vocab.txt")
    result = _script("--input_file=" + DEMO_CORPUS, "--output_file=" + output,
                     "--vocab_size=400")
    assert result.returncode == 0, result.stderr
    entries = _read_vocab(output)
    assert len(entries) == 400 and entries[100] == "[UNK]" and entries[103] == "[MASK]"
    counts = create_vocab.count_words_in_files([DEMO_CORPUS])
    assert entries == create_vocab.build_vocab(counts, vocab_size=400)
    assert os.listdir(tmp_path) == ["vocab.txt"]
    # The summary: words, distinct words, [UNK] share, pieces per word, where the file is.
    stats = create_vocab.evaluate_vocab(entries, counts)
    assert "74932 words (291 distinct)" in result.stderr
    assert "[UNK] 0 = 0.0000% of tokens" in result.stderr
    assert "%.3f pieces/word" % stats["pieces_per_word"] in result.stderr  # 1.757
    assert output in result.stderr

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe\n")
    result = _script("--input_file=" + str(bad), "--output_file=" + output)
    assert result.returncode == 1
    assert error_line(result.stdout, result.stderr).startswith(
        "ERROR: Input file %s, line 2 is not valid UTF-8" % bad)


def test_script_does_not_import_tensorflow():
    result = subprocess.run(
        [sys.executable, "-c", "import sys, create_vocab; print('tensorflow' in sys.modules)"],
        capture_output=True, text=True, cwd=_ROOT, timeout=60, check=True)
    assert result.stdout.strip() == "False"
