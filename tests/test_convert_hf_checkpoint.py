"""convert_hf_checkpoint.py: real pretrained weights give HuggingFace's outputs, heads map, round
trips are exact, and bad inputs fail naming the tensor."""
import json
import os

import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf
import torch
import transformers

import checkpoints
import convert_hf_checkpoint as convert
import modeling
import tokenization
from real_model import real_model_dir
from script_main import error_line, run_script_command, run_script_main

TOLERANCE = 1e-4

# Sentences of different lengths (written for this test), so the batch carries padding.
SENTENCES = [
    "Checkpoint converters must keep every number unchanged.",
    "Short one.",
    "The encoder reads word pieces such as unconvertible or hyperparameterisation, mixes them "
    "over six layers of attention, and writes a vector for each of them.",
    "Padding positions are masked out.",
]
PAIRS = [
    ("Is the second segment read with token type one?", "It should be."),
    ("Yes.", "Both segments of a pair share one sequence, separated by a special token."),
]


def run_main(**flag_values):
    """Runs the script's main() with these flags, as `python3 convert_hf_checkpoint.py` would."""
    return run_script_main(convert, **flag_values)


def max_diff_on_real_positions(ours, theirs, mask):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    return float(np.max(np.abs(ours - theirs)[mask.astype(bool)]))


# -- The real pretrained MiniLM (BertModel layout: no `bert.` prefix, no heads) ----------------------

@pytest.fixture(scope="module")
def minilm_dir():
    return real_model_dir()


@pytest.fixture(scope="module")
def converted_minilm(minilm_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("minilm_bert"))
    assert run_main(hf_model_dir=minilm_dir, output_dir=out) == 0
    return out


def encode_batch(tokenizer, pairs):
    """int arrays (ids, mask, types) [B, S] of [CLS] a [SEP] (b [SEP]), padded to the longest."""
    encoded = [tokenization.encode_pair(tokenizer, a, b, 128) for a, b in pairs]
    length = max(sum(e.input_mask) for e in encoded)
    return tuple(np.array([getattr(e, name)[:length] for e in encoded])
                 for name in ("input_ids", "input_mask", "segment_ids"))


def test_real_weights_give_huggingface_outputs(minilm_dir, converted_minilm):
    tf.random.set_seed(0)
    torch.manual_seed(0)
    config = modeling.BertConfig.from_json_file(os.path.join(converted_minilm, "bert_config.json"))
    model = modeling.BertModel(config)
    hf_names = safetensors.numpy.load_file(os.path.join(minilm_dir, "model.safetensors"))
    has_pooler = any(name.startswith(("pooler.", "bert.pooler.")) for name in hf_names)
    loaded, missing, unused = checkpoints.restore(
        checkpoints.named_variables(model), os.path.join(converted_minilm, "bert_model.ckpt"),
        strict_missing=has_pooler)
    assert not unused
    if has_pooler:
        assert not missing
    else:
        assert missing == ["bert/pooler/dense/bias", "bert/pooler/dense/kernel"]

    torch_model = transformers.BertModel.from_pretrained(minilm_dir).eval()
    # Our tokenizer, token-for-token identical to HF's on text like these sentences (it differs
    # only on private-use and newly assigned characters: tests/test_tokenization.py), with the
    # real vocabulary. (transformers 5's BertTokenizerFast(vocab_file=...) ignores the file and
    # builds a 5-entry vocabulary: every token would be [UNK].)
    tokenizer = tokenization.FullTokenizer(os.path.join(converted_minilm, "vocab.txt"))
    worst = {}
    for pairs in ([(s, None) for s in SENTENCES], PAIRS):
        ids, mask, types = encode_batch(tokenizer, pairs)
        assert mask.min() == 0 and mask.max() == 1  # the batch is padded
        unk = tokenizer.vocab["[UNK]"]
        assert len(set(ids[mask == 1].tolist())) > 20 and np.mean(ids[mask == 1] == unk) < 0.01
        ours = model(tf.constant(ids, tf.int32), tf.constant(mask, tf.int32),
                     tf.constant(types, tf.int32), training=False)
        with torch.no_grad():
            theirs = torch_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                                 token_type_ids=torch.tensor(types), output_hidden_states=True)
        hidden = [h.numpy() for h in theirs.hidden_states]
        diffs = {"embedding_output": max_diff_on_real_positions(ours.embedding_output, hidden[0],
                                                                mask)}
        assert len(ours.all_encoder_layers) == len(hidden) - 1 == config.num_hidden_layers
        for i, layer in enumerate(ours.all_encoder_layers):
            diffs[f"layer_{i}"] = max_diff_on_real_positions(layer, hidden[i + 1], mask)
        diffs["sequence_output"] = max_diff_on_real_positions(
            ours.sequence_output, theirs.last_hidden_state.numpy(), mask)
        if has_pooler:
            diffs["pooled_output"] = float(np.max(np.abs(
                ours.pooled_output.numpy() - theirs.pooler_output.numpy())))
        for key, value in diffs.items():
            worst[key] = max(worst.get(key, 0.0), value)
    print("\nreal MiniLM weights, max abs difference to HuggingFace (real positions):")
    for key, value in worst.items():
        print(f"  {key:18s} {value:.3e}")
    if not has_pooler:
        print("  (the HF checkpoint has no pooler weights; pooled output not compared)")
    assert max(worst.values()) <= TOLERANCE, worst


