"""extract_features.py: the original's output, real weights give transformers' values, every output
format and pooling agree, and bad inputs fail clearly.

Most tests use a tiny random model (4 layers, H=32) with a small vocabulary that spells out any
lower-case ASCII word; the parity test converts the real MiniLM weights (tests/real_model.py) with
the project's converter and compares with `transformers.BertModel` on torch.
"""
import collections
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import extract_features as ef
import modeling
import tokenization
import training
from real_model import converted_minilm, real_model_dir
from script_main import error_line, run_script_command, run_script_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-4

# Written for this test: singles and pairs of different lengths, so batches sorted by length differ
# from the input order and carry padding.
LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "Short one.",
    "Feature extraction turns every word piece into a vector; the encoder mixes them over "
    "several layers of attention, and a sentence embedding averages them.",
    "Is the second segment read with token type one? ||| It should be, always.",
    "",
    "Yes. ||| Both segments of a pair share one sequence, separated by a special token.",
    "Two markers: a ||| b ||| c",
    "unconvertible hyperparameterisation",
]


# -- A tiny model -----------------------------------------------------------------------------------

def tiny_vocab():
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += list(".,;:?!|'-()")
    tokens += ["the", "a", "of", "and", "is", "to", "one", "##s"]
    tokens += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    tokens += ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += ["##" + str(d) for d in range(10)]
    return tokens


