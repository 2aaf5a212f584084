"""The BERT model and its heads, on TensorFlow 2 (eager + tf.function).

The module tree mirrors the original variable scopes, so every checkpoint name maps to one obvious
place in the code:

  bert/embeddings/...                         Embeddings
  bert/encoder/layer_{i}/attention/self/...   SelfAttention
  bert/encoder/layer_{i}/attention/output/... Attention (output dense + LayerNorm)
  bert/encoder/layer_{i}/intermediate/...     TransformerLayer.intermediate
  bert/encoder/layer_{i}/output/...           TransformerLayer.output / output_norm
  bert/pooler/dense/...                       BertModel.pooler
  cls/predictions/...                         MaskedLMHead
  cls/seq_relationship/...                    NextSentenceHead
  output_weights, output_bias                 ClassifierHead (run_classifier's names)
  cls/squad/...                               SpanHead

Every variable is created with its full original name (`tf.Variable(name=...)`), and
`named_variables()` returns them keyed by that name; `checkpoints.py` reads and writes name-based
checkpoints from that mapping, so the names on disk are exactly the original ones.

Precision: variables are always float32. With `compute_dtype=tf.bfloat16` the matrix products run in
bfloat16 while LayerNorm, softmax, the pooler's tanh input and every loss run in float32.

Dimension legend used in shape comments:
  B = batch size, S = sequence length (F = "from", T = "to" in attention),
  H = hidden size, N = attention heads, D = size per head (H / N), I = intermediate size,
  V = vocabulary size, P = predictions per sequence, L = number of labels.
"""

import copy
import functools
import json
import logging
import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

# LayerNorm epsilon of the original implementation (the TF1 layer_norm default it used).
LAYER_NORM_EPSILON = 1e-12
# Additive attention bias for padded positions, as the original (not -inf, so rows of pure padding
# still give a finite softmax).
MASK_BIAS = -10000.0


# ---------------------------------------------------------------------------------------------------
# Configuration


class BertConfig:
    """The hyperparameters of a BERT model, read from and written to `bert_config.json`.

    The keys and defaults are those of the released configs. Extra keys found in some released
    files (the multilingual and Chinese configs carry `directionality`, `pooler_*`) are kept and
    written back, with a warning, because they do not change the model.
    """

    _DEFAULTS = dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=16,
        initializer_range=0.02,
    )
    _INT_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                 "intermediate_size", "max_position_embeddings", "type_vocab_size")
    _FLOAT_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range")

    def __init__(self, vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, max_position_embeddings=512,
                 type_vocab_size=16, initializer_range=0.02):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.extra = {}
        self.validate()

    def validate(self, source="BertConfig"):
        """Raises ValueError naming `source` and the offending key when a value is unusable."""
        for key in self._INT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{source}: `{key}` must be a positive integer, got {value!r}")
        for key in self._FLOAT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{source}: `{key}` must be a non-negative number, got {value!r}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if getattr(self, key) >= 1:
                raise ValueError(f"{source}: `{key}` must be below 1, got {getattr(self, key)!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"{source}: hidden_size ({self.hidden_size}) is not a multiple of "
                             f"num_attention_heads ({self.num_attention_heads})")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"{source}: unknown hidden_act {self.hidden_act!r}; expected one of "
                             f"{sorted(ACTIVATIONS)}")

    @classmethod
    def from_dict(cls, json_object, source="BertConfig.from_dict"):
        if not isinstance(json_object, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(json_object).__name__}")
        if "vocab_size" not in json_object:
            raise ValueError(f"{source}: missing required key `vocab_size` (is this a BERT "
                             f"bert_config.json? keys found: {sorted(json_object)})")
        known = {"vocab_size", *cls._DEFAULTS}
        config = cls.__new__(cls)
        for key, default in {"vocab_size": None, **cls._DEFAULTS}.items():
            setattr(config, key, json_object.get(key, default))
        config.extra = {k: v for k, v in json_object.items() if k not in known}
        if config.extra:
            logger.warning("%s: keeping keys the model does not use: %s", source,
                           ", ".join(sorted(config.extra)))
        config.validate(source)
        return config

    @classmethod
    def from_json_file(cls, json_file):
        try:
            with tf.io.gfile.GFile(json_file, "r") as reader:
                text = reader.read()
        except tf.errors.NotFoundError:
            raise FileNotFoundError(f"BERT config file not found: {json_file}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{json_file}: not valid JSON (line {e.lineno}, column {e.colno}: "
                             f"{e.msg})") from None
        return cls.from_dict(data, source=json_file)

    def to_dict(self):
        output = {"vocab_size": self.vocab_size}
        output.update({key: getattr(self, key) for key in self._DEFAULTS})
        output.update(copy.deepcopy(self.extra))
        return output

    def to_json_string(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file):
        """Writes the config atomically (temporary name, then rename)."""
        tmp = f"{json_file}.tmp"
        with tf.io.gfile.GFile(tmp, "w") as writer:
            writer.write(self.to_json_string())
        tf.io.gfile.rename(tmp, json_file, overwrite=True)

    def __eq__(self, other):
        return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"BertConfig({self.to_dict()})"


