"""The demo: pretrain a BERT-Tiny-sized model on the bundled corpus, evaluate it, reuse it.

What it does, all on the CPU in a few minutes:
  1. builds a vocabulary from data/demo_corpus.txt (every word the BasicTokenizer finds, plus single
     characters and `##` characters so any text still tokenizes) and a BERT config;
  2. makes masked-LM + next-sentence examples from the corpus (documents split 90/10 into train and
     held-out), with the original masking recipe (15% of tokens, 80% [MASK] / 10% random / 10% kept);
  3. pretrains with the shared runner (training.py), writing original-name checkpoints;
  4. evaluates masked-LM and next-sentence accuracy on the held-out documents, against the baseline of
     always predicting the most frequent masked token;
  5. loads the checkpoint into a fresh model through the --init_checkpoint path and fills in blanks.

The pretraining issue replaces steps 1-2 with create_vocab.py and create_pretraining_data.py.

    python3 demo.py [--output_dir=demo_output] [--num_train_steps=1500] [--precision=bfloat16]
"""
import collections
import os
import random
import sys

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

import checkpoints
import modeling
import optimization
import tokenization
import training

flags.DEFINE_string("corpus", os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                                           "demo_corpus.txt"), "One sentence per line, blank "
                    "lines between documents.")
flags.DEFINE_string("output_dir", "demo_output", "Where the vocab, config and checkpoints go.")
flags.DEFINE_integer("num_train_steps", 1500, "Pretraining steps.")
flags.DEFINE_integer("train_batch_size", 32, "Examples per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate (BERT-Tiny likes a large one).")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision.")
flags.DEFINE_integer("random_seed", 12345, "Seed for data and initialisation.")
FLAGS = flags.FLAGS

MAX_SEQ_LENGTH = 64
MAX_PREDICTIONS = 8
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def read_documents(path):
    documents, current = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                current.append(line.strip())
            elif current:
                documents.append(current)
                current = []
    if current:
        documents.append(current)
    return documents


def write_vocab(documents, path):
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    words = collections.Counter(w for d in documents for s in d for w in basic.tokenize(s))
    chars = sorted({c for w in words for c in w})
    vocab = SPECIAL + sorted(words) + [c for c in chars if c not in words] + ["##" + c for c in chars]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")


def make_examples(documents, tokenizer, rng):
    """One example per sentence: [CLS] A [SEP] B [SEP], B the next sentence or a random one."""
    vocab = tokenizer.vocab
    examples = []
    for d, doc in enumerate(documents):
        for i in range(len(doc) - 1):
            is_random = rng.random() < 0.5
            if is_random and len(documents) > 1:
                other = rng.randrange(len(documents) - 1)  # any document but this one
                b = rng.choice(documents[other + (other >= d)])
            else:
                is_random, b = False, doc[i + 1]
            tokens = ["[CLS]"] + tokenizer.tokenize(doc[i]) + ["[SEP]"]
            segment_b = tokenizer.tokenize(b) + ["[SEP]"]
            segments = [0] * len(tokens) + [1] * len(segment_b)
            tokens = (tokens + segment_b)[:MAX_SEQ_LENGTH]
            examples.append(mask_example(tokens, segments[:len(tokens)], int(is_random), vocab, rng))
    return examples


def mask_example(tokens, segments, is_random, vocab, rng):
    candidates = [i for i, t in enumerate(tokens) if t not in ("[CLS]", "[SEP]")]
    rng.shuffle(candidates)
    n = min(MAX_PREDICTIONS, max(1, round(len(tokens) * 0.15)))
    positions = sorted(candidates[:n])
    ids = [vocab[t] for t in tokens]
    labels = [ids[p] for p in positions]
    for p in positions:
        roll = rng.random()
        if roll < 0.8:
            ids[p] = vocab["[MASK]"]
        elif roll < 0.9:
            ids[p] = rng.randrange(len(SPECIAL), len(vocab))
    pad, pad_p = MAX_SEQ_LENGTH - len(ids), MAX_PREDICTIONS - len(positions)
    return dict(input_ids=ids + [0] * pad, input_mask=[1] * len(ids) + [0] * pad,
                segment_ids=segments + [0] * pad, masked_lm_positions=positions + [0] * pad_p,
                masked_lm_ids=labels + [0] * pad_p,
                masked_lm_weights=[1.0] * len(positions) + [0.0] * pad_p,
                next_sentence_labels=is_random)


