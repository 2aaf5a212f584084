"""model_configs/: the bert_config.json of the 24 compact BERT models (Turc et al., 2019)."""
import json
import os
import sys

import pytest

import checkpoints
import modeling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, "model_configs")
sys.path.insert(0, CONFIGS)
import make_model_configs  # noqa: E402  pylint: disable=wrong-import-position


def test_the_files_are_what_the_script_writes():
    expected = make_model_configs.files()
    present = sorted(name for name in os.listdir(CONFIGS) if name.endswith(".json"))
    assert present == sorted(expected) and len(present) == 24
    for name, text in expected.items():
        with open(os.path.join(CONFIGS, name), encoding="utf-8", newline="") as f:
            assert f.read() == text, name


@pytest.mark.parametrize("layers", make_model_configs.LAYERS)
@pytest.mark.parametrize("hidden", make_model_configs.HIDDEN_SIZES)
def test_each_config_reads_as_the_released_architecture(layers, hidden):
    name = f"uncased_L-{layers}_H-{hidden}_A-{hidden // 64}"
    path = os.path.join(CONFIGS, name + ".json")
    config = modeling.BertConfig.from_json_file(path)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size) == (layers, hidden, hidden // 64, 4 * hidden)
    assert (config.vocab_size, config.max_position_embeddings, config.type_vocab_size,
            config.hidden_act) == (30522, 512, 2, "gelu")
    assert (config.hidden_dropout_prob, config.attention_probs_dropout_prob,
            config.initializer_range) == (0.1, 0.1, 0.02)
    assert config.extra == {}
    with open(path, encoding="utf-8") as f:
        assert config.to_json_string() == f.read()   # the layout BertConfig writes
        f.seek(0)
        assert json.load(f) == config.to_dict()


@pytest.mark.parametrize("name, millions", [("BERT-Tiny", 4.4), ("BERT-Mini", 11.3),
                                            ("BERT-Small", 29.1), ("BERT-Medium", 41.7)])
def test_the_named_sizes_have_the_published_parameter_counts(name, millions):
    """The parameter counts published for the released models (with the pretraining heads, as
    their checkpoints hold them)."""
    (layers, hidden), = [size for size, n in make_model_configs.NAMES.items() if n == name]
    config = modeling.BertConfig.from_json_file(
        os.path.join(CONFIGS, f"{make_model_configs.model_name(layers, hidden)}.json"))
    count = checkpoints.count_parameters(modeling.BertPretrainer(config))
    assert round(count / 1e6, 1) == millions