# ---------------------------------------------------------------------------------------------------
# Small building blocks


_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# Performance: XLA compiles each of GELU's two functions into one loop over the tensor (about 2.5x
# faster than the separate TensorFlow ops on CPU, the largest elementwise tensor of the model being
# [B, S, I]); the matrix products around it stay with oneDNN, faster than XLA's on CPU. Set
# COMPILE_GELU_WITH_XLA = False to run the same functions as ordinary TensorFlow ops.
COMPILE_GELU_WITH_XLA = True


def _maybe_xla(fn):
    """`fn`, compiled with XLA when COMPILE_GELU_WITH_XLA (read at call time)."""
    compiled = tf.function(fn, jit_compile=True, autograph=False)

    @functools.wraps(fn)
    def call(*args):
        return (compiled if COMPILE_GELU_WITH_XLA else fn)(*args)

    return call


@_maybe_xla
def _gelu_forward(x):
    xw = tf.cast(x, _wide(x.dtype))
    return tf.cast(xw * (0.5 * tf.math.erfc(-_SQRT_HALF * xw)), x.dtype)


@_maybe_xla
def _gelu_backward(x, dy):
    """dy * GELU'(x) = dy * (Phi(x) + x * phi(x))."""
    xw = tf.cast(x, _wide(x.dtype))
    cdf = 0.5 * tf.math.erfc(-_SQRT_HALF * xw)
    pdf = _INV_SQRT_2PI * tf.exp(-0.5 * tf.square(xw))
    return tf.cast(tf.cast(dy, xw.dtype) * (cdf + xw * pdf), x.dtype)


def _wide(dtype):
    """float32 for 16-bit dtypes (TensorFlow's bfloat16 erfc is slow and coarse), else dtype."""
    return tf.float32 if dtype.size < 4 else dtype


@tf.custom_gradient
def gelu(x):
    """Exact GELU, x * Phi(x) with the Gaussian CDF (as HuggingFace's "gelu").

    Performance: computed in float32 for 16-bit inputs, and with its gradient written out
    (dy * (Phi(x) + x * phi(x))) rather than derived op by op from erfc. Same values as
    tf.nn.gelu up to float round-off.
    """
    return _gelu_forward(x), lambda dy: _gelu_backward(x, dy)


def gelu_tanh(x):
    """The tanh approximation of GELU that the original TF1 code used."""
    return tf.nn.gelu(x, approximate=True)


ACTIVATIONS = {
    "gelu": gelu,
    "gelu_new": gelu_tanh,
    "gelu_tanh": gelu_tanh,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "linear": tf.identity,
}


def get_activation(name):
    """Maps an activation name of `bert_config.json` to a function."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def truncated_normal(stddev):
    """Initializer: normal with `stddev`, redrawn beyond two standard deviations (the original)."""
    return lambda shape: tf.random.truncated_normal(shape, stddev=stddev)


def _zeros(shape):
    return tf.zeros(shape)


def _ones(shape):
    return tf.ones(shape)


def new_variable(name, shape, initializer):
    """A float32 trainable variable carrying its full checkpoint name."""
    return tf.Variable(initializer(shape), name=name, dtype=tf.float32)


def dropout(x, rate, training):
    if not training or rate == 0.0:
        return x
    return tf.nn.dropout(x, rate=rate)


class Dense(tf.Module):
    """`<scope>/kernel` [in, out] and `<scope>/bias` [out]; computes in the input's dtype."""

    def __init__(self, scope, in_size, out_size, initializer_range, activation=None):
        super().__init__(name=None)
        self.kernel = new_variable(f"{scope}/kernel", [in_size, out_size],
                                   truncated_normal(initializer_range))
        self.bias = new_variable(f"{scope}/bias", [out_size], _zeros)
        self.activation = activation

    def __call__(self, x):
        # `+`, not tf.nn.bias_add: BiasAddGrad sums bfloat16 gradients in bfloat16 (lossy over
        # thousands of rows); the broadcast add's gradient sums them in float32.
        y = matmul_last_axis(x, tf.cast(self.kernel, x.dtype)) + tf.cast(self.bias, x.dtype)
        return self.activation(y) if self.activation else y


