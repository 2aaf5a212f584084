"""Random model inputs for the benchmarks that time the real training path."""
import numpy as np


def pretraining_batch(batch_size, seq_length, max_predictions, vocab_size, seed=0):
    """One batch of random full-length pretraining examples: {feature: numpy array [B, ...]}
    (B = batch_size), `max_predictions` sorted masked positions per sequence, two segments."""
    rng = np.random.RandomState(seed)
    n, s, p = batch_size, seq_length, max_predictions
    positions = np.sort(np.stack([rng.choice(np.arange(1, s), p, replace=False)
                                  for _ in range(n)]), axis=1)
    return dict(input_ids=rng.randint(5, vocab_size, (n, s)),
                input_mask=np.ones((n, s), np.int64),
                segment_ids=(np.arange(s) >= s // 2).astype(np.int64)[None].repeat(n, 0),
                masked_lm_positions=positions, masked_lm_ids=rng.randint(5, vocab_size, (n, p)),
                masked_lm_weights=np.ones((n, p), np.float32),
                next_sentence_labels=rng.randint(0, 2, (n, 1)))
