"""Writes data/demo_classification/, a small GLUE-format task: real sentences or shuffled words?

Label 1: a sentence as data/make_demo_corpus.py writes it. Label 0: such a sentence with its words
in a random order (its final punctuation stays at the end, the new first word is capitalised and
the old one lower-cased unless it is a name, town or day, so that case gives nothing away; a
shuffle is redrawn until it differs from the sentence). Labels are drawn 50/50 per sentence.

The sentences come from `make_demo_corpus.document` with another seed than the pretraining corpus
(data/demo_corpus.txt, seed 7), so the task is not the pretraining text itself (its templates
are shared, so some short sentences occur in both). No sentence occurs twice, within a file or
across files.

A transfer set for distillation (run_classifier.py --do_label_transfer) is drawn from the
pretraining corpus, data/demo_corpus.txt: distinct sentences of 3 or more words that are not in
train, dev or test, each kept or shuffled 50/50 as above (another random stream), without labels.

Files are in the SST-2 layout, so `run_classifier.py --task_name=sst-2` reads them (the generic
task does too, with --text_a_column=sentence --label_column=label):
  train.tsv, dev.tsv   header "sentence<TAB>label", then one sentence and its label per line
  test.tsv             header "index<TAB>sentence", no labels
  transfer.tsv         header "sentence", one sentence per line, no labels

Deterministic: the same seed and sizes write the same files.

    python data/make_demo_classification.py [--seed 2024] [--train 2000 --dev 500 --test 500]
        [--transfer 4000] [--output_dir data/demo_classification]
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_demo_corpus  # noqa: E402

PROPER_NOUNS = frozenset(make_demo_corpus.FIRST) | frozenset(make_demo_corpus.TOWNS) \
    | frozenset(make_demo_corpus.DAYS)
FINAL_PUNCTUATION = ".!?"


def unique_sentences(r, count):
    """`count` distinct corpus sentences, in the order the generator first produces them."""
    seen, sentences = set(), []
    while len(sentences) < count:
        for sentence in make_demo_corpus.document(r):
            if sentence not in seen and len(sentence.split()) >= 3:
                seen.add(sentence)
                sentences.append(sentence)
    return sentences[:count]


def shuffle_words(r, sentence):
    """The sentence's words in another order; final punctuation kept last, case fixed up."""
    end = sentence[-1] if sentence[-1] in FINAL_PUNCTUATION else ""
    words = (sentence[:-1] if end else sentence).split()
    if words[0] not in PROPER_NOUNS:
        words[0] = words[0][0].lower() + words[0][1:]
    if len(set(words)) < 2:
        raise ValueError(f"cannot shuffle {sentence!r}: fewer than two different words")
    original = list(words)
    while words == original:
        r.shuffle(words)
    words[0] = words[0][0].upper() + words[0][1:]
    return " ".join(words) + end


def labelled(r, sentences):
    """[(text, label)]: each sentence as it is (1) or shuffled (0), 50/50."""
    rows = []
    for sentence in sentences:
        if r.random() < 0.5:
            rows.append((sentence, 1))
        else:
            rows.append((shuffle_words(r, sentence), 0))
    return rows


def write_tsv(path, header, rows):
    """Writes a header and rows, tab-separated, under a temporary name renamed when complete."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(v) for v in row) + "\n")
    os.replace(tmp, path)


def make_splits(seed, sizes):
    """{split: [(text, label)]} for sizes {split: count}, in the order train, dev, test."""
    r = random.Random(seed)
    sentences = unique_sentences(r, sum(sizes.values()))
    r.shuffle(sentences)
    splits, start = {}, 0
    for split, size in sizes.items():
        splits[split] = labelled(r, sentences[start:start + size])
        start += size
    return splits


def transfer_set(seed, count, corpus_path, exclude):
    """`count` unlabelled texts from the corpus file, sentences of `exclude` left out: each
    sentence as it is or shuffled, 50/50."""
    with open(corpus_path, encoding="utf-8") as f:
        sentences = list(dict.fromkeys(line.strip() for line in f))
    sentences = [s for s in sentences if len(s.split()) >= 3 and s not in exclude]
    if len(sentences) < count:
        raise ValueError(f"{corpus_path} has only {len(sentences)} new sentences of 3 or more "
                         f"words, not {count}")
    r = random.Random(seed + 1)
    r.shuffle(sentences)
    return [(text,) for text, _ in labelled(r, sentences[:count])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--dev", type=int, default=500)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--transfer", type=int, default=4000)
    parser.add_argument("--corpus", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "demo_corpus.txt"))
    parser.add_argument("--output_dir", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "demo_classification"))
    args = parser.parse_args()
    splits = make_splits(args.seed, {"train": args.train, "dev": args.dev, "test": args.test})
    os.makedirs(args.output_dir, exist_ok=True)
    for split in ("train", "dev"):
        write_tsv(os.path.join(args.output_dir, f"{split}.tsv"), ("sentence", "label"),
                  splits[split])
    write_tsv(os.path.join(args.output_dir, "test.tsv"), ("index", "sentence"),
              [(i, text) for i, (text, _) in enumerate(splits["test"])])
    for split, rows in splits.items():
        real = sum(label for _, label in rows)
        print(f"{split}: {len(rows)} sentences, {real} real, {len(rows) - real} shuffled")
    # The task's sentences as written (a label-0 text is a shuffle of one of them).
    written = set(unique_sentences(random.Random(args.seed), sum(map(len, splits.values()))))
    transfer = transfer_set(args.seed, args.transfer, args.corpus, written)
    write_tsv(os.path.join(args.output_dir, "transfer.tsv"), ("sentence",), transfer)
    print(f"transfer: {len(transfer)} unlabelled sentences from {args.corpus}")
    print(f"wrote {args.output_dir}")


if __name__ == "__main__":
    main()