def matmul_last_axis(x, kernel, transpose_b=False):
    """x [..., in] times kernel [in, out] (or [out, in] with transpose_b) -> [..., out].

    Performance: the leading axes are folded into one so that this is a single 2-D MatMul. A 3-D
    `x` times a 2-D kernel would otherwise be a broadcasting BatchMatMul, whose kernel gradient
    computes one [in, out] product per batch row and then sums them (for the masked-LM output
    layer that is a [B, V, H] intermediate); the 2-D form gets the same sums from one GEMM over all
    rows. Same dot products, so the results differ at most by float round-off (summation order).
    """
    if x.shape.rank == 2:
        return tf.matmul(x, kernel, transpose_b=transpose_b)
    in_size, out_size = kernel.shape[::-1] if transpose_b else kernel.shape
    y = tf.matmul(tf.reshape(x, [-1, in_size]), kernel, transpose_b=transpose_b)
    if x.shape[:-1].is_fully_defined():
        return tf.reshape(y, x.shape[:-1].as_list() + [out_size])
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [out_size]], 0))


class LayerNorm(tf.Module):
    """`<scope>/gamma` and `<scope>/beta`; always normalises in float32, returns the input dtype."""

    def __init__(self, scope, size):
        super().__init__(name=None)
        self.gamma = new_variable(f"{scope}/gamma", [size], _ones)
        self.beta = new_variable(f"{scope}/beta", [size], _zeros)

    def __call__(self, x):
        return layer_norm(x, tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta))


@tf.custom_gradient
def layer_norm(x, gamma, beta):
    """LayerNorm of the last axis in float32, returned in x's dtype.

    Performance: the gradient is written out (dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))
    with g = dy * gamma) instead of being derived op by op from tf.nn.moments and
    tf.nn.batch_normalization, which takes about twice as many passes over [B, S, H]. Same values
    up to float round-off.
    """
    x32 = tf.cast(x, tf.float32)
    mean = tf.reduce_mean(x32, axis=-1, keepdims=True)
    centered = x32 - mean
    rstd = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
                         + LAYER_NORM_EPSILON)
    normed = centered * rstd

    def grad(dy):
        dy = tf.cast(dy, tf.float32)
        rows = list(range(dy.shape.rank - 1))
        g = dy * gamma
        dx = rstd * (g - tf.reduce_mean(g, axis=-1, keepdims=True)
                     - normed * tf.reduce_mean(g * normed, axis=-1, keepdims=True))
        return tf.cast(dx, x.dtype), tf.reduce_sum(dy * normed, rows), tf.reduce_sum(dy, rows)

    return tf.cast(normed * gamma + beta, x.dtype), grad


# ---------------------------------------------------------------------------------------------------
# The encoder


class Embeddings(tf.Module):
    """bert/embeddings: word + token type + position embeddings, LayerNorm, dropout."""

    def __init__(self, config, use_one_hot_embeddings=False):
        super().__init__(name=None)
        scope = "bert/embeddings"
        init = truncated_normal(config.initializer_range)
        h = config.hidden_size
        self.config = config
        self.use_one_hot_embeddings = use_one_hot_embeddings
        self.word_embeddings = new_variable(f"{scope}/word_embeddings", [config.vocab_size, h], init)
        self.token_type_embeddings = new_variable(f"{scope}/token_type_embeddings",
                                                  [config.type_vocab_size, h], init)
        self.position_embeddings = new_variable(f"{scope}/position_embeddings",
                                                [config.max_position_embeddings, h], init)
        self.layer_norm = LayerNorm(f"{scope}/LayerNorm", h)

    def _lookup(self, table, ids):
        if self.use_one_hot_embeddings:  # a matmul is faster than a gather on TPUs
            return tf.matmul(tf.one_hot(ids, tf.shape(table)[0], dtype=table.dtype), table)
        return tf.gather(table, ids)

    def __call__(self, input_ids, token_type_ids, training, compute_dtype):
        seq_length = input_ids.shape[1]
        if seq_length is not None and seq_length > self.config.max_position_embeddings:
            raise ValueError(f"sequence length {seq_length} exceeds max_position_embeddings "
                             f"({self.config.max_position_embeddings}) of the BERT config")
        x = self._lookup(self.word_embeddings, input_ids)                   # [B, S, H]
        x += self._lookup(self.token_type_embeddings, token_type_ids)       # [B, S, H]
        x += self.position_embeddings[:tf.shape(input_ids)[1]][tf.newaxis]  # [1, S, H]
        x = self.layer_norm(x)
        x = dropout(x, self.config.hidden_dropout_prob, training)
        return tf.cast(x, compute_dtype)


