"""The original create_pretraining_data algorithm, done the original way: the peer for the tests
and for benchmarks/pretraining_data_speed.py.

Like the original script it reads the whole corpus into memory, tokenizes it into string tokens
with a direct port of the tokenizer (`_reference_tokenizer`), makes `dupe_factor` passes of
instances over all documents on one core, shuffles them all, and writes them with
`tf.train.Example` and `tf.io.TFRecordWriter`, drawing its random numbers in the original's order
(including the full shuffle of the masking candidates). It exists to be compared with, not used:
keep it obviously faithful rather than fast.
"""
import random

import _reference_tokenizer


def read_documents(input_files, tokenizer):
    documents = [[]]
    for path in input_files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    documents.append([])
                tokens = tokenizer.tokenize(line)
                if tokens:
                    documents[-1].append(tokens)
    return [d for d in documents if d]


def create_instances(documents, vocab_words, rng, max_seq_length=128, dupe_factor=10,
                     short_seq_prob=0.1, masked_lm_prob=0.15, max_predictions_per_seq=20,
                     do_whole_word_mask=False):
    """All instances as dicts with string tokens, shuffled."""
    rng.shuffle(documents)
    instances = []
    for _ in range(dupe_factor):
        for index in range(len(documents)):
            instances.extend(_from_document(
                documents, index, vocab_words, rng, max_seq_length, short_seq_prob,
                masked_lm_prob, max_predictions_per_seq, do_whole_word_mask))
    rng.shuffle(instances)
    return instances


def _from_document(documents, index, vocab_words, rng, max_seq_length, short_seq_prob,
                   masked_lm_prob, max_predictions_per_seq, do_whole_word_mask):
    document = documents[index]
    max_num_tokens = max_seq_length - 3
    target = max_num_tokens
    if rng.random() < short_seq_prob:
        target = rng.randint(2, max_num_tokens)
    instances = []
    chunk = []
    length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            a_end = 1
            if len(chunk) >= 2:
                a_end = rng.randint(1, len(chunk) - 1)
            tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
            tokens_b = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random_next = True
                for _ in range(10):
                    other = rng.randint(0, len(documents) - 1)
                    if other != index:
                        break
                other_document = documents[other]
                for j in range(rng.randint(0, len(other_document) - 1), len(other_document)):
                    tokens_b.extend(other_document[j])
                    if len(tokens_b) >= target - len(tokens_a):
                        break
                i -= len(chunk) - a_end
            else:
                is_random_next = False
                tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
            while len(tokens_a) + len(tokens_b) > max_num_tokens:
                longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
                if rng.random() < 0.5:
                    del longer[0]
                else:
                    longer.pop()
            tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
            segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
            tokens, positions, labels = _mask(tokens, vocab_words, rng, masked_lm_prob,
                                              max_predictions_per_seq, do_whole_word_mask)
            instances.append(dict(tokens=tokens, segment_ids=segment_ids,
                                  is_random_next=is_random_next, masked_lm_positions=positions,
                                  masked_lm_labels=labels))
            chunk = []
            length = 0
        i += 1
    return instances


def _mask(tokens, vocab_words, rng, masked_lm_prob, max_predictions_per_seq, do_whole_word_mask):
    candidates = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if do_whole_word_mask and candidates and token.startswith("##"):
            candidates[-1].append(i)
        else:
            candidates.append([i])
    rng.shuffle(candidates)
    output = list(tokens)
    num_to_predict = min(max_predictions_per_seq,
                         max(1, int(round(len(tokens) * masked_lm_prob))))
    masked = []
    for group in candidates:
        if len(masked) >= num_to_predict:
            break
        if len(masked) + len(group) > num_to_predict:
            continue
        for i in group:
            if rng.random() < 0.8:
                replacement = "[MASK]"
            elif rng.random() < 0.5:
                replacement = tokens[i]
            else:
                replacement = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            output[i] = replacement
            masked.append((i, tokens[i]))
    masked.sort()
    return output, [i for i, _ in masked], [label for _, label in masked]


def write_instances(instances, vocab, max_seq_length, max_predictions_per_seq, output_files):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    writers = [tf.io.TFRecordWriter(path) for path in output_files]
    for n, instance in enumerate(instances):
        ids = [vocab[t] for t in instance["tokens"]]
        pad = max_seq_length - len(ids)
        positions = instance["masked_lm_positions"]
        label_ids = [vocab[t] for t in instance["masked_lm_labels"]]
        pad_p = max_predictions_per_seq - len(positions)
        features = {
            "input_ids": ints(ids + [0] * pad),
            "input_mask": ints([1] * len(ids) + [0] * pad),
            "segment_ids": ints(instance["segment_ids"] + [0] * pad),
            "masked_lm_positions": ints(positions + [0] * pad_p),
            "masked_lm_ids": ints(label_ids + [0] * pad_p),
            "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(
                value=[1.0] * len(positions) + [0.0] * pad_p)),
            "next_sentence_labels": ints([1 if instance["is_random_next"] else 0]),
        }
        example = tf.train.Example(features=tf.train.Features(feature=features))
        writers[n % len(writers)].write(example.SerializeToString())
    for writer in writers:
        writer.close()


def run(input_files, output_files, vocab_file, do_lower_case=True, random_seed=12345,
        tokenizer=None, **settings):
    """The whole script: returns the instances it wrote."""
    tokenizer = tokenizer or _reference_tokenizer.ReferenceFullTokenizer(vocab_file, do_lower_case)
    vocab = _reference_tokenizer.load_vocab(vocab_file)
    rng = random.Random(random_seed)
    documents = read_documents(input_files, tokenizer)
    instances = create_instances(documents, list(vocab), rng, **settings)
    write_instances(instances, vocab, settings.get("max_seq_length", 128),
                    settings.get("max_predictions_per_seq", 20), output_files)
    return instances