def tiny_config(vocab_size):
    return modeling.BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=4,
                               num_attention_heads=4, intermediate_size=37,
                               max_position_embeddings=128, type_vocab_size=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A released-style model directory: bert_config.json, vocab.txt, bert_model.ckpt (bert/* and
    cls/* variables, as the released checkpoints)."""
    root = tmp_path_factory.mktemp("tiny_bert")
    vocab = tiny_vocab()
    (root / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    config = tiny_config(len(vocab))
    config.to_json_file(str(root / "bert_config.json"))
    tf.random.set_seed(1)
    pretrainer = modeling.BertPretrainer(config)
    for variable in checkpoints.named_variables(pretrainer).values():  # LayerNorms and biases too
        variable.assign(variable + tf.random.normal(variable.shape, stddev=0.05))
    checkpoints.save(str(root / "bert_model.ckpt"), checkpoints.named_variables(pretrainer))
    return dict(root=root, config=config, model=pretrainer.bert,
                vocab_file=str(root / "vocab.txt"),
                bert_config_file=str(root / "bert_config.json"),
                init_checkpoint=str(root / "bert_model.ckpt"))


def write_input(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def model_flags(model, **overrides):
    return dict(dict(vocab_file=model["vocab_file"], bert_config_file=model["bert_config_file"],
                     init_checkpoint=model["init_checkpoint"]), **overrides)


def run_main(**flag_values):
    """Runs extract_features.main() with these flags, as the command line would."""
    return run_script_main(ef, **flag_values)


def command_error(capsys, **flag_values):
    """The ERROR line of extract_features.main() run as the command line runs it (exit status 1,
    no traceback)."""
    assert run_script_command(ef, **flag_values) == 1
    return error_line(*capsys.readouterr())


def extract(model, input_file, output_file, **kwargs):
    """ef.run with the model's files (any of them can be overridden in kwargs)."""
    kwargs = dict(dict(bert_config_file=model["bert_config_file"],
                       init_checkpoint=model["init_checkpoint"], vocab_file=model["vocab_file"],
                       progress=False), **kwargs)
    return ef.run(input_file, output_file, **kwargs)


# -- Readers for the three formats ------------------------------------------------------------------

def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def read_tfrecord(path):
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


def feature_values(example, name):
    feature = example.features.feature[name]
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value)


def per_token_from_jsonl(records, layer_indexes):
    """[line] -> (tokens, {index: [n, H]})."""
    out = []
    for record in records:
        tokens = [f["token"] for f in record["features"]]
        layers = {}
        for position, index in enumerate(layer_indexes):
            assert all(f["layers"][position]["index"] == index for f in record["features"])
            layers[index] = np.array([f["layers"][position]["values"]
                                      for f in record["features"]]).reshape(len(tokens), -1)
        out.append((tokens, layers))
    return out


def expected_encoding(tokenizer, line, max_seq_length):
    text_a, text_b = ef.split_line(line)
    return tokenization.encode_pair(tokenizer, text_a, text_b, max_seq_length)


def reference_features(model, encodings, layer_indexes):
    """Per line {index: [n, H]} computed directly with modeling.BertModel, one line at a time."""
    out = []
    for e in encodings:
        n = len(e.tokens)
        outputs = model(tf.constant([e.input_ids[:n]]), tf.constant([e.input_mask[:n]]),
                        tf.constant([e.segment_ids[:n]]))
        out.append({i: outputs.all_encoder_layers[i][0].numpy() for i in layer_indexes})
    return out


# -- The original's format and behaviour ------------------------------------------------------------

def test_split_line_is_the_originals():
    assert ef.split_line("Who was Jim Henson ? ||| Jim Henson was a puppeteer") == (
        "Who was Jim Henson ?", "Jim Henson was a puppeteer")
    assert ef.split_line("a ||| b ||| c") == ("a ||| b", "c")   # greedy: the last marker splits
    assert ef.split_line("  a ||| b \r\n") == ("a", "b")
    assert ef.split_line("a|||b") == ("a|||b", None)             # the marker needs its spaces
    assert ef.split_line("a ||| ") == ("a |||", None)            # stripped before matching
    assert ef.split_line("||| b") == ("||| b", None)
    assert ef.split_line(" ||| ") == ("|||", None)
    assert ef.split_line("") == ("", None)
    assert ef.split_line("x |||  y") == ("x", " y")


def original_jsonl_line(index, tokens, layers, layer_indexes):
    """One line as the original wrote it: OrderedDicts, round(float(x), 6), json.dumps."""
    features = []
    for position, token in enumerate(tokens):
        all_layers = []
        for layer_index in layer_indexes:
            entry = collections.OrderedDict()
            entry["index"] = layer_index
            entry["values"] = [round(float(x), 6) for x in layers[layer_index][position]]
            all_layers.append(entry)
        feature = collections.OrderedDict()
        feature["token"] = token
        feature["layers"] = all_layers
        features.append(feature)
    record = collections.OrderedDict()
    record["linex_index"] = index
    record["features"] = features
    return json.dumps(record) + "\n"


def test_jsonl_is_byte_for_byte_the_originals(tiny, tmp_path):
    layer_indexes = [-1, -2, -3, -4]
    source = write_input(tmp_path / "input.txt", LINES)
    extract(tiny, source, str(tmp_path / "output.jsonl"), layers="-1,-2,-3,-4", batch_size=3)
    tokenizer = tokenization.FullTokenizer(tiny["vocab_file"], do_lower_case=True)
    encodings = [expected_encoding(tokenizer, line, 128) for line in LINES]
    # The values themselves, at full precision, from the npz output of the same run settings.
    extract(tiny, source, str(tmp_path / "output.npz"), layers="-1,-2,-3,-4", batch_size=3,
            output_format="npz")
    arrays = np.load(tmp_path / "output.npz")
    offsets = arrays["offsets"]
    expected = "".join(
        original_jsonl_line(i, e.tokens,
                            {k: arrays[f"layer_{k}"][offsets[i]:offsets[i + 1]]
                             for k in layer_indexes}, layer_indexes)
        for i, e in enumerate(encodings))
    actual = (tmp_path / "output.jsonl").read_text(encoding="utf-8")
    assert actual == expected
    records = read_jsonl(tmp_path / "output.jsonl")
    assert [r["linex_index"] for r in records] == list(range(len(LINES)))
    assert all(list(r) == ["linex_index", "features"] for r in records)
    assert all(list(f) == ["token", "layers"] for r in records for f in r["features"])
    assert all(list(x) == ["index", "values"] for r in records for f in r["features"]
               for x in f["layers"])
    assert [f["token"] for f in records[1]["features"]] == ["[CLS]", "s", "##h", "##o", "##r",
                                                            "##t", "one", ".", "[SEP]"]
    # And the values are the model's (computed one line at a time, no padding, no sorting).
    reference = reference_features(tiny["model"], encodings, layer_indexes)
    for (tokens, layers), e, ref in zip(per_token_from_jsonl(records, layer_indexes), encodings,
                                        reference):
        assert tokens == e.tokens
        for k in layer_indexes:
            assert np.max(np.abs(layers[k] - ref[k])) <= 1e-5 + 5e-7


def test_pairs_and_the_marker(tiny, tmp_path):
    source = write_input(tmp_path / "input.txt", ["a ||| b ||| c", "one ||| two", "x|||y"])
    extract(tiny, source, str(tmp_path / "out.npz"), layers="-1", output_format="npz")
    arrays = np.load(tmp_path / "out.npz")
    offsets = arrays["offsets"]
    line = lambda name, i: arrays[name][offsets[i]:offsets[i + 1]].tolist()  # noqa: E731
    assert line("tokens", 0) == ["[CLS]", "a", "|", "|", "|", "b", "[SEP]", "c", "[SEP]"]
    assert line("segment_ids", 0) == [0] * 7 + [1] * 2
    assert line("tokens", 1) == ["[CLS]", "one", "[SEP]", "t", "##w", "##o", "[SEP]"]
    assert line("segment_ids", 1) == [0, 0, 0, 1, 1, 1, 1]
    assert line("tokens", 2) == ["[CLS]", "x", "|", "|", "|", "y", "[SEP]"]
    assert line("segment_ids", 2) == [0] * 7
    # The pair's values are the model's with token type 1 on the second segment.
    tokenizer = tokenization.FullTokenizer(tiny["vocab_file"])
    ref = reference_features(tiny["model"], [expected_encoding(tokenizer, "a ||| b ||| c", 128)],
                             [-1])[0][-1]
    assert np.max(np.abs(arrays["layer_-1"][offsets[0]:offsets[1]] - ref)) <= 1e-5


def test_layer_selection(tiny, tmp_path):
    source = write_input(tmp_path / "input.txt", LINES[:4])
    extract(tiny, source, str(tmp_path / "out.jsonl"), layers="0,-1,2")
    records = read_jsonl(tmp_path / "out.jsonl")
    assert [x["index"] for x in records[0]["features"][0]["layers"]] == [0, -1, 2]
    tokenizer = tokenization.FullTokenizer(tiny["vocab_file"])
    reference = reference_features(
        tiny["model"], [expected_encoding(tokenizer, line, 128) for line in LINES[:4]],
        [0, -1, 2, 3])
    for (_, layers), ref in zip(per_token_from_jsonl(records, [0, -1, 2]), reference):
        assert np.max(np.abs(layers[0] - ref[0])) <= 1e-5 + 5e-7
        assert np.max(np.abs(layers[-1] - ref[-1])) <= 1e-5 + 5e-7
        assert np.max(np.abs(layers[-1] - ref[3])) <= 1e-5 + 5e-7     # -1 is the last layer
        assert np.max(np.abs(layers[2] - ref[2])) <= 1e-5 + 5e-7
        assert np.max(np.abs(layers[0] - layers[-1])) > 1e-2          # and they differ
    for bad, fragment in (("4", "out of range"), ("-5", "out of range"), ("x", "not an integer"),
                          (",", "empty")):
        with pytest.raises(ValueError, match=fragment):
            extract(tiny, source, str(tmp_path / "bad.jsonl"), layers=bad)
    assert not (tmp_path / "bad.jsonl").exists()


@pytest.mark.parametrize("pooling", ["none", "cls", "mean"])
def test_every_format_and_pooling_agree(tiny, tmp_path, pooling):
    layer_indexes = [-1, -3]
    source = write_input(tmp_path / "input.txt", LINES)
    extractor = ef.Extractor(tiny["bert_config_file"], tiny["init_checkpoint"], tiny["vocab_file"],
                             "-1,-3", batch_size=3, pooling=pooling)
    for fmt in ef.OUTPUT_FORMATS:
        summary = extractor.extract_file(source, str(tmp_path / f"out.{fmt}"), fmt,
                                         progress=False)
        assert summary["lines"] == len(LINES)
    assert sorted(os.listdir(tmp_path)) == ["input.txt", "out.jsonl", "out.npz", "out.tfrecord"]
    tokenizer = tokenization.FullTokenizer(tiny["vocab_file"])
    encodings = [expected_encoding(tokenizer, line, 128) for line in LINES]
    reference = reference_features(tiny["model"], encodings, layer_indexes)
    jsonl = read_jsonl(tmp_path / "out.jsonl")
    records = read_tfrecord(tmp_path / "out.tfrecord")
    arrays = np.load(tmp_path / "out.npz")   # fails on pickled objects: none are stored
    assert arrays["layers"].tolist() == layer_indexes
    assert arrays["linex_index"].tolist() == list(range(len(LINES)))
    assert str(arrays["pooling"]) == pooling
    assert len(jsonl) == len(records) == len(LINES)
    H = tiny["config"].hidden_size
    for i, (e, ref) in enumerate(zip(encodings, reference)):
        n = len(e.tokens)
        example = records[i]
        assert feature_values(example, "linex_index") == [i]
        assert feature_values(example, "layers") == layer_indexes
        assert feature_values(example, "num_tokens") == [n]
        assert jsonl[i]["linex_index"] == i
        for position, k in enumerate(layer_indexes):
            if pooling == "none":
                expected = ref[k]                                              # [n, H]
                from_npz = arrays[f"layer_{k}"][arrays["offsets"][i]:arrays["offsets"][i + 1]]
                from_jsonl = np.array([f["layers"][position]["values"]
                                       for f in jsonl[i]["features"]])
            else:
                expected = ref[k][0] if pooling == "cls" else ref[k].mean(axis=0)  # [H]
                from_npz = arrays[f"layer_{k}"][i]
                assert jsonl[i]["layers"][position]["index"] == k
                from_jsonl = np.array(jsonl[i]["layers"][position]["values"])
            from_tfrecord = np.array(feature_values(example, f"layer_{k}"),
                                     np.float32).reshape(expected.shape)
            assert from_npz.dtype == np.float32 and from_npz.shape == expected.shape
            assert np.array_equal(from_npz, from_tfrecord)     # both full float32
            assert np.max(np.abs(from_jsonl - from_npz)) <= 5e-7 + 1e-9
            assert np.max(np.abs(from_npz - expected)) <= 1e-5
        if pooling == "none":
            assert arrays["tokens"][arrays["offsets"][i]:arrays["offsets"][i + 1]].tolist() \
                == e.tokens
            assert [t.decode() for t in feature_values(example, "tokens")] == e.tokens
            assert feature_values(example, "token_ids") == e.input_ids[:n]
            assert feature_values(example, "segment_ids") == e.segment_ids[:n]
            assert arrays["segment_ids"][arrays["offsets"][i]:arrays["offsets"][i + 1]].tolist() \
                == e.segment_ids[:n]
            assert [f["token"] for f in jsonl[i]["features"]] == e.tokens
        else:
            assert list(jsonl[i]) == ["linex_index", "layers"]
            assert arrays["num_tokens"][i] == n
            assert len(jsonl[i]["layers"][0]["values"]) == H
    if pooling == "none":
        assert arrays["offsets"].tolist() == np.cumsum(
            [0] + [len(e.tokens) for e in encodings]).tolist()
        assert arrays["layer_-1"].shape == (arrays["offsets"][-1], H)
    else:
        assert arrays["layer_-1"].shape == (len(LINES), H)


def test_long_lines_are_truncated_as_the_original(tiny, tmp_path):
    words = " ".join(f"w{i}" for i in range(100))
    lines = [words, f"{words} ||| short", f"short ||| {words}", f"{words} ||| {words}"]
    source = write_input(tmp_path / "input.txt", lines)
    summary = extract(tiny, source, str(tmp_path / "out.npz"), layers="-1", max_seq_length=16,
                      output_format="npz")
    assert summary["truncated"] == 4
    arrays = np.load(tmp_path / "out.npz")
    offsets = arrays["offsets"]
    tokens = [arrays["tokens"][offsets[i]:offsets[i + 1]].tolist() for i in range(4)]
    assert [len(t) for t in tokens] == [16] * 4
    assert tokens[0] == ["[CLS]", "w", "##0", "w", "##1", "w", "##2", "w", "##3", "w", "##4", "w",
                         "##5", "w", "##6", "[SEP]"]
    # Pairs: truncate_seq_pair shortens the longer text first (to 16 - 3 word pieces).
    assert tokens[1] == ["[CLS]"] + tokens[0][1:9] + ["[SEP]", "s", "##h", "##o", "##r", "##t",
                                                      "[SEP]"]
    assert tokens[2] == ["[CLS]", "s", "##h", "##o", "##r", "##t", "[SEP]"] + tokens[0][1:9] \
        + ["[SEP]"]
    assert tokens[3] == ["[CLS]"] + tokens[0][1:8] + ["[SEP]"] + tokens[0][1:7] + ["[SEP]"]
    tokenizer = tokenization.FullTokenizer(tiny["vocab_file"])
    for line, t in zip(lines, tokens):
        assert t == expected_encoding(tokenizer, line, 16).tokens


def test_empty_lines_keep_the_numbering(tiny, tmp_path):
    source = tmp_path / "input.txt"
    source.write_bytes(b"first line.\n\n   \t \nlast ||| pair\n")
    extract(tiny, str(source), str(tmp_path / "out.jsonl"), layers="-1")
    records = read_jsonl(tmp_path / "out.jsonl")
    assert [r["linex_index"] for r in records] == [0, 1, 2, 3]
    assert [f["token"] for f in records[1]["features"]] == ["[CLS]", "[SEP]"]
    assert [f["token"] for f in records[2]["features"]] == ["[CLS]", "[SEP]"]
    assert records[1]["features"][0]["layers"] == records[2]["features"][0]["layers"]
    # A last line without a newline still counts; an empty file gives an empty output.
    source.write_bytes(b"one\ntwo")
    extract(tiny, str(source), str(tmp_path / "two.jsonl"), layers="-1")
    assert len(read_jsonl(tmp_path / "two.jsonl")) == 2
    source.write_bytes(b"")
    for fmt in ef.OUTPUT_FORMATS:
        extract(tiny, str(source), str(tmp_path / f"empty.{fmt}"), layers="-1",
                output_format=fmt, pooling="mean")
    assert (tmp_path / "empty.jsonl").read_bytes() == b""
    assert read_tfrecord(tmp_path / "empty.tfrecord") == []
    assert np.load(tmp_path / "empty.npz")["layer_-1"].shape == (0, 32)


def test_output_order_is_input_order(tiny, tmp_path, monkeypatch):
    """Batches are sorted by length; the output is not. Same values whatever the batching."""
    rng = np.random.RandomState(3)
    lines = [" ".join(rng.choice(["the", "of", "and", "a", "is", "to", "one"], rng.randint(0, 40)))
             for _ in range(37)]
    source = write_input(tmp_path / "input.txt", lines)
    extract(tiny, source, str(tmp_path / "one_by_one.npz"), layers="-1", batch_size=1,
            output_format="npz")
    extract(tiny, source, str(tmp_path / "sorted.npz"), layers="-1", batch_size=8,
            output_format="npz")
    monkeypatch.setattr(ef, "WINDOW_BYTES", 4 * 32 * 60)   # several windows of ordered output
    extract(tiny, source, str(tmp_path / "sorted.jsonl"), layers="-1", batch_size=4)
    one_by_one, batched = np.load(tmp_path / "one_by_one.npz"), np.load(tmp_path / "sorted.npz")
    assert one_by_one["tokens"].tolist() == batched["tokens"].tolist()
    assert np.max(np.abs(one_by_one["layer_-1"] - batched["layer_-1"])) <= 1e-5
    records = read_jsonl(tmp_path / "sorted.jsonl")
    assert [r["linex_index"] for r in records] == list(range(len(lines)))
    offsets = one_by_one["offsets"]
    for i, record in enumerate(records):
        values = np.array([f["layers"][0]["values"] for f in record["features"]])
        assert np.max(np.abs(values - one_by_one["layer_-1"][offsets[i]:offsets[i + 1]])) \
            <= 1e-5 + 5e-7


def test_windows_cover_the_input_in_order(monkeypatch):
    examples = ef.Examples(np.zeros(50, np.int32), np.array([0, 10, 20, 25, 30, 45, 50]),
                           np.array([10, 10, 5, 5, 15, 5]))
    assert ef.line_windows(examples, False, True, 4) == [(0, 6)]
    monkeypatch.setattr(ef, "WINDOW_BYTES", 80)
    windows = ef.line_windows(examples, True, True, 4)    # 40, 40, 20, 20, 60, 20 bytes
    assert windows == [(0, 2), (2, 5), (5, 6)]
    assert ef.line_windows(examples, True, False, 40) == [(0, 2), (2, 4), (4, 6)]


def test_non_utf8_input_names_file_and_line(tiny, tmp_path, capsys):
    source = tmp_path / "input.txt"
    source.write_bytes(b"fine line\nstill fine, caf\xc3\xa9\nbad \xff\xfe here\nfine\n")
    with pytest.raises(ValueError, match=r"input\.txt, line 3 is not valid UTF-8: byte 0xff"):
        extract(tiny, str(source), str(tmp_path / "out.jsonl"))
    assert re.match(r"ERROR: .*input\.txt, line 3 is not valid UTF-8", command_error(
        capsys, **model_flags(tiny, input_file=source, output_file=tmp_path / "out.jsonl")))
    assert sorted(os.listdir(tmp_path)) == ["input.txt"]   # no output, no temporary file


@pytest.mark.parametrize("output_format", ["jsonl", "npz", "tfrecord"])
def test_a_failed_run_leaves_the_previous_output_and_no_temporary_file(tiny, tmp_path,
                                                                      monkeypatch,
                                                                      output_format):
    source = write_input(tmp_path / "input.txt", LINES)
    out = tmp_path / f"out.{output_format}"
    out.write_text("previous output")
    sink = ef.SINKS[output_format]

    def fail(self, *args):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(sink, "add" if output_format == "npz" else "write_line", fail)
    with pytest.raises(OSError, match="disk full"):
        extract(tiny, source, str(out), layers="-1", output_format=output_format, batch_size=2)
    assert out.read_text() == "previous output"
    assert sorted(os.listdir(tmp_path)) == ["input.txt", out.name]


def test_missing_or_invalid_init_checkpoint_is_a_clear_error(tiny, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    missing_input = str(tmp_path / "no_such_input.txt")
    # Checked before anything else: the input is not even read.
    assert command_error(capsys, **model_flags(tiny, init_checkpoint="", input_file=missing_input,
                                               output_file=out)).startswith(
        "ERROR: --init_checkpoint is required")
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint found"):
        extract(tiny, missing_input, str(out), init_checkpoint=str(tmp_path / "nothing.ckpt"))
    assert re.match("ERROR: .*nothing.ckpt: no checkpoint found", command_error(
        capsys, **model_flags(tiny, init_checkpoint=tmp_path / "nothing.ckpt",
                              input_file=missing_input, output_file=out)))
    source = write_input(tmp_path / "input.txt", ["hello"])
    # Names that match nothing.
    checkpoints.save(str(tmp_path / "other" / "model.ckpt"),
                     {"some/other/kernel": np.zeros([3, 3], np.float32)})
    with pytest.raises(checkpoints.CheckpointError, match="no variable name matches"):
        extract(tiny, source, str(out), init_checkpoint=str(tmp_path / "other" / "model.ckpt"))
    # A layer missing (only the pooler may be missing: it is not used).
    tensors = checkpoints.read(tiny["init_checkpoint"])
    del tensors["bert/encoder/layer_2/output/dense/kernel"]
    del tensors["bert/pooler/dense/kernel"], tensors["bert/pooler/dense/bias"]
    checkpoints.save(str(tmp_path / "partial" / "model.ckpt"), tensors)
    with pytest.raises(checkpoints.CheckpointError,
                       match=r"1 variable\(s\) .*missing.*layer_2/output/dense/kernel"):
        extract(tiny, source, str(out), init_checkpoint=str(tmp_path / "partial" / "model.ckpt"))
    # A file that is not a checkpoint.
    (tmp_path / "junk.ckpt.index").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoints.CheckpointError, match="junk.ckpt"):
        extract(tiny, source, str(out), init_checkpoint=str(tmp_path / "junk.ckpt"))
    assert not out.exists()
    # Without the pooler it works.
    tensors = checkpoints.read(tiny["init_checkpoint"])
    del tensors["bert/pooler/dense/kernel"], tensors["bert/pooler/dense/bias"]
    checkpoints.save(str(tmp_path / "no_pooler" / "model.ckpt"), tensors)
    extract(tiny, source, str(out), init_checkpoint=str(tmp_path / "no_pooler" / "model.ckpt"))
    assert len(read_jsonl(out)) == 1


def test_vocab_beyond_the_config_is_an_error(tiny, tmp_path):
    source = write_input(tmp_path / "input.txt", ["zebra"])
    vocab = tiny_vocab() + ["zebra"]
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    with pytest.raises(ValueError, match="beyond the model's vocab_size"):
        extract(tiny, source, str(tmp_path / "out.jsonl"), vocab_file=str(tmp_path / "vocab.txt"))


def test_main_with_flags_pooled_bfloat16_and_progress(tiny, tmp_path, capfd):
    source = write_input(tmp_path / "input.txt", LINES)
    assert run_main(**model_flags(tiny, input_file=source, output_file=tmp_path / "f32.npz",
                                  output_format="npz", pooling="mean", layers="-1")) == 0
    assert "extract_features: 8/8 lines (100%)" in capfd.readouterr().err
    assert run_main(**model_flags(tiny, input_file=source, output_file=tmp_path / "bf16.npz",
                                  output_format="npz", pooling="mean", layers="-1",
                                  precision="bfloat16", use_one_hot_embeddings="true")) == 0
    f32 = np.load(tmp_path / "f32.npz")["layer_-1"]
    bf16 = np.load(tmp_path / "bf16.npz")["layer_-1"]
    assert 0 < np.max(np.abs(f32 - bf16)) < 0.1


def test_mirrored_strategy_gives_the_same_features(tiny, tmp_path):
    source = write_input(tmp_path / "input.txt", LINES)
    extract(tiny, source, str(tmp_path / "one.npz"), layers="-1,0", batch_size=3,
            output_format="npz")
    strategy = training.mirrored_strategy(["/cpu:0", "/cpu:1"])
    extract(tiny, source, str(tmp_path / "two.npz"), layers="-1,0", batch_size=3,
            output_format="npz", strategy=strategy)   # 3 rows -> 4, two per replica
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    for name in ("layer_-1", "layer_0"):
        assert one[name].shape == two[name].shape
        assert np.max(np.abs(one[name] - two[name])) <= 1e-5


def test_round6_is_pythons_round():
    rng = np.random.RandomState(0)
    values = np.concatenate([rng.randn(20000), rng.randn(20000) * 1e-4,
                             rng.randint(-10**6, 10**6, 20000) / 2e6]).astype(np.float32)
    values = np.concatenate([values, np.array([0.0, -0.0, -1e-7, 5e-7, 1e-3], np.float32)])
    ours = ef.round6(values).tolist()
    python = [round(float(x), 6) for x in values]
    assert json.dumps(ours) == json.dumps(python)


def test_original_readme_command_line(tiny, tmp_path):
    source = write_input(tmp_path / "input.txt", ["Who was Jim Henson ? ||| Jim Henson was a "
                                                  "puppeteer", "Hello."])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", BERT_BASE_DIR=str(tiny["root"]))
    command = ("python extract_features.py --input_file={input} --output_file={output} "
               "--vocab_file=$BERT_BASE_DIR/vocab.txt "
               "--bert_config_file=$BERT_BASE_DIR/bert_config.json "
               "--init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt "
               "--layers=-1,-2,-3,-4 --max_seq_length=128 --batch_size=8")
    command = command.replace("python ", f"{sys.executable} ", 1)
    output = tmp_path / "output.jsonl"
    result = subprocess.run(command.format(input=source, output=output), shell=True, cwd=ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_jsonl(output)
    assert [r["linex_index"] for r in records] == [0, 1]
    assert [x["index"] for x in records[0]["features"][0]["layers"]] == [-1, -2, -3, -4]
    assert records[0]["features"][0]["token"] == "[CLS]"
    assert "extract_features: 2/2 lines (100%)" in result.stderr
    # The original's silent random weights are now an error, before any work.
    result = subprocess.run(command.format(input=source, output=tmp_path / "x.jsonl").replace(
        "--init_checkpoint=$BERT_BASE_DIR/bert_model.ckpt", ""), shell=True, cwd=ROOT, env=env,
        capture_output=True, text=True)
    assert result.returncode != 0
    assert "ERROR: --init_checkpoint is required" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()


# -- The real MiniLM weights against transformers ---------------------------------------------------

REAL_LINES = [
    "The cat sat on the mat.",
    "Checkpoint converters must keep every number unchanged, or the features drift.",
    "Short.",
    "The encoder reads word pieces such as unconvertible or hyperparameterisation, mixes them "
    "over six layers of attention, and writes a vector for each of them.",
    "Is the second segment read with token type one? ||| It should be.",
    "",
    "Yes. ||| Both segments of a pair share one sequence, separated by a special token.",
    "Sentence embeddings average the last layer over the real tokens.",
    "Padding positions are masked out ||| and never attended to ||| by anyone.",
]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    return converted_minilm(tmp_path_factory.mktemp("minilm_bert"))


def test_real_minilm_matches_transformers(minilm, tmp_path):
    import torch
    import transformers

    source = write_input(tmp_path / "input.txt", REAL_LINES)
    layer_indexes = [-1, -2, -4, -6]
    extract(minilm, source, str(tmp_path / "tokens.npz"), layers="-1,-2,-4,-6", batch_size=4,
            output_format="npz")
    extract(minilm, source, str(tmp_path / "tokens.jsonl"), layers="-1,-2,-4,-6", batch_size=4)
    extractor = ef.Extractor(minilm["bert_config_file"], minilm["init_checkpoint"],
                             minilm["vocab_file"], "-1,-6", batch_size=4, pooling="mean")
    extractor.extract_file(source, str(tmp_path / "mean.npz"), "npz", progress=False)
    extractor.extract_file(source, str(tmp_path / "mean.jsonl"), "jsonl", progress=False)
    tokens, mean = np.load(tmp_path / "tokens.npz"), np.load(tmp_path / "mean.npz")
    jsonl = per_token_from_jsonl(read_jsonl(tmp_path / "tokens.jsonl"), layer_indexes)
    mean_jsonl = read_jsonl(tmp_path / "mean.jsonl")

    # transformers on the same word pieces (and its own tokenizer agrees on them). Note:
    # transformers 5 ignores BertTokenizerFast(vocab_file=...) (a 5-entry vocabulary results), so
    # the tokenizer is loaded from the model directory.
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(real_model_dir())
    assert len(hf_tokenizer.get_vocab()) == 30522
    offsets = tokens["offsets"]
    n = len(REAL_LINES)
    width = int(np.max(np.diff(offsets)))
    ids = np.zeros((n, width), np.int64)
    types = np.zeros((n, width), np.int64)
    mask = np.zeros((n, width), np.int64)
    for i, line in enumerate(REAL_LINES):
        row = slice(offsets[i], offsets[i + 1])
        length = offsets[i + 1] - offsets[i]
        ids[i, :length] = tokens["token_ids"][row]
        types[i, :length] = tokens["segment_ids"][row]
        mask[i, :length] = 1
        text_a, text_b = ef.split_line(line)
        assert hf_tokenizer(text_a, text_b)["input_ids"] == ids[i, :length].tolist(), line
        assert hf_tokenizer(text_a, text_b)["token_type_ids"] == types[i, :length].tolist()
    model = transformers.BertModel.from_pretrained(real_model_dir()).eval()
    with torch.inference_mode():
        hidden = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                       token_type_ids=torch.tensor(types), output_hidden_states=True).hidden_states
    hidden = [h.numpy() for h in hidden]          # embeddings, then layer 1 .. 6
    worst = collections.defaultdict(float)
    for i in range(n):
        length = offsets[i + 1] - offsets[i]
        for position, k in enumerate(layer_indexes):
            theirs = hidden[k][i, :length]         # hidden[-1] is the last layer, as ours
            ours = tokens[f"layer_{k}"][offsets[i]:offsets[i + 1]]
            worst[f"tokens layer {k}"] = max(worst[f"tokens layer {k}"],
                                             float(np.max(np.abs(ours - theirs))))
            worst[f"jsonl layer {k}"] = max(worst[f"jsonl layer {k}"],
                                            float(np.max(np.abs(jsonl[i][1][k] - theirs))))
        for position, k in enumerate([-1, -6]):
            theirs = hidden[k][i, :length].mean(axis=0)
            worst[f"mean layer {k}"] = max(worst[f"mean layer {k}"],
                                           float(np.max(np.abs(mean[f"layer_{k}"][i] - theirs))))
            from_jsonl = np.array(mean_jsonl[i]["layers"][position]["values"])
            worst[f"mean jsonl layer {k}"] = max(worst[f"mean jsonl layer {k}"],
                                                 float(np.max(np.abs(from_jsonl - theirs))))
    # Masked mean over the padded batch, the usual sentence-transformers recipe.
    m = mask[..., None].astype(np.float32)
    pooled = (hidden[-1] * m).sum(axis=1) / m.sum(axis=1)
    worst["mean (masked, padded batch)"] = float(np.max(np.abs(mean["layer_-1"] - pooled)))
    print("\nreal MiniLM, max abs difference to transformers:")
    for key, value in worst.items():
        print(f"  {key:28s} {value:.3e}")
    assert max(worst.values()) <= TOLERANCE, dict(worst)