class SelfAttention(tf.Module):
    """bert/encoder/layer_{i}/attention/self: multi-head scaled dot-product attention."""

    def __init__(self, scope, config):
        super().__init__(name=None)
        h, r = config.hidden_size, config.initializer_range
        self.num_heads = config.num_attention_heads
        self.head_size = h // self.num_heads
        self.dropout_rate = config.attention_probs_dropout_prob
        self.query = Dense(f"{scope}/query", h, h, r)
        self.key = Dense(f"{scope}/key", h, h, r)
        self.value = Dense(f"{scope}/value", h, h, r)

    def _split_heads(self, x):
        """[B, S, H] -> [B, N, S, D]."""
        b, s = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [b, s, self.num_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    def __call__(self, x, attention_bias, training):
        # Performance: one [H, 3H] product instead of three [H, H] ones (the three kernels are
        # concatenated at call time; the variables stay as they are) and one transpose to split
        # the heads of all three. Each output column is the same dot product as before.
        kernel = tf.concat([self.query.kernel, self.key.kernel, self.value.kernel], axis=1)
        bias = tf.concat([self.query.bias, self.key.bias, self.value.bias], axis=0)
        qkv = matmul_last_axis(x, tf.cast(kernel, x.dtype)) + tf.cast(bias, x.dtype)  # [B, S, 3H]
        b, s = tf.shape(x)[0], tf.shape(x)[1]
        qkv = tf.reshape(qkv, [b, s, 3, self.num_heads, self.head_size])
        q, k, v = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4]))              # 3 x [B, N, S, D]
        q *= tf.cast(1.0 / math.sqrt(self.head_size), q.dtype)
        scores = tf.matmul(q, k, transpose_b=True)                           # [B, N, F, T]
        # Softmax in float32: bfloat16's 8-bit mantissa loses the small probabilities.
        probs = tf.nn.softmax(tf.cast(scores, tf.float32) + attention_bias)  # [B, N, F, T]
        probs = dropout(probs, self.dropout_rate, training)
        context = tf.matmul(tf.cast(probs, v.dtype), v)                      # [B, N, F, D]
        context = tf.transpose(context, [0, 2, 1, 3])                        # [B, F, N, D]
        b, f = tf.shape(x)[0], tf.shape(x)[1]
        return tf.reshape(context, [b, f, self.num_heads * self.head_size])  # [B, F, H]


class TransformerLayer(tf.Module):
    """bert/encoder/layer_{i}: attention, then the feed-forward block, each with a residual."""

    def __init__(self, scope, config):
        super().__init__(name=None)
        h, i, r = config.hidden_size, config.intermediate_size, config.initializer_range
        self.dropout_rate = config.hidden_dropout_prob
        self.attention = SelfAttention(f"{scope}/attention/self", config)
        self.attention_output = Dense(f"{scope}/attention/output/dense", h, h, r)
        self.attention_norm = LayerNorm(f"{scope}/attention/output/LayerNorm", h)
        self.intermediate = Dense(f"{scope}/intermediate/dense", h, i, r,
                                  activation=get_activation(config.hidden_act))
        self.output = Dense(f"{scope}/output/dense", i, h, r)
        self.output_norm = LayerNorm(f"{scope}/output/LayerNorm", h)

    def __call__(self, x, attention_bias, training):
        a = self.attention(x, attention_bias, training)                     # [B, S, H]
        a = dropout(self.attention_output(a), self.dropout_rate, training)
        x = self.attention_norm(a + x)
        y = self.output(self.intermediate(x))                                # [B, S, I] -> [B, S, H]
        y = dropout(y, self.dropout_rate, training)
        return self.output_norm(y + x)


