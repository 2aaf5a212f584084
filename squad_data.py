"""SQuAD 1.1 and 2.0 data: reading the JSON, windowing contexts into model inputs, and turning the
model's start/end logits back into answer texts.

This is the data side of the original BERT `run_squad.py`, re-implemented with the same behaviour:
the same examples, features (tokens, ids, windows, max-context flags, training positions) and
predictions for the same inputs. What differs: input errors are `SquadError`s naming the file and
question instead of KeyErrors, skipped training answers are counted, contexts shared by several
questions are tokenized once, and a few inputs on which the original crashed or produced
meaningless labels are handled (each noted where it happens). Pure Python and numpy: run_squad.py
does the TensorFlow part (TFRecords, the model).

The three steps
---------------
1. `read_squad_examples`: each context is split into whitespace words (`doc_tokens`); for training,
   the answer's character offset is mapped to a word span.
2. `convert_examples_to_features` (or `iter_features`, one at a time): the question and the
   words are WordPiece-tokenized; contexts longer than fit are cut into overlapping windows ("doc
   spans", advancing by `doc_stride`), each one model input [CLS] question [SEP] window [SEP]. A
   token in several windows is "max context" in the one where it has the most context on its
   shorter side; predictions may start only there.
3. `compute_predictions`: per example, over its windows, the best-scoring valid spans become an
   n-best list of texts, projected back onto the original context text; SQuAD 2.0 compares the best
   span with the "no answer" score (both logits at [CLS]).
"""
import collections
import dataclasses
import json
import logging
import math
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from errors import InputError
import tokenization

logger = logging.getLogger(__name__)

FIRST_UNIQUE_ID = 1000000000   # the original's first feature id
_NULL_SCORE_START = 1000000    # the original's "large and positive" start for the min null score
_SHOWN_IDS = 5                 # question ids quoted in the skipped-answers warning


class SquadError(InputError):
    """The SQuAD file is unreadable or malformed; the message names the file and, where one is
    known, the question id (else the article/paragraph position)."""

    def __init__(self, message, path=None, qas_id=None, where=None):
        parts = [] if path is None else [str(path)]
        if qas_id is not None:
            parts.append(f"question {qas_id!r}")
        elif where:
            parts.append(where)
        super().__init__(": ".join(parts + [message]))
        self.path, self.qas_id = path, qas_id


@dataclasses.dataclass
class SquadExample:
    """One question on one context. Positions are word indexes into `doc_tokens` (training only);
    -1/-1 with empty answer text for SQuAD 2.0's unanswerable questions, as in the original."""
    qas_id: str
    question_text: str
    doc_tokens: List[str]          # whitespace words of the context (shared by its questions)
    orig_answer_text: Optional[str] = None
    start_position: Optional[int] = None
    end_position: Optional[int] = None
    is_impossible: bool = False


@dataclasses.dataclass
class InputFeatures:
    """One window of one example as a model input, padded to max_seq_length.

    `token_to_orig_map` and `token_is_max_context` are keyed by position in `tokens` and cover the
    window's context tokens only (not [CLS], the question or the [SEP]s). Training positions index
    `tokens`; 0/0 (the [CLS] token) when the answer is not wholly inside this window or there is
    none (SQuAD 2.0), as in the original.
    """
    unique_id: int
    example_index: int
    doc_span_index: int
    tokens: List[str]
    token_to_orig_map: Dict[int, int]
    token_is_max_context: Dict[int, bool]
    input_ids: List[int]
    input_mask: List[int]
    segment_ids: List[int]
    start_position: Optional[int] = None
    end_position: Optional[int] = None
    is_impossible: bool = False


RawResult = collections.namedtuple("RawResult", ["unique_id", "start_logits", "end_logits"])


# ---------------------------------------------------------------------------
# Reading the JSON.
# ---------------------------------------------------------------------------


def _is_whitespace(char):
    # The original's own rule, not str.isspace(): U+202F (narrow no-break space) is whitespace,
    # U+00A0 and the other Unicode spaces are not (they stay inside words).
    return char in " \t\r\n" or ord(char) == 0x202F