def test_real_weights_names_and_shapes_are_the_originals(converted_minilm):
    config = modeling.BertConfig.from_json_file(os.path.join(converted_minilm, "bert_config.json"))
    with open(os.path.join(converted_minilm, "bert_config.json")) as f:
        assert sorted(json.load(f)) == sorted(convert.BERT_CONFIG_KEYS)
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size,
            config.vocab_size, config.hidden_act) == (384, 6, 1536, 30522, "gelu")
    expected = {name: v.shape.as_list()
                for name, v in checkpoints.named_variables(modeling.BertModel(config)).items()}
    listed = dict(checkpoints.list_variables(os.path.join(converted_minilm, "bert_model.ckpt")))
    assert listed == expected
    # [in, out] kernels
    assert listed["bert/encoder/layer_0/intermediate/dense/kernel"] == [384, 1536]
    assert listed["bert/encoder/layer_0/output/dense/kernel"] == [1536, 384]
    assert sorted(os.listdir(converted_minilm)) == [
        "bert_config.json", "bert_model.ckpt.data-00000-of-00001", "bert_model.ckpt.index",
        "vocab.txt"]
    with open(os.path.join(real_model_dir(), "vocab.txt"), "rb") as a, \
            open(os.path.join(converted_minilm, "vocab.txt"), "rb") as b:
        assert a.read() == b.read()


def assert_same_tensors(original, round_tripped, dropped=()):
    expected = {k: v for k, v in original.items() if k not in dropped}
    assert sorted(round_tripped) == sorted(expected)
    for name, array in expected.items():
        other = round_tripped[name]
        assert other.dtype == array.dtype and other.shape == array.shape, name
        assert other.tobytes() == array.tobytes(), name


def test_real_weights_round_trip_is_byte_identical(minilm_dir, converted_minilm, tmp_path):
    out = str(tmp_path / "hf")
    assert run_main(direction="bert_to_hf",
                    init_checkpoint=os.path.join(converted_minilm, "bert_model.ckpt"),
                    bert_config_file=os.path.join(converted_minilm, "bert_config.json"),
                    vocab_file=os.path.join(converted_minilm, "vocab.txt"), output_dir=out) == 0
    original = safetensors.numpy.load_file(os.path.join(minilm_dir, "model.safetensors"))
    round_tripped = safetensors.numpy.load_file(os.path.join(out, "model.safetensors"))
    assert_same_tensors(original, round_tripped, dropped=["embeddings.position_ids"])
    with open(os.path.join(out, "config.json")) as f:
        hf_config = json.load(f)
    assert hf_config["architectures"] == ["BertModel"] and hf_config["model_type"] == "bert"
    assert hf_config["layer_norm_eps"] == 1e-12
    assert convert.bert_config_from_hf(hf_config) == modeling.BertConfig.from_json_file(
        os.path.join(converted_minilm, "bert_config.json"))
    # HuggingFace loads the written directory with nothing missing or left over.
    _, info = transformers.BertModel.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info