class BertOutputs(NamedTuple):
    sequence_output: tf.Tensor      # [B, S, H], the last layer
    pooled_output: tf.Tensor        # [B, H], tanh(dense(first token of the last layer))
    all_encoder_layers: list        # num_hidden_layers x [B, S, H]
    embedding_output: tf.Tensor     # [B, S, H], after embedding LayerNorm and dropout


def check_input_ids(input_ids, size, name):
    """Assertions that every id lies in [0, size).

    Out-of-range ids give silent zeros on GPUs and NaNs or crashes elsewhere; this check makes a
    vocabulary / config mismatch visible at its source. Returns the assertion ops (graph mode).
    """
    return [
        tf.debugging.assert_less(
            tf.reduce_max(input_ids), tf.cast(size, input_ids.dtype),
            message=f"{name}: an id is >= {size}; do the vocab file / input features and "
                    "bert_config.json belong together?"),
        tf.debugging.assert_greater_equal(
            tf.reduce_min(input_ids), tf.zeros([], input_ids.dtype),
            message=f"{name}: an id is negative"),
    ]


class BertModel(tf.Module):
    """BERT encoder: `BertModel(config)(input_ids, input_mask, token_type_ids) -> BertOutputs`.

    Args:
      config: BertConfig.
      compute_dtype: tf.float32 (default) or tf.bfloat16 for mixed precision.
      use_one_hot_embeddings: look embeddings up with a one-hot matmul (faster on TPU).
      check_ids: verify ids against vocab_size / type_vocab_size on every call.
    """

    def __init__(self, config, compute_dtype=tf.float32, use_one_hot_embeddings=False,
                 check_ids=True):
        super().__init__(name=None)
        self.config = config
        self.compute_dtype = tf.as_dtype(compute_dtype)
        if self.compute_dtype not in (tf.float32, tf.bfloat16, tf.float16):
            raise ValueError(f"compute_dtype must be float32 or bfloat16, got {compute_dtype}")
        self.check_ids = check_ids
        self.embeddings = Embeddings(config, use_one_hot_embeddings)
        self.layers = [TransformerLayer(f"bert/encoder/layer_{i}", config)
                       for i in range(config.num_hidden_layers)]
        self.pooler = Dense("bert/pooler/dense", config.hidden_size, config.hidden_size,
                            config.initializer_range)

    @property
    def embedding_table(self):
        return self.embeddings.word_embeddings

    def get_embedding_table(self):
        return self.embeddings.word_embeddings

    def __call__(self, input_ids, input_mask=None, token_type_ids=None, training=False):
        """input_ids, input_mask (1 = real token, 0 = padding), token_type_ids: int [B, S]."""
        input_ids = tf.convert_to_tensor(input_ids)
        if input_mask is None:
            input_mask = tf.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = tf.zeros_like(input_ids)
        if self.check_ids:
            with tf.control_dependencies(
                    check_input_ids(input_ids, self.config.vocab_size, "input_ids (vocab_size)")
                    + check_input_ids(token_type_ids, self.config.type_vocab_size,
                                      "token_type_ids (type_vocab_size)")):
                input_ids = tf.identity(input_ids)
        x = self.embeddings(input_ids, token_type_ids, training, self.compute_dtype)
        embedding_output = x
        # [B, T] -> [B, 1, 1, T]: 0 where attending is allowed, MASK_BIAS on padding.
        attention_bias = (1.0 - tf.cast(input_mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]) \
            * MASK_BIAS
        all_layers = []
        for layer in self.layers:
            x = layer(x, attention_bias, training)
            all_layers.append(x)
        first_token = tf.cast(x[:, 0], tf.float32)                           # [B, H]
        pooled = tf.tanh(self.pooler(first_token))                           # [B, H]
        return BertOutputs(x, pooled, all_layers, embedding_output)


# ---------------------------------------------------------------------------------------------------
# Heads. Each computes its logits in float32.


def gather_positions(sequence, positions):
    """sequence [B, S, H], positions int [B, P] -> [B, P, H]."""
    return tf.gather(sequence, positions, batch_dims=1)