def split_context(text: str) -> Tuple[List[str], List[int]]:
    """(words, char_to_word_offset): the context's whitespace-separated words, and for every
    character the index of the word it is in or, for whitespace, of the last word before it (-1
    before the first word), as the original built them character by character."""
    doc_tokens, char_to_word_offset = [], []
    prev_is_whitespace = True
    for char in text:
        if _is_whitespace(char):
            prev_is_whitespace = True
        else:
            if prev_is_whitespace:
                doc_tokens.append(char)
            else:
                doc_tokens[-1] += char
            prev_is_whitespace = False
        char_to_word_offset.append(len(doc_tokens) - 1)
    return doc_tokens, char_to_word_offset


def _load_json(path, open_fn):
    with open_fn(path, "rb") as f:
        raw = f.read()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")   # a byte-order mark is tolerated
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise SquadError(f"not valid UTF-8 ({e.reason} at byte {e.start}, line {line})",
                             path) from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise SquadError(f"not valid JSON: {e.msg}: line {e.lineno}, column {e.colno}",
                         path) from None
    if not isinstance(data, dict):
        raise SquadError(f"expected a JSON object at the top level, got {type(data).__name__}",
                         path)
    return data


_KIND_NAMES = {list: "a list", str: "a string", int: "an integer", bool: "true or false"}


def _field(obj, key, kind, path, qas_id=None, where=None):
    """obj[key], checked to be of type `kind`; a SquadError naming file and place otherwise."""
    if not isinstance(obj, dict):
        raise SquadError(f"expected a JSON object, got {type(obj).__name__}", path, qas_id, where)
    if key not in obj:
        raise SquadError(f"missing {key!r}", path, qas_id, where)
    value = obj[key]
    # bool is an int subclass in Python; true/false is not a character offset.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise SquadError(f"{key!r} must be {_KIND_NAMES[kind]}, got {json.dumps(value)[:60]}",
                         path, qas_id, where)
    return value


class _Reader:
    """Reads questions paragraph by paragraph, collecting examples and counts."""

    def __init__(self, path, is_training, version_2_with_negative):
        self.path, self.is_training, self.version_2 = path, is_training, version_2_with_negative
        self.examples: List[SquadExample] = []
        self.stats = {"articles": 0, "paragraphs": 0, "questions": 0, "examples": 0,
                      "impossible": 0, "skipped_answer_mismatch": 0,
                      "skipped_answer_outside_context": 0}
        self.skipped_ids: List[str] = []
        self._seen_ids = set()

    def read_paragraph(self, paragraph, where):
        context = _field(paragraph, "context", str, self.path, where=where)
        qas = _field(paragraph, "qas", list, self.path, where=where)
        self.stats["paragraphs"] += 1
        # One words list per paragraph, shared by its questions' examples (as in the original);
        # convert_examples_to_features tokenizes it once for all of them.
        doc_tokens, char_to_word_offset = split_context(context)
        for index, qa in enumerate(qas):
            qas_id = self._question_id(qa, f"{where}, question {index}")
            question = _field(qa, "question", str, self.path, qas_id)
            self.stats["questions"] += 1
            example = SquadExample(qas_id=qas_id, question_text=question, doc_tokens=doc_tokens)
            if self.is_training and not self._label(example, qa, char_to_word_offset):
                continue
            self.examples.append(example)

    def _question_id(self, qa, where):
        if not isinstance(qa, dict) or "id" not in qa:
            raise SquadError("missing 'id'" if isinstance(qa, dict) else
                             f"expected a JSON object, got {type(qa).__name__}", self.path,
                             where=where)
        qas_id = qa["id"]
        if isinstance(qas_id, bool) or not isinstance(qas_id, (str, int)):
            raise SquadError(f"'id' must be a string, got {json.dumps(qas_id)[:60]}", self.path,
                             where=where)
        qas_id = str(qas_id)   # numeric ids are accepted; predictions are keyed by the string
        if qas_id in self._seen_ids:
            raise SquadError("duplicate question id (predictions are keyed by id)", self.path,
                             qas_id)
        self._seen_ids.add(qas_id)
        return qas_id

    def _label(self, example, qa, char_to_word_offset):
        """Sets the training answer on `example`; False when the question is to be skipped."""
        path, qas_id = self.path, example.qas_id
        if self.version_2:
            # The original required the key; a missing one (a 1.1 file read as 2.0) means False.
            example.is_impossible = qa.get("is_impossible", False)
            if not isinstance(example.is_impossible, bool):
                _field(qa, "is_impossible", bool, path, qas_id)   # raises, naming the value
        if example.is_impossible:
            example.orig_answer_text, example.start_position, example.end_position = "", -1, -1
            self.stats["impossible"] += 1
            return True
        answers = _field(qa, "answers", list, path, qas_id)
        if len(answers) != 1:
            # The original's rule for every answerable training question, 1.1 or 2.0.
            raise SquadError(f"for training, each question should have exactly 1 answer, found "
                             f"{len(answers)}", path, qas_id)
        text = _field(answers[0], "text", str, path, qas_id)
        answer_start = _field(answers[0], "answer_start", int, path, qas_id)
        try:
            span = _answer_words(text, answer_start, example.doc_tokens, char_to_word_offset)
        except _AnswerNotFound as e:
            self._skip(qas_id, e.outside_context)
            return False
        example.orig_answer_text = text
        example.start_position, example.end_position = span
        return True

    def _skip(self, qas_id, outside):
        self.stats["skipped_answer_mismatch"] += 1
        self.stats["skipped_answer_outside_context"] += int(outside)
        self.skipped_ids.append(qas_id)

    def finish(self):
        if self.stats["questions"] == 0:
            raise SquadError(f"no questions in {self.path}")
        self.stats["examples"] = len(self.examples)
        skipped = self.stats["skipped_answer_mismatch"]
        if skipped:
            logger.warning(
                "%s: skipped %d of %d training questions whose answer text is not found at its "
                "answer_start (%d of them outside the context), as the original did (\"Could not "
                "find answer\"); first ids: %s", self.path, skipped, self.stats["questions"],
                self.stats["skipped_answer_outside_context"],
                ", ".join(self.skipped_ids[:_SHOWN_IDS]))


