"""Tokenization throughput: ``tokenization.FullTokenizer`` vs the direct port vs HF.

Run from the repository root::

    python benchmarks/tokenization_speed.py
    python benchmarks/tokenization_speed.py --compare_to 97d18c1   # A/B against a commit

The corpus is real English shipped with Python itself (the pydoc help topics
and the docstrings of a fixed list of standard-library modules), so the run
needs no download and is deterministic for a given Python version.  Each
tokenizer is built fresh and timed over the whole corpus once, so filling its
caches is part of the measured cost.  ``build_corpus`` and
``make_hf_tokenizer`` are shared with ``tests/test_tokenization.py``.

``--compare_to REV`` instead times this ``tokenization.py`` against the one
of git revision REV (loaded under another module name) in the same process,
alternating which goes first, and prints the median of the per-round CPU
time ratios new/old (below 1: the new one is faster): on a shared, noisy
machine two separate runs are not comparable, alternating rounds are.  It also checks that both give the same
tokens on the whole corpus.
"""
import argparse
import importlib
import importlib.util
import inspect
import os
import statistics
import subprocess
import tempfile
import time
import warnings

from _setup import REPO as _ROOT  # noqa: E402  (first: environment and sys.path)

from _machine import print_cpu  # noqa: E402

# Modules whose docstrings make up the corpus, in this order.
CORPUS_MODULES = (
    "builtins", "os", "collections", "re", "json", "argparse", "typing",
    "asyncio", "email.message", "email.utils", "http.client", "http.server",
    "urllib.request", "urllib.parse", "logging", "logging.handlers",
    "unittest", "unittest.mock", "decimal", "datetime", "pathlib",
    "subprocess", "socket", "ssl", "threading", "multiprocessing",
    "xml.etree.ElementTree", "xml.dom.minidom", "sqlite3", "tarfile",
    "zipfile", "inspect", "dataclasses", "functools", "itertools", "string",
    "textwrap", "difflib", "statistics", "random", "fractions", "codecs",
    "io", "pickle", "shutil", "tempfile", "pydoc", "doctest", "optparse",
    "configparser", "csv", "calendar", "imaplib", "smtplib", "ftplib",
    "mailbox", "enum", "contextlib", "abc", "heapq", "bisect", "array",
    "struct", "math", "cmath", "operator", "copy", "pprint", "locale",
    "gettext", "platform", "sysconfig", "importlib", "ast", "dis",
    "tokenize", "traceback", "warnings", "weakref", "gc", "time", "sched",
    "queue", "selectors", "signal", "hashlib", "hmac", "secrets", "base64",
    "binascii", "html", "html.parser", "ipaddress", "uuid", "trace",
    "timeit", "cProfile", "pstats", "zlib", "gzip", "bz2", "lzma",
)
MIN_CORPUS_CHARS = 1_000_000


def _docstrings(module):
    """Docstrings of a module, its public classes and routines, and their members."""
    objects = [module]
    for name in sorted(vars(module)):
        if name.startswith("_"):
            continue
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            objects.append(obj)
            if inspect.isclass(obj):
                objects.extend(getattr(obj, attr, None) for attr in sorted(vars(obj)))
    for obj in objects:
        doc = getattr(obj, "__doc__", None)
        if isinstance(doc, str):
            yield doc


def build_corpus():
    """Deterministic list of non-empty text lines of real English (>= 1 MB)."""
    from pydoc_data.topics import topics  # pylint: disable=import-outside-toplevel

    documents = [topics[key] for key in sorted(topics)]
    seen = set(documents)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module_name in CORPUS_MODULES:
            for doc in _docstrings(importlib.import_module(module_name)):
                if doc not in seen:
                    seen.add(doc)
                    documents.append(doc)
    lines = [line for doc in documents for line in doc.splitlines() if line.strip()]
    size = sum(len(line.encode("utf-8")) for line in lines)
    if size < MIN_CORPUS_CHARS:
        raise RuntimeError("corpus too small: %d bytes" % size)
    return lines


def make_hf_tokenizer(vocab_file, lowercase):
    """The HuggingFace ``tokenizers`` BERT WordPiece tokenizer configured like BERT's."""
    from tokenizers import BertWordPieceTokenizer  # pylint: disable=import-outside-toplevel

    tokenizer = BertWordPieceTokenizer(
        vocab_file,
        lowercase=lowercase,
        strip_accents=lowercase,
        clean_text=True,
        handle_chinese_chars=True,
        wordpieces_prefix="##",
    )
    # The HF WordPiece model defaults to 100; the BERT rule is 200.
    tokenizer._tokenizer.model.max_input_chars_per_word = 200  # pylint: disable=protected-access
    return tokenizer


def hf_tokens(tokenizer, texts):
    """Token strings for each text, without [CLS]/[SEP]."""
    return [enc.tokens for enc in tokenizer.encode_batch(texts, add_special_tokens=False)]


def _time_run(name, tokenize, lines):
    """Tokenizes every line once; prints and returns (tokens/s, token count)."""
    start = time.perf_counter()
    count = sum(len(tokenize(line)) for line in lines)
    seconds = time.perf_counter() - start
    print("%-38s %8d tokens %7.2f s %11.0f tokens/s" % (name, count, seconds, count / seconds))
    return count / seconds, count