class MaskedLMHead(tf.Module):
    """cls/predictions: dense + activation + LayerNorm, then the word-embedding matrix (tied)."""

    def __init__(self, config, embedding_table):
        super().__init__(name=None)
        h, r = config.hidden_size, config.initializer_range
        self.transform = Dense("cls/predictions/transform/dense", h, h, r,
                               activation=get_activation(config.hidden_act))
        self.layer_norm = LayerNorm("cls/predictions/transform/LayerNorm", h)
        self.output_bias = new_variable("cls/predictions/output_bias", [config.vocab_size], _zeros)
        self.embedding_table = embedding_table

    def __call__(self, sequence_output, positions):
        """sequence_output [B, S, H], positions [B, P] -> logits [B, P, V] (float32).

        Only the masked positions are projected onto the vocabulary, the costly part.
        """
        x = gather_positions(sequence_output, positions)                     # [B, P, H]
        x = self.layer_norm(self.transform(x))
        table = tf.cast(self.embedding_table, x.dtype)                       # [V, H]
        logits = matmul_last_axis(x, table, transpose_b=True)                # [B, P, V]
        return tf.cast(logits, tf.float32) + self.output_bias


class _OutputLayer(tf.Module):
    """`<prefix>output_weights` [L, H] and `<prefix>output_bias` [L] (the original's layout)."""

    def __init__(self, prefix, num_outputs, config):
        super().__init__(name=None)
        self.output_weights = new_variable(f"{prefix}output_weights",
                                           [num_outputs, config.hidden_size],
                                           truncated_normal(config.initializer_range))
        self.output_bias = new_variable(f"{prefix}output_bias", [num_outputs], _zeros)

    def logits(self, x):
        """x [..., H] -> [..., L] in float32."""
        return matmul_last_axis(tf.cast(x, tf.float32), self.output_weights,
                                transpose_b=True) + self.output_bias


class NextSentenceHead(_OutputLayer):
    """cls/seq_relationship: pooled output -> 2 logits (0 = is next, 1 = random)."""

    def __init__(self, config):
        super().__init__("cls/seq_relationship/", 2, config)

    def __call__(self, pooled_output):
        return self.logits(pooled_output)                                    # [B, 2]


class ClassifierHead(_OutputLayer):
    """run_classifier's `output_weights` [L, H] / `output_bias` [L] over the dropped-out pooler."""

    def __init__(self, config, num_labels, dropout_rate=0.1):
        super().__init__("", num_labels, config)
        self.dropout_rate = dropout_rate

    def __call__(self, pooled_output, training=False):
        return self.logits(dropout(pooled_output, self.dropout_rate, training))  # [B, L]


class SpanHead(_OutputLayer):
    """cls/squad: per-token start and end logits for extractive question answering."""

    def __init__(self, config):
        super().__init__("cls/squad/", 2, config)

    def __call__(self, sequence_output):
        logits = self.logits(sequence_output)                                # [B, S, 2]
        return logits[..., 0], logits[..., 1]                                # [B, S] each


# ---------------------------------------------------------------------------------------------------
# Losses (float32)


def masked_lm_loss(logits, label_ids, label_weights):
    """Weighted mean cross entropy over the masked positions, as the original.

    logits [B, P, V], label_ids [B, P], label_weights [B, P] (0 for padding predictions).
    Returns (loss, per_example_loss [B, P]).
    """
    per_position = sparse_softmax_cross_entropy(label_ids, logits)
    weights = tf.cast(label_weights, tf.float32)
    loss = tf.reduce_sum(per_position * weights) / (tf.reduce_sum(weights) + 1e-5)
    return loss, per_position


def sparse_softmax_cross_entropy(labels, logits):
    """tf.nn.sparse_softmax_cross_entropy_with_logits, in float32, for logits [..., V].

    Performance: TensorFlow's fused kernel is slow on CPU for [B * P, V] masked-LM logits; here the
    loss is logsumexp(logits) - logits[label] and the gradient (softmax(logits) - one_hot(label))
    * dloss, with oneDNN's softmax and a scatter at the labels: about half the time. Same values up
    to float round-off; out-of-range labels still raise (in tf.gather).
    """
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    rows = tf.reshape(logits, [-1, tf.shape(logits)[-1]])                   # [N, V]
    flat_labels = tf.reshape(labels, [-1])                                   # [N]

    @tf.custom_gradient
    def xent(rows):
        loss = tf.reduce_logsumexp(rows, axis=-1) - tf.gather(rows, flat_labels, batch_dims=1)

        def grad(dloss):
            at_labels = tf.stack([tf.range(tf.shape(flat_labels)[0]), flat_labels], axis=1)
            return tf.tensor_scatter_nd_sub(tf.nn.softmax(rows) * dloss[:, tf.newaxis],
                                            at_labels, dloss)

        return loss, grad

    return tf.reshape(xent(rows), tf.shape(labels))