class _AnswerNotFound(Exception):
    """A training answer that is not where its answer_start says: the question is skipped."""

    def __init__(self, outside_context):
        super().__init__()
        self.outside_context = outside_context


def _answer_words(text, answer_start, doc_tokens, char_to_word_offset):
    """The answer's (start word, end word); _AnswerNotFound when the words there do not contain
    the answer text (the original's check) or its characters are not all in the context."""
    last_char = answer_start + len(text) - 1
    if not 0 <= answer_start <= last_char < len(char_to_word_offset):
        # The original indexed blindly: an IndexError, or a negative index read from the end.
        # An empty answer (last_char < answer_start) lands here too: the original kept it with
        # an end word before its start word, a meaningless label.
        raise _AnswerNotFound(outside_context=True)
    start, end = char_to_word_offset[answer_start], char_to_word_offset[last_char]
    cleaned = " ".join(tokenization.whitespace_tokenize(text))
    if start < 0 or not cleaned:
        # Starts in whitespace before the first word, or is only whitespace: the original kept
        # some of these with start word -1 (the last word, by Python indexing); skipped here.
        raise _AnswerNotFound(outside_context=False)
    actual = " ".join(doc_tokens[start:end + 1])
    if actual.find(cleaned) == -1:
        # The original's skip; mostly annotations whose offset or text went astray in Unicode.
        raise _AnswerNotFound(outside_context=False)
    return start, end


def read_squad_examples(path: str, is_training: bool, version_2_with_negative: bool,
                        open_fn: Callable = open) -> Tuple[List[SquadExample], Dict[str, int]]:
    """Reads a SQuAD JSON file into examples, in file order, and counts what it read.

    `open_fn(path, "rb")` opens the file (run_squad.py passes a tf.io.gfile opener for gs://).
    For prediction (`is_training=False`) answers are not read and every question is kept. For
    training, questions whose answer text is not found in the context words at its answer_start
    are skipped, as in the original, and counted in stats["skipped_answer_mismatch"] (one warning
    is logged with the first ids). stats: articles, paragraphs, questions, examples, impossible,
    skipped_answer_mismatch, skipped_answer_outside_context (a part of the mismatches).
    """
    data = _load_json(path, open_fn)
    articles = _field(data, "data", list, path, where="the top level")
    reader = _Reader(path, is_training, version_2_with_negative)
    for article_index, article in enumerate(articles):
        where = f"article {article_index}"
        reader.stats["articles"] += 1
        for paragraph_index, paragraph in enumerate(_field(article, "paragraphs", list, path,
                                                           where=where)):
            reader.read_paragraph(paragraph, f"{where}, paragraph {paragraph_index}")
    reader.finish()
    return reader.examples, reader.stats


# ---------------------------------------------------------------------------
# Features: windows of tokenized contexts.
# ---------------------------------------------------------------------------

