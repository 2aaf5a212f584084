"""Tokenization throughput: ``tokenization.FullTokenizer`` vs the direct port vs HF.

Run from the repository root::

    python benchmarks/tokenization_speed.py

The corpus is real English shipped with Python itself (the pydoc help topics
and the docstrings of a fixed list of standard-library modules), so the run
needs no download and is deterministic for a given Python version.  Each
tokenizer is built fresh and timed over the whole corpus once, so filling its
caches is part of the measured cost.  ``build_corpus`` and
``make_hf_tokenizer`` are shared with ``tests/test_tokenization.py``.
"""
import importlib
import inspect
import os
import sys
import time
import warnings

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
for _path in (_ROOT, _HERE, os.path.join(_ROOT, "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

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


def main():
    from real_model import real_vocab_file  # pylint: disable=import-outside-toplevel

    vocab_file = real_vocab_file()
    lines = build_corpus()
    size = sum(len(line.encode("utf-8")) for line in lines)
    print("corpus: %d lines, %.2f MB of UTF-8" % (len(lines), size / 1e6))
    print("vocab: %s" % vocab_file)
    for lower in (True, False):
        _compare(vocab_file, lines, lower)


if __name__ == "__main__":
    main()