def classification_loss(logits, labels):
    """Mean softmax cross entropy; logits [B, L], labels int [B]. Returns (loss, per_example)."""
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))
    return tf.reduce_mean(per_example), per_example


# ---------------------------------------------------------------------------------------------------
# Variable names


def named_variables(*modules):
    """{original checkpoint name: variable} for every variable of `modules`.

    Raises if two variables share a name (two heads built twice, say), which would make a
    checkpoint ambiguous.
    """
    named = {}
    for module in modules:
        for variable in module.variables:
            name = variable.name.split(":")[0]
            if name in named and named[name] is not variable:
                raise ValueError(f"two variables are named {name!r}")
            named[name] = variable
    return dict(sorted(named.items()))


def count_parameters(*modules):
    return int(sum(np.prod(v.shape) for v in named_variables(*modules).values()))


# ---------------------------------------------------------------------------------------------------
# The pretraining model: BertModel with both pretraining heads, its loss and its metrics.
# Feature names are those of the pretraining TFRecords (create_pretraining_data.py).


class BertPretrainer(tf.Module):
    """`bert/...` plus `cls/predictions/...` and `cls/seq_relationship/...`: the original graph."""

    def __init__(self, config, compute_dtype=tf.float32, use_one_hot_embeddings=False):
        super().__init__(name=None)
        self.bert = BertModel(config, compute_dtype, use_one_hot_embeddings)
        self.mlm = MaskedLMHead(config, self.bert.embedding_table)
        self.nsp = NextSentenceHead(config)

    def __call__(self, features, training=False):
        """features: input_ids, input_mask, segment_ids [B, S], masked_lm_positions [B, P].

        Returns (masked-LM logits [B, P, V], next-sentence logits [B, 2]), float32.
        """
        out = self.bert(features["input_ids"], features["input_mask"], features["segment_ids"],
                        training=training)
        return (self.mlm(out.sequence_output, features["masked_lm_positions"]),
                self.nsp(out.pooled_output))


def _pretraining_losses(model, features, training):
    mlm_logits, nsp_logits = model(features, training)
    mlm_loss, _ = masked_lm_loss(mlm_logits, features["masked_lm_ids"],
                                 features["masked_lm_weights"])
    labels = tf.reshape(features["next_sentence_labels"], [-1])
    nsp_loss, _ = classification_loss(nsp_logits, labels)
    return mlm_logits, nsp_logits, labels, mlm_loss, nsp_loss


def pretraining_loss(model, features, training):
    """Masked-LM loss (weighted by masked_lm_weights) plus next-sentence loss, as the original."""
    _, _, _, mlm_loss, nsp_loss = _pretraining_losses(model, features, training)
    return mlm_loss + nsp_loss


def pretraining_metrics(model, features):
    """{name: (sum, count)} for the original eval_results.txt of run_pretraining.py."""
    mlm_logits, nsp_logits, labels, mlm_loss, nsp_loss = _pretraining_losses(model, features, False)
    weights = tf.cast(features["masked_lm_weights"], tf.float32)
    mlm_hit = tf.cast(tf.equal(tf.argmax(mlm_logits, -1, output_type=tf.int32),
                               tf.cast(features["masked_lm_ids"], tf.int32)), tf.float32)
    nsp_hit = tf.cast(tf.equal(tf.argmax(nsp_logits, -1, output_type=tf.int32),
                               tf.cast(labels, tf.int32)), tf.float32)
    batch = tf.cast(tf.shape(labels)[0], tf.float32)
    return {"masked_lm_accuracy": (tf.reduce_sum(mlm_hit * weights), tf.reduce_sum(weights)),
            "masked_lm_loss": (mlm_loss * batch, batch),
            "next_sentence_accuracy": (tf.reduce_sum(nsp_hit), batch),
            "next_sentence_loss": (nsp_loss * batch, batch),
            "loss": ((mlm_loss + nsp_loss) * batch, batch)}