# The context's WordPiece tokens and their ids, with the maps between words and tokens:
# tok_to_orig[i] is the word of token i, orig_to_tok[w] the first token of word w (for a word with
# no tokens, the next word's first token).
_TokenizedContext = collections.namedtuple(
    "_TokenizedContext", ["tokens", "ids", "tok_to_orig", "orig_to_tok"])
DocSpan = collections.namedtuple("DocSpan", ["start", "length"])


class _ContextCache:
    """Tokenizes each context once for all its questions (SQuAD has about five per paragraph).

    Keyed by the identity of the `doc_tokens` list, which the reader shares among a paragraph's
    questions (as the original did); examples with equal but separate lists are simply tokenized
    again. An entry is dropped after its last question, so only contexts with questions still to
    come are held: one at a time in file order, more when the questions are shuffled (run_squad
    shuffles the training set, as the original did). The lists must not change meanwhile.
    """

    def __init__(self, tokenizer, examples):
        self._tokenizer = tokenizer
        self._remaining = collections.Counter(id(example.doc_tokens) for example in examples)
        self._entries = {}   # id -> (the doc_tokens list, kept so its id stays unique; context)

    def get(self, doc_tokens):
        key = id(doc_tokens)
        entry = self._entries.get(key)
        if entry is None:
            entry = (doc_tokens, self._tokenize(doc_tokens))
            self._entries[key] = entry
        self._remaining[key] -= 1
        if self._remaining[key] <= 0:
            self._entries.pop(key)
            del self._remaining[key]
        return entry[1]

    def _tokenize(self, doc_tokens):
        # Word by word, as the original: a word's pieces do not depend on its neighbours.
        tokens, tok_to_orig, orig_to_tok = [], [], []
        for word_index, word in enumerate(doc_tokens):
            orig_to_tok.append(len(tokens))
            for piece in self._tokenizer.tokenize(word):
                tok_to_orig.append(word_index)
                tokens.append(piece)
        ids = tokenization.convert_by_vocab(self._tokenizer.vocab, tokens)
        return _TokenizedContext(tokens, ids, tok_to_orig, orig_to_tok)


def _improve_answer_span(doc_tokens, input_start, input_end, tokenizer, orig_answer_text):
    """The first sub-span of tokens [input_start, input_end] spelling the answer's own tokens.

    The annotated answer is a character span; mapped to whole words it can carry extra
    characters ("1895" inside the word "(1895-1943)."), which WordPiece often splits off. The
    original searched starts left to right and, for each, ends right to left, returning the first
    span whose tokens joined with spaces equal the answer's; the word span when none does (an
    answer inside a token, like "Japan" in "Japanese").
    """
    answer = " ".join(tokenizer.tokenize(orig_answer_text))
    for new_start in range(input_start, input_end + 1):
        for new_end in range(input_end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start:new_end + 1]) == answer:
                return new_start, new_end
    return input_start, input_end


def _answer_tokens(example, context, tokenizer):
    """The training answer as (first, last) context token; (-1, -1) for no answer."""
    if example.is_impossible:
        return -1, -1
    if example.start_position is None or example.end_position is None:
        raise ValueError(f"example {example.qas_id!r} has no answer position; read the data "
                         f"with is_training=True to build training features")
    start = context.orig_to_tok[example.start_position]
    if example.end_position < len(example.doc_tokens) - 1:
        end = context.orig_to_tok[example.end_position + 1] - 1
    else:
        end = len(context.tokens) - 1
    return _improve_answer_span(context.tokens, start, end, tokenizer, example.orig_answer_text)