def to_arrays(examples):
    return {k: np.array([e[k] for e in examples],
                        np.float32 if k == "masked_lm_weights" else np.int32) for k in examples[0]}


def fill_in(model, tokenizer, sentence):
    # BasicTokenizer splits "[MASK]" like any bracketed text, so tokenize around it.
    before, after = sentence.split("[MASK]")
    tokens = ["[CLS]"] + tokenizer.tokenize(before) + ["[MASK]"] + tokenizer.tokenize(after) \
        + ["[SEP]"]
    position = tokens.index("[MASK]")
    ids = tf.constant([tokenizer.convert_tokens_to_ids(tokens)])
    out = model.bert(ids)
    logits = model.mlm(out.sequence_output, tf.constant([[position]]))[0, 0].numpy()
    return tokenizer.convert_ids_to_tokens(np.argsort(-logits)[:3].tolist())


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    tf.random.set_seed(FLAGS.random_seed)
    rng = random.Random(FLAGS.random_seed)
    out = FLAGS.output_dir
    tf.io.gfile.makedirs(out)
    documents = read_documents(FLAGS.corpus)
    rng.shuffle(documents)
    held_out = max(1, len(documents) // 10)
    vocab_file, config_file = os.path.join(out, "vocab.txt"), os.path.join(out, "bert_config.json")
    write_vocab(documents, vocab_file)
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    config = modeling.BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=128,
                                 num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                                 max_position_embeddings=MAX_SEQ_LENGTH, type_vocab_size=2)
    config.to_json_file(config_file)
    train = to_arrays(make_examples(documents[held_out:], tokenizer, rng))
    evaluation = to_arrays(make_examples(documents[:held_out], tokenizer, rng))
    print(f"[1-2] {len(documents)} documents -> {len(train['input_ids'])} training and "
          f"{len(evaluation['input_ids'])} held-out examples; vocab of {len(tokenizer.vocab)}")

    dtype = tf.bfloat16 if FLAGS.precision == "bfloat16" else tf.float32
    runner = training.Runner(training.make_strategy(),
                             lambda: modeling.BertPretrainer(config, dtype), out)

    def dataset_fn(ctx):
        batch = training.per_replica_batch_size(ctx, FLAGS.train_batch_size)
        return (tf.data.Dataset.from_tensor_slices(train).repeat()
                .shuffle(10000, seed=FLAGS.random_seed).batch(batch, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE))

    steps = FLAGS.num_train_steps
    run_config = training.TrainConfig(num_train_steps=steps,
                                      train_batch_size=FLAGS.train_batch_size,
                                      iterations_per_loop=100, save_checkpoints_steps=500)
    optimizer = optimization.create_optimizer(FLAGS.learning_rate, steps, steps // 10)
    runner.train(run_config, modeling.pretraining_loss, dataset_fn, optimizer)

    results = runner.evaluate(modeling.pretraining_metrics, tf.data.Dataset.from_tensor_slices(evaluation).batch(64))
    labels = evaluation["masked_lm_ids"][evaluation["masked_lm_weights"] > 0]
    token, count = collections.Counter(labels.tolist()).most_common(1)[0]
    baseline = count / len(labels)
    print(f"[3-4] held-out masked-LM accuracy {results['masked_lm_accuracy']:.3f} (always "
          f"predicting the most frequent token {tokenizer.inv_vocab[token]!r}: {baseline:.3f}); "
          f"next-sentence accuracy {results['next_sentence_accuracy']:.3f} (chance: 0.5)")
    training.write_results(os.path.join(out, "eval_results.txt"),
                           dict(results, masked_lm_baseline=baseline,
                                global_step=int(runner.global_step.numpy())))

    fresh = modeling.BertPretrainer(config)
    checkpoints.restore(modeling.named_variables(fresh), out, log_each=False)
    print("[5] reloaded the checkpoint into a fresh model; it fills in:")
    for sentence in ("Nora works as a [MASK] in Riverton.", "The road from Ashford to Yarrow is "
                     "long and [MASK].", "On Friday the baker starts work before six [MASK]."):
        print(f"      {sentence}  ->  {fill_in(fresh, tokenizer, sentence)}")
    print(f"Outputs in {os.path.abspath(out)}: vocab.txt, bert_config.json, "
          f"{os.path.basename(tf.train.latest_checkpoint(out))}.*, eval_results.txt, TensorBoard "
          "events")
    return 0 if results["masked_lm_accuracy"] > baseline else 1


if __name__ == "__main__":
    sys.exit(app.run(main))
