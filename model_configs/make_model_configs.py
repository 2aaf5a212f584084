"""Writes model_configs/: the bert_config.json of each of the 24 compact BERT models.

Google released 24 uncased English BERT models of L = 2, 4, 6, 8, 10 or 12 layers and hidden size
H = 128, 256, 512 or 768 with "Well-Read Students Learn Better" (Turc et al., 2019), named
uncased_L-{L}_H-{H}_A-{H/64}: H/64 attention heads (64 values per head), feed-forward size 4H,
the uncased vocabulary of BERT-Base (30,522 pieces), 512 positions, 2 token types, GELU, dropout
0.1 on hidden states and attention probabilities, weights initialised with standard deviation
0.02. Each file here, <name>.json, holds those values in the layout modeling.BertConfig writes
(sorted keys, indented by 2), so run_pretraining.py can pretrain a compact model from scratch
with the architecture of the release:

    python3 run_pretraining.py --bert_config_file=model_configs/uncased_L-4_H-256_A-4.json ...

Deterministic; tests/test_model_configs.py checks the files against this script.

    python3 model_configs/make_model_configs.py [--output_dir model_configs]
"""
import argparse
import json
import os

LAYERS = (2, 4, 6, 8, 10, 12)
HIDDEN_SIZES = (128, 256, 512, 768)
# The sizes the paper and the release name.
NAMES = {(2, 128): "BERT-Tiny", (4, 256): "BERT-Mini", (4, 512): "BERT-Small",
         (8, 512): "BERT-Medium", (12, 768): "BERT-Base"}


def model_name(layers, hidden_size):
    return f"uncased_L-{layers}_H-{hidden_size}_A-{hidden_size // 64}"


def config(layers, hidden_size):
    """The released bert_config.json's values for L = `layers`, H = `hidden_size`."""
    return {
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": 4 * hidden_size,
        "max_position_embeddings": 512,
        "num_attention_heads": hidden_size // 64,
        "num_hidden_layers": layers,
        "type_vocab_size": 2,
        "vocab_size": 30522,
    }


def config_text(layers, hidden_size):
    """The file's text: modeling.BertConfig.to_json_string's layout."""
    return json.dumps(config(layers, hidden_size), indent=2, sort_keys=True) + "\n"


def files():
    """{file name: text} of the 24 configs."""
    return {f"{model_name(layers, hidden)}.json": config_text(layers, hidden)
            for layers in LAYERS for hidden in HIDDEN_SIZES}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()
    for name, text in files().items():
        with open(os.path.join(args.output_dir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    print(f"Wrote {len(files())} configs to {args.output_dir}")


if __name__ == "__main__":
    main()