def _compare(vocab_file, lines, lower):
    # pylint: disable=import-outside-toplevel
    import tokenization
    from _reference_tokenizer import ReferenceFullTokenizer

    print("\ndo_lower_case=%s (fresh instances, one pass each, cache fill included)" % lower)
    ours = tokenization.FullTokenizer(vocab_file, do_lower_case=lower)
    port = ReferenceFullTokenizer(vocab_file, do_lower_case=lower)
    hf = make_hf_tokenizer(vocab_file, lowercase=lower)
    ours_rate, ours_count = _time_run("tokenization.FullTokenizer", ours.tokenize, lines)
    port_rate, port_count = _time_run("direct port (_reference_tokenizer)", port.tokenize, lines)
    hf_rate, _ = _time_run(
        "HF tokenizers, encode() per line",
        lambda text: hf.encode(text, add_special_tokens=False).tokens,
        lines,
    )
    batch_hf = make_hf_tokenizer(vocab_file, lowercase=lower)
    all_at_once = lambda _: [t for tokens in hf_tokens(batch_hf, lines) for t in tokens]  # noqa: E731
    _time_run("HF tokenizers, one encode_batch()", all_at_once, [None])
    _time_run("tokenization.FullTokenizer, 2nd pass", ours.tokenize, lines)
    if ours_count != port_count:
        raise SystemExit("token counts differ: ours %d, port %d" % (ours_count, port_count))
    print("ratio ours/port: %.2fx   ours/HF (encode per line): %.2fx"
          % (ours_rate / port_rate, ours_rate / hf_rate))


def load_tokenization_at(revision, workdir):
    """``tokenization.py`` of git ``revision``, imported as module ``tokenization_<revision>``."""
    source = subprocess.run(
        ["git", "-C", _ROOT, "show", "%s:tokenization.py" % revision],
        check=True, capture_output=True, text=True).stdout
    name = "tokenization_%s" % "".join(c if c.isalnum() else "_" for c in revision)
    path = os.path.join(workdir, name + ".py")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpu_seconds(tokenizer, lines):
    """CPU time of one pass over ``lines`` (this process only, so other load counts less)."""
    start = time.process_time()
    for line in lines:
        tokenizer.tokenize(line)
    return time.process_time() - start


def _ab_rounds(modules, vocab_file, lines, lower, rounds, instances=3):
    """Per side, per round: CPU seconds of ``instances`` fresh tokenizers' first
    passes, and of their second passes (one pass is too short to time alone)."""
    times = {name: ([], []) for name in modules}
    for round_number in range(rounds):
        order = list(modules) if round_number % 2 == 0 else list(reversed(modules))
        for name in order:
            first = second = 0.0
            for _ in range(instances):
                tokenizer = modules[name].FullTokenizer(vocab_file, do_lower_case=lower)
                first += _cpu_seconds(tokenizer, lines)
                second += _cpu_seconds(tokenizer, lines)
            times[name][0].append(first)
            times[name][1].append(second)
    return times


def compare_to_revision(revision, vocab_file, lines, rounds):
    """Times this tokenization.py against ``revision``'s; checks that they agree."""
    import tokenization  # pylint: disable=import-outside-toplevel

    with tempfile.TemporaryDirectory() as workdir:
        old = load_tokenization_at(revision, workdir)
    modules = {"new": tokenization, "old": old}
    print("A/B: this tokenization.py (new) vs %s:tokenization.py (old), %d alternating rounds, "
          "CPU seconds of 3 fresh instances' passes per round" % (revision, rounds))
    for lower in (True, False):
        tokens = {}
        for name, module in modules.items():
            tokenizer = module.FullTokenizer(vocab_file, do_lower_case=lower)
            tokens[name] = [tokenizer.tokenize(line) for line in lines]
        if tokens["new"] != tokens["old"]:
            raise SystemExit("do_lower_case=%s: new and old tokens differ" % lower)
        times = _ab_rounds(modules, vocab_file, lines, lower, rounds)
        for label, index in (("fresh instance", 0), ("second pass", 1)):
            new, old_times = times["new"][index], times["old"][index]
            ratios = [n / o for n, o in zip(new, old_times)]
            print("do_lower_case=%-5s %-14s new %.3f s, old %.3f s (medians); "
                  "median time ratio new/old %.3f (range %.3f-%.3f)"
                  % (lower, label, statistics.median(new), statistics.median(old_times),
                     statistics.median(ratios), min(ratios), max(ratios)), flush=True)
        print("do_lower_case=%-5s identical tokens on all %d lines (%d tokens)"
              % (lower, len(lines), sum(map(len, tokens["new"]))))


def main():
    from real_model import real_vocab_file  # pylint: disable=import-outside-toplevel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare_to", default=None, metavar="REV",
                        help="time against tokenization.py of this git revision instead")
    parser.add_argument("--rounds", type=int, default=21, help="A/B rounds (with --compare_to)")
    args = parser.parse_args()
    print_cpu()
    vocab_file = real_vocab_file()
    lines = build_corpus()
    size = sum(len(line.encode("utf-8")) for line in lines)
    print("corpus: %d lines, %.2f MB of UTF-8" % (len(lines), size / 1e6))
    print("vocab: %s" % vocab_file)
    if args.compare_to:
        compare_to_revision(args.compare_to, vocab_file, lines, args.rounds)
        return
    for lower in (True, False):
        _compare(vocab_file, lines, lower)


if __name__ == "__main__":
    main()
