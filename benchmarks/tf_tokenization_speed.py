"""In-graph tokenization throughput: ``tf_tokenization.Preprocessor`` vs ``tokenization.py``.

Run from the repository root::

    python benchmarks/tf_tokenization_speed.py

On the real-text corpus of ``tokenization_speed.py`` with the real uncased vocabulary, cased and
uncased: word pieces per second of ``Preprocessor.tokenize`` on batches of 256 lines (the batches
made into string tensors beforehand, the graph traced beforehand; best of 3 passes), tokens per
second of ``Preprocessor.__call__`` (tokenize and pack to length 128: the count takes in [CLS] and
[SEP] and leaves out what truncation cut), and word pieces per second of
``tokenization.FullTokenizer.tokenize_to_ids`` line by line, both on a fresh instance (its memo
filled during the pass) and on its second pass (the memo full). Each side is checked to give the
same pieces. CPU seconds are printed too: TensorFlow may use both cores for one batch.
"""
import time

import _setup  # noqa: F401,E402  (first: environment and sys.path)

BATCH = 256


def _timed(run):
    """(result, wall seconds, CPU seconds) of ``run()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _report(name, tokens, wall, cpu):
    print("%-44s %8d tokens %7.2f s (cpu %6.2f s) %10.0f tokens/s"
          % (name, tokens, wall, cpu, tokens / wall), flush=True)


def _graph_passes(function, batches, count_pieces, passes=3):
    """Best wall time of ``passes`` passes of ``function`` over ``batches``."""
    function(batches[0])  # trace
    best = None
    for _ in range(passes):
        pieces, wall, cpu = _timed(lambda: sum(count_pieces(function(b)) for b in batches))
        if best is None or wall < best[1]:
            best = (pieces, wall, cpu)
    return best


def compare(vocab_file, lines, lower):
    # pylint: disable=import-outside-toplevel
    import tensorflow as tf

    import tf_tokenization
    import tokenization

    print("\ndo_lower_case=%s, %d lines, batches of %d" % (lower, len(lines), BATCH))
    preprocessor = tf_tokenization.Preprocessor(vocab_file, lower)
    batches = [tf.constant(lines[i:i + BATCH]) for i in range(0, len(lines), BATCH)]
    graph = _graph_passes(preprocessor.tokenize, batches,
                          lambda pieces: int(tf.size(pieces.flat_values)))
    _report("Preprocessor.tokenize (graph)", *graph)
    packed = _graph_passes(preprocessor, batches,
                           lambda inputs: int(tf.reduce_sum(inputs["input_mask"])))
    _report("Preprocessor.__call__ (+ [CLS], [SEP]; cut)", *packed)
    full = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
    rates = []
    for label in ("fresh instance", "second pass"):
        pieces, wall, cpu = _timed(lambda: sum(len(full.tokenize_to_ids(t)) for t in lines))
        _report("FullTokenizer.tokenize_to_ids, %s" % label, pieces, wall, cpu)
        rates.append(pieces / wall)
    if pieces != graph[0]:
        raise SystemExit("piece counts differ: graph %d, tokenization.py %d" % (graph[0], pieces))
    graph_rate = graph[0] / graph[1]
    print("Preprocessor.tokenize pieces/s over tokenization.py's: %.2fx (fresh instance), "
          "%.2fx (second pass)"
          % (graph_rate / rates[0], graph_rate / rates[1]))


def main():
    from real_model import real_vocab_file  # pylint: disable=import-outside-toplevel
    from tokenization_speed import build_corpus  # pylint: disable=import-outside-toplevel

    lines = build_corpus()
    print("corpus: %d lines, %d bytes" % (len(lines), sum(len(t.encode("utf-8")) for t in lines)))
    for lower in (True, False):
        compare(real_vocab_file(), lines, lower)


if __name__ == "__main__":
    main()