# -- A tiny random BertForPreTraining: the MLM and NSP heads ------------------------------------------

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)


def write_vocab(path, size=TINY["vocab_size"]):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [f"tok{i}" for i in range(size - len(tokens))]
    path.write_text("".join(t + "\n" for t in tokens))
    return str(path)


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    """(directory saved with save_pretrained, torch model) with every parameter randomised."""
    torch.manual_seed(1234)
    model = transformers.BertForPreTraining(transformers.BertConfig(**TINY)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():  # biases and LayerNorms too, not just 0 and 1
            base = 1.0 if name.endswith("LayerNorm.weight") else 0.0
            p.copy_(base + 0.1 * torch.randn_like(p))
    directory = tmp_path_factory.mktemp("tiny_hf")
    model.save_pretrained(str(directory))
    write_vocab(directory / "vocab.txt")
    return str(directory), model


def tiny_inputs():
    rng = np.random.RandomState(7)
    ids = rng.randint(5, TINY["vocab_size"], (3, 10)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    types = np.zeros_like(ids)
    types[:, 5:] = 1
    positions = np.array([[1, 2, 5, 9], [0, 3, 4, 5], [1, 2, 2, 0]], np.int32)
    return ids, mask, types, positions


def assert_heads_match_torch(output_dir, torch_model):
    tf.random.set_seed(0)
    config = modeling.BertConfig.from_json_file(os.path.join(output_dir, "bert_config.json"))
    model = modeling.BertModel(config)
    mlm = modeling.MaskedLMHead(config, model.embedding_table)
    nsp = modeling.NextSentenceHead(config)
    _, missing, unused = checkpoints.restore(
        checkpoints.named_variables(model, mlm, nsp), os.path.join(output_dir, "bert_model.ckpt"),
        strict_missing=True)
    assert not missing and not unused
    ids, mask, types, positions = tiny_inputs()
    outputs = model(tf.constant(ids), tf.constant(mask), tf.constant(types), training=False)
    mlm_logits = mlm(outputs.sequence_output, tf.constant(positions)).numpy()
    nsp_logits = nsp(outputs.pooled_output).numpy()
    with torch.no_grad():
        theirs = torch_model(input_ids=torch.tensor(ids, dtype=torch.long),
                             attention_mask=torch.tensor(mask, dtype=torch.long),
                             token_type_ids=torch.tensor(types, dtype=torch.long))
    their_mlm = np.take_along_axis(theirs.prediction_logits.numpy(), positions[..., None], axis=1)
    mlm_diff = float(np.max(np.abs(mlm_logits - their_mlm)))
    nsp_diff = float(np.max(np.abs(nsp_logits - theirs.seq_relationship_logits.numpy())))
    print(f"\ntiny BertForPreTraining ({os.path.basename(output_dir)}): max abs difference "
          f"MLM logits {mlm_diff:.3e}, NSP logits {nsp_diff:.3e}")
    assert mlm_diff <= TOLERANCE and nsp_diff <= TOLERANCE


def test_heads_from_safetensors_match_torch(tiny_hf, tmp_path):
    directory, torch_model = tiny_hf
    out = str(tmp_path / "from_safetensors")
    report = convert.convert_hf_to_bert(out, hf_model_dir=directory)
    assert report.groups == {"pooler", "mlm", "nsp"}
    assert not report.unknown and not report.warnings
    assert_heads_match_torch(out, torch_model)


def test_a_token_classifier_converts_to_run_ner_s_model(tmp_path):
    """HF BertForTokenClassification's classifier.* map to output_weights / output_bias, the names
    of modeling.BertTokenClassifier (run_ner.py): the converted model gives HF's logits per token
    (it has no pooler, which the tagger does not use)."""
    torch.manual_seed(5)
    hf_model = transformers.BertForTokenClassification(
        transformers.BertConfig(num_labels=5, **TINY)).eval()
    with torch.no_grad():
        for name, p in hf_model.named_parameters():
            p.copy_((1.0 if name.endswith("LayerNorm.weight") else 0.0) + 0.1 * torch.randn_like(p))
    hf_model.save_pretrained(str(tmp_path / "hf"))
    write_vocab(tmp_path / "hf" / "vocab.txt")
    report = convert.convert_hf_to_bert(str(tmp_path / "out"), hf_model_dir=str(tmp_path / "hf"))
    assert report.groups == {"classifier"}
    config = modeling.BertConfig.from_json_file(str(tmp_path / "out" / "bert_config.json"))
    model = modeling.BertTokenClassifier(config, 5)
    _, missing, unused = checkpoints.restore(checkpoints.named_variables(model),
                                             str(tmp_path / "out" / "bert_model.ckpt"))
    assert missing == ["bert/pooler/dense/bias", "bert/pooler/dense/kernel"] and not unused
    ids, mask, types, _ = tiny_inputs()
    ours = model(dict(input_ids=tf.constant(ids), input_mask=tf.constant(mask),
                      segment_ids=tf.constant(types))).numpy()
    with torch.no_grad():
        theirs = hf_model(input_ids=torch.tensor(ids, dtype=torch.long),
                          attention_mask=torch.tensor(mask, dtype=torch.long),
                          token_type_ids=torch.tensor(types, dtype=torch.long)).logits.numpy()
    assert ours.shape == (3, 10, 5)
    assert max_diff_on_real_positions(ours, theirs, mask) <= TOLERANCE


def test_heads_from_pytorch_model_bin_match_torch(tiny_hf, tmp_path):
    directory, torch_model = tiny_hf
    weights = tmp_path / "bin" / "pytorch_model.bin"
    weights.parent.mkdir()
    state = torch_model.state_dict()
    # The state_dict carries the tied copies that save_pretrained leaves out.
    assert "cls.predictions.decoder.weight" in state and "cls.predictions.decoder.bias" in state
    torch.save(state, str(weights))
    out = str(tmp_path / "from_bin")
    report = convert.convert_hf_to_bert(
        out, hf_weights_file=str(weights), hf_config_file=os.path.join(directory, "config.json"),
        vocab_file=os.path.join(directory, "vocab.txt"))
    assert sorted(hf for hf, _ in report.tied) == ["cls.predictions.decoder.bias",
                                                   "cls.predictions.decoder.weight"]
    assert not report.unknown and not report.warnings
    assert_heads_match_torch(out, torch_model)


def test_heads_round_trip_is_byte_identical(tiny_hf, tmp_path):
    directory, _ = tiny_hf
    convert.convert_hf_to_bert(str(tmp_path / "bert"), hf_model_dir=directory)
    listed = dict(checkpoints.list_variables(str(tmp_path / "bert" / "bert_model.ckpt")))
    config = modeling.BertConfig(**TINY)
    model = modeling.BertModel(config)
    heads = (modeling.MaskedLMHead(config, model.embedding_table),
             modeling.NextSentenceHead(config))
    assert listed == {n: v.shape.as_list()
                      for n, v in checkpoints.named_variables(model, *heads).items()}
    report = convert.convert_bert_to_hf(str(tmp_path / "bert" / "bert_model.ckpt"),
                                        str(tmp_path / "bert" / "bert_config.json"),
                                        str(tmp_path / "hf"))
    assert report.architecture == "BertForPreTraining"
    assert_same_tensors(safetensors.numpy.load_file(os.path.join(directory, "model.safetensors")),
                        safetensors.numpy.load_file(str(tmp_path / "hf" / "model.safetensors")))
    _, info = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "hf"),
                                                              output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info


def test_output_written_through_tf_io_gfile(tiny_hf, tmp_path):
    """bert_to_hf into a directory tf.io.gfile reaches (ram:// here, gs:// in real use): the same
    files as on a local disk, and no temporary file left behind."""
    directory, _ = tiny_hf
    convert.convert_hf_to_bert(str(tmp_path / "bert"), hf_model_dir=directory)
    args = (str(tmp_path / "bert" / "bert_model.ckpt"), str(tmp_path / "bert" / "bert_config.json"))
    vocab = str(tmp_path / "bert" / "vocab.txt")
    convert.convert_bert_to_hf(*args, str(tmp_path / "local"), vocab_file=vocab)
    remote = "ram://convert_hf_checkpoint/hf"
    convert.convert_bert_to_hf(*args, remote, vocab_file=vocab)
    names = sorted(os.listdir(tmp_path / "local"))
    assert names == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    assert sorted(tf.io.gfile.listdir(remote)) == names
    for name in names:
        with tf.io.gfile.GFile(f"{remote}/{name}", "rb") as f:
            assert f.read() == (tmp_path / "local" / name).read_bytes(), name


def test_untied_decoder_weight_is_reported(tiny_hf, tmp_path):
    directory, torch_model = tiny_hf
    state = {k: v.clone() for k, v in torch_model.state_dict().items()}
    state["cls.predictions.decoder.weight"] += 1.0
    torch.save(state, str(tmp_path / "pytorch_model.bin"))
    report = convert.convert_hf_to_bert(
        str(tmp_path / "out"), hf_weights_file=str(tmp_path / "pytorch_model.bin"),
        hf_config_file=os.path.join(directory, "config.json"),
        vocab_file=os.path.join(directory, "vocab.txt"))
    assert len(report.warnings) == 1 and "cls.predictions.decoder.weight" in report.warnings[0]


# -- Errors and reports --------------------------------------------------------------------------------

def tiny_weights(tiny_hf):
    return safetensors.numpy.load_file(os.path.join(tiny_hf[0], "model.safetensors"))


def write_hf_dir(directory, weights, tiny_hf, **config_changes):
    directory.mkdir()
    safetensors.numpy.save_file(weights, str(directory / "model.safetensors"))
    with open(os.path.join(tiny_hf[0], "config.json")) as f:
        config = {**json.load(f), **config_changes}
    (directory / "config.json").write_text(json.dumps(config))
    write_vocab(directory / "vocab.txt")
    return str(directory)


def test_missing_encoder_weight_is_named(tiny_hf, tmp_path):
    weights = tiny_weights(tiny_hf)
    del weights["bert.encoder.layer.1.attention.self.key.weight"]
    source = write_hf_dir(tmp_path / "hf", weights, tiny_hf)
    with pytest.raises(convert.ConversionError) as e:
        convert.convert_hf_to_bert(str(tmp_path / "out"), hf_model_dir=source)
    message = str(e.value)
    assert "bert/encoder/layer_1/attention/self/key/kernel" in message
    assert "encoder.layer.1.attention.self.key.weight" in message
    assert "layer_1/attention/self/key/bias" not in message
    assert not os.path.exists(tmp_path / "out")  # nothing written


def test_shape_mismatch_is_named(tiny_hf, tmp_path):
    weights = tiny_weights(tiny_hf)
    weights["bert.encoder.layer.0.intermediate.dense.weight"] = np.zeros((36, 32), np.float32)
    source = write_hf_dir(tmp_path / "hf", weights, tiny_hf)
    with pytest.raises(convert.ConversionError,
                       match=r"bert\.encoder\.layer\.0\.intermediate\.dense\.weight: shape \[36, "
                             r"32\], expected \[37, 32\]"):
        convert.convert_hf_to_bert(str(tmp_path / "out"), hf_model_dir=source)


def test_incomplete_head_is_named(tiny_hf, tmp_path):
    weights = tiny_weights(tiny_hf)
    del weights["cls.seq_relationship.bias"]
    source = write_hf_dir(tmp_path / "hf", weights, tiny_hf)
    with pytest.raises(convert.ConversionError, match="cls/seq_relationship/output_bias"):
        convert.convert_hf_to_bert(str(tmp_path / "out"), hf_model_dir=source)


def test_layer_beyond_the_config_is_an_error(tiny_hf, tmp_path):
    source = write_hf_dir(tmp_path / "hf", tiny_weights(tiny_hf), tiny_hf, num_hidden_layers=1)
    with pytest.raises(convert.ConversionError, match=r"encoder\.layer\.1\..*layer 1 does not exist"):
        convert.convert_hf_to_bert(str(tmp_path / "out"), hf_model_dir=source)


def test_unknown_names_are_reported_not_dropped_silently(tiny_hf, tmp_path):
    weights = tiny_weights(tiny_hf)
    weights["bert.encoder.layer.0.attention.self.rotary.weight"] = np.zeros(3, np.float32)
    source = write_hf_dir(tmp_path / "hf", weights, tiny_hf)
    report = convert.convert_hf_to_bert(str(tmp_path / "out"), hf_model_dir=source)
    assert report.unknown == ["bert.encoder.layer.0.attention.self.rotary.weight"]
    assert any("rotary" in w for w in report.warnings)


def test_non_empty_output_dir_needs_overwrite(tiny_hf, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("keep me")
    assert run_script_command(convert, hf_model_dir=tiny_hf[0], output_dir=str(out)) == 1
    assert error_line(*capsys.readouterr()).startswith(
        f"ERROR: --output_dir {out} is not empty; pass --overwrite")
    assert sorted(os.listdir(out)) == ["something"]
    assert run_main(hf_model_dir=tiny_hf[0], output_dir=str(out), overwrite="true") == 0
    assert (out / "something").read_text() == "keep me"
    assert (out / "bert_model.ckpt.index").exists()


def test_bert_to_hf_missing_weight_is_named(tiny_hf, tmp_path):
    convert.convert_hf_to_bert(str(tmp_path / "bert"), hf_model_dir=tiny_hf[0])
    tensors = checkpoints.read(str(tmp_path / "bert" / "bert_model.ckpt"))
    del tensors["bert/embeddings/token_type_embeddings"]
    tensors["global_step"] = np.int64(10)
    tensors["bert/pooler/dense/kernel/adam_m"] = np.zeros((32, 32), np.float32)
    checkpoints.save(str(tmp_path / "partial" / "model.ckpt-10"), tensors)
    with pytest.raises(convert.ConversionError, match="bert/embeddings/token_type_embeddings"):
        convert.convert_bert_to_hf(str(tmp_path / "partial" / "model.ckpt-10"),
                                   str(tmp_path / "bert" / "bert_config.json"),
                                   str(tmp_path / "hf"))


@pytest.mark.parametrize("changes, fragment", [
    ({"model_type": "roberta"}, "model_type 'roberta'"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
    ({"hidden_act": "silu"}, "hidden_act 'silu'"),
    ({"layer_norm_eps": 1e-5}, "layer_norm_eps"),
    ({"is_decoder": True}, "is_decoder"),
])
def test_unsupported_hf_configs_fail_clearly(changes, fragment):
    base = {"model_type": "bert", **TINY}
    with pytest.raises(convert.ConversionError, match=fragment):
        convert.bert_config_from_hf({**base, **changes})


@pytest.mark.parametrize("hf_act, ours", [("gelu", "gelu"), ("gelu_new", "gelu_new"),
                                          ("gelu_pytorch_tanh", "gelu_new"), ("relu", "relu")])
def test_activation_mapping(hf_act, ours):
    config = convert.bert_config_from_hf({"model_type": "bert", "hidden_act": hf_act, **TINY})
    assert config.hidden_act == ours
    assert sorted(config.to_dict()) == sorted(convert.BERT_CONFIG_KEYS)
