"""create_pretraining_data.py: record format, the algorithm's statistics against a port of the
original, whole-word masking, determinism, round-robin outputs, bad input."""
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import create_pretraining_data as cpd
import file_io
import tokenization
from real_model import real_vocab_file
from test_records import assert_framed_as_tfrecord_writer_frames

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_ROOT, "benchmarks"))
import _reference_pretraining_data as reference  # noqa: E402

DEMO_CORPUS = os.path.join(_ROOT, "data", "demo_corpus.txt")
SEQ, PRED = 64, 10


def feature_spec(seq=SEQ, pred=PRED):
    return {
        "input_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([pred], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([pred], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([pred], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def read_records(paths, seq=SEQ, pred=PRED):
    """All records of `paths` (in order) as a dict of numpy arrays."""
    dataset = tf.data.TFRecordDataset(paths).batch(100_000).map(
        lambda r: tf.io.parse_example(r, feature_spec(seq, pred)))
    batches = list(dataset.as_numpy_iterator())
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def settings(**overrides):
    values = dict(vocab_file=real_vocab_file(), max_seq_length=SEQ, max_predictions_per_seq=PRED,
                  dupe_factor=2)
    values.update(overrides)
    return cpd.Settings(**values)


def run(tmp_path, name="out.tfrecord", inputs=DEMO_CORPUS, workers=1, block_size=1_000_000,
        **overrides):
    outputs = [str(tmp_path / n) for n in name.split(",")]
    s = settings(num_outputs=len(outputs), **overrides)
    progress = cpd.create_pretraining_data(inputs, outputs, s, workers, block_size)
    return outputs, progress.counts


@pytest.fixture(scope="module")
def vocab():
    return tokenization.load_vocab(real_vocab_file())


@pytest.fixture(scope="module")
def demo_records(tmp_path_factory):
    outputs, counts = run(tmp_path_factory.mktemp("demo"), block_size=100_000)
    return read_records(outputs), counts


# --- serialization (the shared primitives: tests/test_records.py) ------------------------------


def random_instances(n, vocab_size, rng):
    """`Instances` of random ids, lengths, A/B splits and masked positions."""
    ids = np.zeros((n, SEQ), np.int64)
    positions, labels = np.zeros((n, PRED), np.int64), np.zeros((n, PRED), np.int64)
    lengths, len_a, num_masked = (np.zeros(n, np.int64) for _ in range(3))
    for i in range(n):
        len_a[i], len_b = rng.randint(1, 30), rng.randint(1, 30)
        lengths[i] = len_a[i] + len_b + 3
        ids[i, :lengths[i]] = [rng.randrange(vocab_size) for _ in range(lengths[i])]
        maskable = range(1, int(lengths[i]) - 1)
        chosen = sorted(rng.sample(maskable, rng.randint(1, min(PRED, len(maskable)))))
        num_masked[i] = len(chosen)
        positions[i, :len(chosen)] = chosen
        labels[i, :len(chosen)] = [rng.randrange(vocab_size) for _ in chosen]
    return cpd.Instances(ids, lengths, len_a, positions, labels, num_masked,
                         np.arange(n) % 3 == 0)


def test_records_are_byte_identical_to_tensorflow(tmp_path):
    # Ids up to 2**21 exercise varints of 1 to 4 bytes.
    instances = random_instances(50, 2**21 + 5, random.Random(0))
    serialized = cpd.ExampleEncoder(SEQ, PRED, vocab_size=2**21 + 5).encode(instances)
    assert len(serialized) == 50
    for i, record in enumerate(serialized):
        f = tf.train.Example.FromString(record).features.feature
        n, k, len_a = (int(a[i]) for a in (instances.lengths, instances.num_masked,
                                          instances.len_a))
        assert list(f["input_ids"].int64_list.value) == instances.input_ids[i].tolist()
        assert list(f["input_mask"].int64_list.value) == [1] * n + [0] * (SEQ - n)
        assert list(f["segment_ids"].int64_list.value) == (
            [0] * (len_a + 2) + [1] * (n - len_a - 2) + [0] * (SEQ - n))
        assert list(f["masked_lm_positions"].int64_list.value) == (
            instances.masked_lm_positions[i].tolist())
        assert list(f["masked_lm_ids"].int64_list.value) == instances.masked_lm_ids[i].tolist()
        assert list(f["masked_lm_weights"].float_list.value) == [1.0] * k + [0.0] * (PRED - k)
        assert list(f["next_sentence_labels"].int64_list.value) == [i % 3 == 0]
    assert_framed_as_tfrecord_writer_frames(serialized, tmp_path)


# --- the records on the demo corpus ------------------------------------------------------------


def test_records_have_the_original_layout(demo_records, vocab):
    r, counts = demo_records
    assert len(r["input_ids"]) == counts.instances > 1000
    cls, sep, mask = vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"]
    lengths = r["input_mask"].sum(1)
    for i in range(len(lengths)):
        n = lengths[i]
        ids, seg = r["input_ids"][i], r["segment_ids"][i]
        assert (r["input_mask"][i, :n] == 1).all() and (r["input_mask"][i, n:] == 0).all()
        assert ids[0] == cls and ids[n - 1] == sep and (ids[n:] == 0).all()
        len_a = np.argmin(seg[:n] == 0) - 2  # segment B starts after [CLS] A [SEP]
        assert ids[len_a + 1] == sep and (seg[len_a + 2:n] == 1).all() and (seg[n:] == 0).all()
        k = int(r["masked_lm_weights"][i].sum())
        positions = r["masked_lm_positions"][i, :k]
        assert k == min(PRED, max(1, round(n * 0.15)))
        assert (np.diff(positions) > 0).all(), "positions are sorted"
        assert not set(positions) & {0, len_a + 1, n - 1}, "[CLS]/[SEP] are never masked"
        assert (r["masked_lm_positions"][i, k:] == 0).all()
        assert (r["masked_lm_ids"][i, k:] == 0).all()
    assert lengths.max() <= SEQ
    masked = r["masked_lm_weights"] > 0
    replaced = np.take_along_axis(r["input_ids"], r["masked_lm_positions"], 1)[masked]
    labels = r["masked_lm_ids"][masked]
    assert np.mean(replaced == mask) == pytest.approx(0.8, abs=0.02)
    assert np.mean(replaced == labels) == pytest.approx(0.1, abs=0.015)


def test_statistics_match_the_original_algorithm(tmp_path):
    """Same corpus and settings: ours in 4 blocks vs a port of the original (one pool).

    Shares must agree within 4 standard errors of the difference of two samples (about one
    point here) and tokens per instance within 2%.
    """
    _, ours = run(tmp_path, block_size=100_000, dupe_factor=5)
    fast = tokenization.FullTokenizer(real_vocab_file())
    instances = reference.run([DEMO_CORPUS], [str(tmp_path / "ref.tfrecord")], real_vocab_file(),
                              tokenizer=fast, max_seq_length=SEQ, max_predictions_per_seq=PRED,
                              dupe_factor=5)
    tokens = sum(len(i["tokens"]) for i in instances)
    masked = [(i["tokens"][p], label) for i in instances
              for p, label in zip(i["masked_lm_positions"], i["masked_lm_labels"])]
    assert ours.tokens / ours.instances == pytest.approx(tokens / len(instances), rel=0.02)
    assert ours.instances == pytest.approx(len(instances), rel=0.02)
    shares = (  # name, ours (part, whole), theirs (part, whole)
        ("masked", (ours.masked, ours.tokens), (len(masked), tokens)),
        ("random next", (ours.random_next, ours.instances),
         (sum(i["is_random_next"] for i in instances), len(instances))),
        ("[MASK]", (ours.masked_as_mask, ours.masked),
         (sum(new == "[MASK]" for new, _ in masked), len(masked))),
        ("kept", (ours.masked_kept, ours.masked), (sum(new == old for new, old in masked),
                                                   len(masked))))
    for name, (a, n), (b, m) in shares:
        p = (a + b) / (n + m)
        error = (p * (1 - p) * (1 / n + 1 / m)) ** 0.5
        assert abs(a / n - b / m) < 4 * error, (name, a / n, b / m)


def test_next_sentence_is_random_about_half_the_time_for_long_documents(tmp_path):
    sentences = ["Sentence %d of document %d talks about topic %d." % (s, d, d % 7)
                 for d in range(60) for s in range(40)]
    text = "\n\n".join("\n".join(sentences[d * 40:(d + 1) * 40]) for d in range(60))
    path = tmp_path / "long.txt"
    path.write_text(text)
    _, counts = run(tmp_path, inputs=str(path), dupe_factor=3, short_seq_prob=0.0)
    assert counts.random_next / counts.instances == pytest.approx(0.5, abs=0.05)


def test_small_files_share_a_block_so_random_next_comes_from_other_files(tmp_path, vocab):
    words = ["apple", "river", "castle", "garden", "winter", "doctor", "silver", "forest"]
    for i, word in enumerate(words):  # one document per file, every sentence names its word
        (tmp_path / ("doc%d.txt" % i)).write_text(
            "\n".join("The %s is here on day %d." % (word, d) for d in range(30)) + "\n")
    outputs, counts = run(tmp_path, inputs=str(tmp_path / "doc*.txt"), dupe_factor=3)
    r = read_records(outputs)
    word_ids = {vocab[w] for w in words}
    random_pairs = 0
    for i in np.flatnonzero(r["next_sentence_labels"][:, 0] == 1):
        seg, ids = r["segment_ids"][i], r["input_ids"][i]
        ids = ids.copy()
        k = int(r["masked_lm_weights"][i].sum())
        ids[r["masked_lm_positions"][i, :k]] = r["masked_lm_ids"][i, :k]
        n = r["input_mask"][i].sum()
        a = {t for t in ids[:n][seg[:n] == 0] if t in word_ids}
        b = {t for t in ids[:n][seg[:n] == 1] if t in word_ids}
        assert a and b and not a & b, i
        random_pairs += 1
    assert random_pairs > 20


def test_whole_word_masking_masks_all_pieces_of_a_word(tmp_path, vocab):
    outputs, counts = run(tmp_path, do_whole_word_mask=True, block_size=100_000)
    r = read_records(outputs)
    continuation = np.zeros(len(vocab), bool)
    for token, index in vocab.items():
        continuation[index] = token.startswith("##")
    words_with_pieces = 0
    special = (vocab["[CLS]"], vocab["[SEP]"])
    for i in range(len(r["input_ids"])):
        k = int(r["masked_lm_weights"][i].sum())
        positions = r["masked_lm_positions"][i, :k]
        original = r["input_ids"][i].copy()
        original[positions] = r["masked_lm_ids"][i, :k]
        n = r["input_mask"][i].sum()
        is_masked = np.zeros(n, bool)
        is_masked[positions] = True
        # A word is a token followed by its "##" pieces; masked together or not at all.
        for p in range(1, n - 1):
            # (A segment can start with a "##" piece, after truncation from the front; after
            # [SEP] it joins the word before the [SEP], as in the original. [CLS] and [SEP]
            # themselves are never masked.)
            if continuation[original[p]] and original[p - 1] not in special:
                words_with_pieces += 1
                assert is_masked[p] == is_masked[p - 1], (i, p)
    assert words_with_pieces > 1000 and counts.masked > 0


# --- determinism and output files --------------------------------------------------------------


def test_output_depends_on_seed_and_blocks_not_on_workers(tmp_path):
    one, _ = run(tmp_path / "one", block_size=60_000, workers=1)
    two, _ = run(tmp_path / "two", block_size=60_000, workers=2)
    again, _ = run(tmp_path / "again", block_size=60_000, workers=2)
    other_seed, _ = run(tmp_path / "seed", block_size=60_000, workers=2, random_seed=1)
    data = [open(p[0], "rb").read() for p in (one, two, again, other_seed)]
    assert data[0] == data[1] == data[2]
    assert data[3] != data[0]


def test_round_robin_over_several_outputs(tmp_path):
    single, counts = run(tmp_path / "single", block_size=60_000)
    several, _ = run(tmp_path / "several", name="a.tfrecord,b.tfrecord,c.tfrecord",
                     block_size=60_000)
    records = [list(tf.data.TFRecordDataset(p).as_numpy_iterator()) for p in several]
    assert [len(r) for r in records] == [(counts.instances + 2 - i) // 3 for i in range(3)]
    interleaved = [records[n % 3][n // 3] for n in range(counts.instances)]
    assert interleaved == list(tf.data.TFRecordDataset(single[0]).as_numpy_iterator())


def test_command_line_and_summary(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(open(DEMO_CORPUS).read()[:20_000])
    out = tmp_path / "x" / "out.tfrecord"
    proc = subprocess.run(
        [sys.executable, os.path.join(_ROOT, "create_pretraining_data.py"),
         "--input_file=%s" % corpus, "--output_file=%s" % out,
         "--vocab_file=%s" % real_vocab_file(),
         "--max_seq_length=32", "--max_predictions_per_seq=5", "--dupe_factor=1",
         "--num_workers=2"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "instances" in proc.stderr and "random next sentence in" in proc.stderr
    assert "*** Example ***" in proc.stderr
    assert len(read_records([str(out)], 32, 5)["input_ids"]) > 10
    assert os.listdir(out.parent) == ["out.tfrecord"]


# --- bad input ---------------------------------------------------------------------------------


def test_non_utf8_input_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"A good line.\nAnother one.\n\nHere \xff is bad.\n")
    existing = tmp_path / "out.tfrecord"
    existing.write_bytes(b"keep me")
    with pytest.raises(ValueError, match=r"bad\.txt line 4, column 6: not valid UTF-8"):
        run(tmp_path, inputs=str(path))
    assert existing.read_bytes() == b"keep me", "a failed run leaves earlier output alone"
    assert sorted(os.listdir(tmp_path)) == ["bad.txt", "out.tfrecord"], "no temporary files left"


def test_empty_input_and_missing_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="no instances.*empty.txt"):
        run(tmp_path, inputs=str(empty))
    with pytest.raises(file_io.InputFileError, match="--input_file: .*nothing-here"):
        run(tmp_path, inputs=str(tmp_path / "nothing-here*.txt"))


def test_vocab_without_special_tokens(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\nthe\n")
    with pytest.raises(ValueError, match=r"vocab.txt lacks the special tokens \[CLS\], \[SEP\], "
                                         r"\[MASK\]"):
        run(tmp_path, vocab_file=str(vocab))


def test_no_document_breaks_warns(tmp_path, caplog):
    path = tmp_path / "flat.txt"
    path.write_text("\n".join("Line number %d is here." % i for i in range(50)))
    _, counts = run(tmp_path, inputs=str(path))
    assert counts.instances > 0
    assert "no blank lines between documents" in caplog.text


def test_bad_settings():
    with pytest.raises(ValueError, match="--max_seq_length=4"):
        settings(max_seq_length=4).validate()
    with pytest.raises(ValueError, match="--masked_lm_prob"):
        settings(masked_lm_prob=0.0).validate()