def doc_spans(num_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> List[DocSpan]:
    """The original's windows, as DocSpan(start, length): up to max_tokens_for_doc tokens each,
    each starting doc_stride tokens after the previous one's start (at its end instead, when it
    is shorter than doc_stride), until one reaches the last token. None for an empty context."""
    spans = []
    start = 0
    while start < num_tokens:
        length = min(num_tokens - start, max_tokens_for_doc)
        spans.append(DocSpan(start, length))
        if start + length == num_tokens:
            break
        start += min(length, doc_stride)
    return spans


def max_context_spans(spans: Sequence[DocSpan], num_tokens: int) -> List[int]:
    """For each context token, the index of the window where it has "maximum context".

    The original's score for a token in a window: min(tokens left of it, tokens right of it)
    + 0.01 * window length; the first window with the highest score wins. The original scored
    every (window, token) pair for every window; one pass over the windows gives the same
    answers.
    """
    best_span = [-1] * num_tokens
    best_score = [None] * num_tokens
    for index, (start, length) in enumerate(spans):
        end = start + length - 1
        for position in range(start, end + 1):
            score = min(position - start, end - position) + 0.01 * length
            if best_score[position] is None or score > best_score[position]:
                best_score[position], best_span[position] = score, index
    return best_span


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What every window shares: sizes, and the ids of [CLS] and [SEP]."""
    max_seq_length: int
    doc_stride: int
    cls_id: int
    sep_id: int


def _window_tokens(query, query_ids, context, span, span_index, best_span, layout):
    """tokens, ids, segment ids and the two position maps of one window (unpadded):
    [CLS] question [SEP] window [SEP], segment 0 up to the first [SEP], 1 after it."""
    tokens = ["[CLS]", *query, "[SEP]"]
    ids = [layout.cls_id, *query_ids, layout.sep_id]
    offset = len(tokens)
    window = range(span.start, span.start + span.length)
    token_to_orig_map = {offset + i: context.tok_to_orig[t] for i, t in enumerate(window)}
    token_is_max_context = {offset + i: best_span[t] == span_index for i, t in enumerate(window)}
    tokens += context.tokens[span.start:span.start + span.length] + ["[SEP]"]
    ids += context.ids[span.start:span.start + span.length] + [layout.sep_id]
    segment_ids = [0] * offset + [1] * (span.length + 1)
    return tokens, ids, segment_ids, token_to_orig_map, token_is_max_context


def _window_positions(answer, span, query_length):
    """Training (start, end) in the window's tokens; (0, 0), the [CLS] token, when the answer is
    not wholly inside the window, as in the original (such windows are kept, as no-answer)."""
    first, last = answer
    if first < span.start or last > span.start + span.length - 1:
        return 0, 0
    shift = query_length + 2 - span.start   # [CLS], the question and [SEP] precede the window
    return first + shift, last + shift


def _example_features(example, example_index, query, query_ids, context, answer, layout,
                      first_unique_id):
    """The features of one example, one per window. `answer` is None for prediction."""
    # The -3 leaves room for [CLS] and the two [SEP]s.
    max_tokens_for_doc = layout.max_seq_length - len(query) - 3
    if max_tokens_for_doc < 1:   # the original looped forever here
        raise ValueError(f"example {example.qas_id!r}: max_seq_length {layout.max_seq_length} "
                         f"leaves no room for the context after a {len(query)}-token question")
    spans = doc_spans(len(context.tokens), max_tokens_for_doc, layout.doc_stride)
    best_span = max_context_spans(spans, len(context.tokens))
    features = []
    for span_index, span in enumerate(spans):
        tokens, ids, segment_ids, to_orig, is_max = _window_tokens(
            query, query_ids, context, span, span_index, best_span, layout)
        pad = layout.max_seq_length - len(ids)
        start = end = None
        if answer is not None:
            start, end = (0, 0) if example.is_impossible else _window_positions(
                answer, span, len(query))
        features.append(InputFeatures(
            unique_id=first_unique_id + span_index, example_index=example_index,
            doc_span_index=span_index, tokens=tokens, token_to_orig_map=to_orig,
            token_is_max_context=is_max, input_ids=ids + [0] * pad,
            input_mask=[1] * len(ids) + [0] * pad, segment_ids=segment_ids + [0] * pad,
            start_position=start, end_position=end, is_impossible=example.is_impossible))
    return features


def iter_features(examples: Sequence[SquadExample], tokenizer, max_seq_length: int,
                  doc_stride: int, max_query_length: int, is_training: bool,
                  stats: Optional[Dict[str, int]] = None) -> Iterator[InputFeatures]:
    """`convert_examples_to_features` one feature at a time, for writers that need not hold them
    all (SQuAD 1.1's training set makes ~88,000 features). `stats`, if given, is filled in as
    features are made and is complete once the iterator is exhausted."""
    if doc_stride < 1 or max_query_length < 0:
        raise ValueError(f"doc_stride must be >= 1 and max_query_length >= 0, got {doc_stride} "
                         f"and {max_query_length}")
    cls_id, sep_id = tokenization.convert_by_vocab(tokenizer.vocab, ["[CLS]", "[SEP]"])
    layout = _Layout(max_seq_length, doc_stride, cls_id, sep_id)
    contexts = _ContextCache(tokenizer, examples)
    stats = {} if stats is None else stats
    stats.update({"examples": len(examples), "features": 0, "max_windows_per_example": 0,
                  "truncated_questions": 0, "examples_without_features": 0})
    if is_training:
        stats["answers_out_of_span"] = 0
    for example_index, example in enumerate(examples):
        query = tokenizer.tokenize(example.question_text)
        if len(query) > max_query_length:
            query = query[:max_query_length]
            stats["truncated_questions"] += 1
        query_ids = tokenization.convert_by_vocab(tokenizer.vocab, query)
        context = contexts.get(example.doc_tokens)
        answer = _answer_tokens(example, context, tokenizer) if is_training else None
        new = _example_features(example, example_index, query, query_ids, context, answer,
                                layout, FIRST_UNIQUE_ID + stats["features"])
        stats["features"] += len(new)
        stats["max_windows_per_example"] = max(stats["max_windows_per_example"], len(new))
        stats["examples_without_features"] += int(not new)
        if is_training and not example.is_impossible:
            stats["answers_out_of_span"] += sum(f.start_position == 0 for f in new)
        yield from new


def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer, max_seq_length: int,
                                 doc_stride: int, max_query_length: int, is_training: bool
                                 ) -> Tuple[List[InputFeatures], Dict[str, int]]:
    """Features for all examples, in order: one per window, unique ids from 1000000000.

    `tokenizer` is a tokenization.FullTokenizer (`tokenize`, `vocab`). Questions are cut to
    `max_query_length` tokens. stats: examples, features, max_windows_per_example,
    truncated_questions, examples_without_features (contexts with no tokens: no windows, as in
    the original), and for training answers_out_of_span (windows not holding their example's
    answer, labelled 0/0).
    """
    stats: Dict[str, int] = {}
    features = list(iter_features(examples, tokenizer, max_seq_length, doc_stride,
                                  max_query_length, is_training, stats))
    return features, stats


# ---------------------------------------------------------------------------
# Predictions: from start/end logits back to answer texts.
# ---------------------------------------------------------------------------

# A span proposed by one window: feature index among the example's features, token positions.
_Candidate = collections.namedtuple(
    "_Candidate", ["feature_index", "start_index", "end_index", "start_logit", "end_logit"])
_NbestEntry = collections.namedtuple("_NbestEntry", ["text", "start_logit", "end_logit"])


def _best_indexes(logits, n_best_size):
    """Positions of the n_best_size largest logits, largest first; ties keep the lower position
    first (the original's stable sort)."""
    return np.argsort(-logits, kind="stable")[:n_best_size].tolist()


def _span_candidates(feature_index, feature, start_logits, end_logits, n_best_size,
                     max_answer_length):
    """The valid spans among the top start x top end positions of one window, in the original's
    order: start in the context part (not the question, [CLS] or [SEP]) where this window has
    max context, end in the context part, end >= start, at most max_answer_length tokens."""
    candidates = []
    for start in _best_indexes(start_logits, n_best_size):
        if start not in feature.token_to_orig_map or not feature.token_is_max_context.get(start):
            continue
        for end in _best_indexes(end_logits, n_best_size):
            if end not in feature.token_to_orig_map or end < start:
                continue
            if end - start + 1 > max_answer_length:
                continue
            candidates.append(_Candidate(feature_index, start, end, float(start_logits[start]),
                                         float(end_logits[end])))
    return candidates


def _null_candidate(logits):
    """(candidate, score): the "no answer" span (0, 0) of the window whose [CLS] score
    start_logits[0] + end_logits[0] is lowest, and that score. The original took the minimum
    over windows, starting from 1000000 with window 0's (0, 0) span at logits 0 (kept if no
    window scores lower); with no windows there is no candidate (the original crashed)."""
    null = _Candidate(0, 0, 0, 0.0, 0.0) if logits else None
    score_null = _NULL_SCORE_START
    for feature_index, (start_logits, end_logits) in enumerate(logits):
        score = float(start_logits[0]) + float(end_logits[0])
        if score < score_null:
            score_null = score
            null = _Candidate(feature_index, 0, 0, float(start_logits[0]), float(end_logits[0]))
    return null, score_null


def _non_space_positions(text):
    """Positions in `text` of its characters other than " " (the original's _strip_spaces map:
    entry i is where the i-th non-space character sits; other whitespace counts as text)."""
    return [index for index, char in enumerate(text) if char != " "]


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool,
                   verbose_logging: bool = False) -> str:
    """Projects `pred_text` (normalised WordPiece text) onto `orig_text` (the context words the
    span covers, space-joined): the original's characters of the prediction, without the extra
    characters of its first and last words (pred "steve smith" in "Steve Smith's" -> "Steve
    Smith").

    The original's heuristic: basic-tokenize orig_text the same way, find pred_text in it, and
    if the two agree character for character once spaces are removed, map the found positions
    back. When any step fails, orig_text is returned unchanged.
    """
    tok_text = " ".join(tokenization.BasicTokenizer(do_lower_case=do_lower_case)
                        .tokenize(orig_text))
    start = tok_text.find(pred_text)
    if start == -1:
        return _unaligned(orig_text, verbose_logging, "Unable to find text %r in %r", pred_text,
                          orig_text)
    end = start + len(pred_text) - 1
    orig_positions = _non_space_positions(orig_text)
    tok_positions = _non_space_positions(tok_text)
    if len(orig_positions) != len(tok_positions):
        return _unaligned(orig_text, verbose_logging, "Length not equal after stripping spaces: "
                          "%r vs %r", orig_text.replace(" ", ""), tok_text.replace(" ", ""))
    # Same number of non-space characters: assume they correspond one to one.
    tok_to_orig = dict(zip(tok_positions, orig_positions))
    if start not in tok_to_orig:
        return _unaligned(orig_text, verbose_logging, "Couldn't map start position")
    if end not in tok_to_orig:
        return _unaligned(orig_text, verbose_logging, "Couldn't map end position")
    return orig_text[tok_to_orig[start]:tok_to_orig[end] + 1]


def _unaligned(orig_text, verbose_logging, message, *args):
    """get_final_text's fallback: orig_text, with the reason logged when asked (as the original)."""
    if verbose_logging:
        logger.info(message, *args)
    return orig_text


def _span_text(example, feature, candidate, do_lower_case, verbose_logging):
    """The answer text of a non-null candidate, in the context's own characters."""
    pieces = " ".join(feature.tokens[candidate.start_index:candidate.end_index + 1])
    # Glue WordPiece continuations back on, then normalise the spacing, as the original.
    pred_text = " ".join(pieces.replace(" ##", "").replace("##", "").split())
    first_word = feature.token_to_orig_map[candidate.start_index]
    last_word = feature.token_to_orig_map[candidate.end_index]
    orig_text = " ".join(example.doc_tokens[first_word:last_word + 1])
    return get_final_text(pred_text, orig_text, do_lower_case, verbose_logging)


@dataclasses.dataclass(frozen=True)
class _Settings:
    n_best_size: int
    max_answer_length: int
    do_lower_case: bool
    version_2_with_negative: bool
    null_score_diff_threshold: float
    verbose_logging: bool


def _nbest_entries(example, features, ranked, settings):
    """Up to n_best_size distinct texts from the candidates, best first. A candidate whose
    text is already listed (another span projecting to the same text) is passed over."""
    seen, entries = set(), []
    for candidate in ranked:
        if len(entries) >= settings.n_best_size:
            break
        if candidate.start_index > 0:
            text = _span_text(example, features[candidate.feature_index], candidate,
                              settings.do_lower_case, settings.verbose_logging)
            if text in seen:
                continue
        else:
            text = ""   # the null candidate
        seen.add(text)
        entries.append(_NbestEntry(text, candidate.start_logit, candidate.end_logit))
    return entries


def _complete_nbest(entries, null, version_2_with_negative):
    """The original's fix-ups of the n-best list, plus one for a case where it crashed."""
    if version_2_with_negative and all(entry.text for entry in entries):
        # SQuAD 2.0: "no answer" is always listed, even when it did not make the top n.
        start, end = (null.start_logit, null.end_logit) if null is not None else (0.0, 0.0)
        entries.append(_NbestEntry("", start, end))
    if not entries:
        # The original's placeholder when no span is valid (SQuAD 1.1 only: 2.0 has "").
        entries.append(_NbestEntry("empty", 0.0, 0.0))
    if version_2_with_negative and not any(entry.text for entry in entries):
        # Only "" listed: the original crashed looking for the best non-null entry. The
        # placeholder "empty" (as the original used above, and later ports here) is inserted
        # where its score 0 keeps the list sorted; the null score still decides.
        position = next((i for i, e in enumerate(entries) if e.start_logit + e.end_logit < 0.0),
                        len(entries))
        entries.insert(position, _NbestEntry("empty", 0.0, 0.0))
    return entries


def _softmax(scores):
    """The original's softmax, summed left to right in a loop so the floats match whatever
    Python's sum() does (3.12's is compensated)."""
    top = max(scores)
    exps = [math.exp(score - top) for score in scores]
    total = 0.0
    for value in exps:
        total += value
    return [value / total for value in exps]


def _nbest_json(entries):
    probabilities = _softmax([entry.start_logit + entry.end_logit for entry in entries])
    return [{"text": entry.text, "probability": probability,
             "start_logit": float(entry.start_logit), "end_logit": float(entry.end_logit)}
            for entry, probability in zip(entries, probabilities)]


def _predict_example(example, features, logits, settings):
    """(prediction, n-best list, null score difference or None) for one example."""
    candidates = []
    for feature_index, (feature, (start_logits, end_logits)) in enumerate(zip(features, logits)):
        candidates += _span_candidates(feature_index, feature, start_logits, end_logits,
                                       settings.n_best_size, settings.max_answer_length)
    null, score_null = None, None
    if settings.version_2_with_negative:
        null, score_null = _null_candidate(logits)
        if null is not None:
            candidates.append(null)
    # sorted() is stable: equal scores keep the order above, as in the original.
    ranked = sorted(candidates, key=lambda c: c.start_logit + c.end_logit, reverse=True)
    entries = _complete_nbest(_nbest_entries(example, features, ranked, settings), null,
                              settings.version_2_with_negative)
    nbest = _nbest_json(entries)
    if not settings.version_2_with_negative:
        return entries[0].text, nbest, None
    best = next(entry for entry in entries if entry.text)
    # Predict "" iff the null score beats the best span's score by more than the threshold.
    score_diff = float(score_null - best.start_logit - best.end_logit)
    prediction = "" if score_diff > settings.null_score_diff_threshold else best.text
    return prediction, nbest, score_diff


def _example_logits(features, results_by_id, example):
    """(start_logits, end_logits) float64 arrays per feature of one example."""
    logits = []
    for feature in features:
        result = results_by_id.get(feature.unique_id)
        if result is None:
            raise ValueError(f"no result for feature unique_id {feature.unique_id} (question "
                             f"{example.qas_id!r}, window {feature.doc_span_index}): every "
                             f"feature needs its start and end logits")
        # float64 holds float32 logits exactly; sums then match the original's Python floats.
        logits.append((np.asarray(result.start_logits, dtype=np.float64).reshape(-1),
                       np.asarray(result.end_logits, dtype=np.float64).reshape(-1)))
    return logits


def compute_predictions(examples: Sequence[SquadExample], features: Sequence[InputFeatures],
                        results: Iterable[RawResult], n_best_size: int, max_answer_length: int,
                        do_lower_case: bool, version_2_with_negative: bool,
                        null_score_diff_threshold: float, verbose_logging: bool = False
                        ) -> Tuple[Dict[str, str], Dict[str, List[dict]], Dict[str, float]]:
    """(predictions, nbest, null_odds), each keyed by question id in example order: the
    original's predictions.json, nbest_predictions.json and null_odds.json contents.

    `results` are matched to features by unique_id (extra results are ignored, a feature without
    one is a ValueError). SQuAD 1.1 predicts the best span's text; 2.0 predicts "" when
    null_odds[id] = null score - best span score > null_score_diff_threshold. nbest entries are
    dicts with text, probability, start_logit, end_logit; null_odds is {} for 1.1.
    """
    settings = _Settings(n_best_size, max_answer_length, do_lower_case, version_2_with_negative,
                         null_score_diff_threshold, verbose_logging)
    features_by_example = collections.defaultdict(list)
    for feature in features:
        features_by_example[feature.example_index].append(feature)
    results_by_id = {result.unique_id: result for result in results}
    predictions, nbest, null_odds = {}, {}, {}
    for example_index, example in enumerate(examples):
        example_features = features_by_example.get(example_index, [])
        logits = _example_logits(example_features, results_by_id, example)
        prediction, entries, score_diff = _predict_example(example, example_features, logits,
                                                           settings)
        predictions[example.qas_id] = prediction
        nbest[example.qas_id] = entries
        if version_2_with_negative:
            null_odds[example.qas_id] = score_diff
    return predictions, nbest, null_odds
