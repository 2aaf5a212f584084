"""The BERT model and its heads, on TensorFlow 2 (eager + tf.function).

The module tree mirrors the original variable scopes, so every checkpoint name maps to one obvious
place in the code (class, and attribute of its parent):

  bert/embeddings/...                            Embeddings          BertModel.embeddings
  bert/encoder/layer_{i}/...                     TransformerLayer    BertModel.layers[i]
    attention/self/{query,key,value}/...         SelfAttention       .attention
    attention/output/dense/...                   Dense               .attention_output
    attention/output/LayerNorm/...               LayerNorm           .attention_norm
    intermediate/dense/...                       Dense               .intermediate
    output/dense/...                             Dense               .output
    output/LayerNorm/...                         LayerNorm           .output_norm
  bert/pooler/dense/...                          Dense               BertModel.pooler
  cls/predictions/...                            MaskedLMHead        BertPretrainer.mlm
  cls/seq_relationship/...                       NextSentenceHead    BertPretrainer.nsp
  output_weights, output_bias                    ClassifierHead      BertClassifier.classifier,
                                                                     BertTokenClassifier.classifier
  cls/squad/...                                  SpanHead            BertQuestionAnswering.span

Every variable is created with its full original name (`tf.Variable(name=...)`), and
`checkpoints.named_variables()` returns them keyed by that name; `checkpoints.py` reads and writes name-based
checkpoints from that mapping, so the names on disk are exactly the original ones.

Precision: variables are always float32. With `compute_dtype=tf.bfloat16` the matrix products run in
bfloat16 while LayerNorm, softmax, the pooler's tanh input and every loss run in float32. Gradients
of weight matrices and biases come out of bfloat16 products (summed in float32, rounded to bfloat16
once).

The elementwise work between the matrix products (GELU, LayerNorm, dropout, the attention softmax,
the cross entropy) runs as fused kernels with hand-written gradients: `kernels.py`, where each
kernel sits beside a plain TensorFlow reference of the same function and the performance reasoning
is written down.

Dimension legend used in shape comments:
  B = batch size, S = sequence length (F = "from", T = "to" in attention),
  H = hidden size, N = attention heads, D = size per head (H / N), I = intermediate size,
  V = vocabulary size, P = predictions per sequence, L = number of labels.
"""

import copy
import errno
import json
import logging
import math
from typing import NamedTuple

import tensorflow as tf

import file_io
import kernels
from errors import InputError

logger = logging.getLogger(__name__)

# LayerNorm epsilon of the original implementation (the TF1 layer_norm default it used), which
# the LayerNorm kernels apply.
LAYER_NORM_EPSILON = kernels.LAYER_NORM_EPSILON
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
                raise InputError(f"{source}: `{key}` must be a positive integer, got {value!r}")
        for key in self._FLOAT_KEYS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InputError(f"{source}: `{key}` must be a non-negative number, got {value!r}")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if getattr(self, key) >= 1:
                raise InputError(f"{source}: `{key}` must be below 1, got {getattr(self, key)!r}")
        if self.hidden_size % self.num_attention_heads:
            raise InputError(f"{source}: hidden_size ({self.hidden_size}) is not a multiple of "
                             f"num_attention_heads ({self.num_attention_heads})")
        if self.hidden_act not in ACTIVATIONS:
            raise InputError(f"{source}: unknown hidden_act {self.hidden_act!r}; expected one of "
                             f"{sorted(ACTIVATIONS)}")

    @classmethod
    def from_dict(cls, json_object, source="BertConfig.from_dict"):
        if not isinstance(json_object, dict):
            raise InputError(f"{source}: expected a JSON object, got {type(json_object).__name__}")
        if "vocab_size" not in json_object:
            raise InputError(f"{source}: missing required key `vocab_size` (is this a BERT "
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
            raise FileNotFoundError(errno.ENOENT, "BERT config file not found", json_file) from None
        except tf.errors.OpError as e:  # a directory, no permission, ...
            raise InputError(f"{json_file}: cannot read the BERT config file "
                             f"({e.message.strip()})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{json_file}: not valid JSON (line {e.lineno}, column {e.colno}: "
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
        """Writes the config atomically (file_io: temporary name, then rename)."""
        file_io.write_text_atomically(json_file, self.to_json_string())

    def __eq__(self, other):
        return isinstance(other, BertConfig) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"BertConfig({self.to_dict()})"


# ---------------------------------------------------------------------------------------------------
# Small building blocks (the fused elementwise kernels they call are in kernels.py)

# Activations that Dense fuses with its bias add (the others are applied after a plain `+`).
_FUSED_BIAS_ACTIVATIONS = {kernels.gelu: kernels.bias_gelu}


def gelu_tanh(x):
    """The tanh approximation of GELU that the original TF1 code used."""
    return tf.nn.gelu(x, approximate=True)


ACTIVATIONS = {
    "gelu": kernels.gelu,
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


class Dense(tf.Module):
    """`<scope>/kernel` [in, out] and `<scope>/bias` [out]; computes in the input's dtype."""

    def __init__(self, scope, in_size, out_size, initializer_range, activation=None):
        super().__init__(name=None)
        self.kernel = new_variable(f"{scope}/kernel", [in_size, out_size],
                                   truncated_normal(initializer_range))
        self.bias = new_variable(f"{scope}/bias", [out_size], _zeros)
        self.activation = activation

    def product(self, x):
        """x times the kernel, without the bias, in x's dtype."""
        return matmul_last_axis(x, tf.cast(self.kernel, x.dtype))

    def __call__(self, x):
        # The bias and activation apply to the 2-D product, before its leading axes are restored:
        # the graph optimizer fuses MatMul + BiasAdd + GELU only when they follow each other
        # (kernels.standard_ops).
        return matmul_last_axis(x, tf.cast(self.kernel, x.dtype), epilogue=self._bias_activation)

    def _bias_activation(self, y):
        fused = _FUSED_BIAS_ACTIVATIONS.get(self.activation)
        if fused:
            return fused(y, tf.convert_to_tensor(self.bias))
        if kernels.standard_ops_enabled() and y.dtype == tf.float32:
            y = tf.nn.bias_add(y, self.bias)
        else:
            # `+`, not tf.nn.bias_add: BiasAddGrad sums bfloat16 gradients in bfloat16 (lossy
            # over thousands of rows); the broadcast add's gradient sums them in float32.
            y += tf.cast(self.bias, y.dtype)
        return self.activation(y) if self.activation else y


def matmul_last_axis(x, kernel, transpose_b=False, epilogue=None):
    """x [..., in] times kernel [in, out] (or [out, in] with transpose_b) -> [..., out]; with
    `epilogue`, epilogue(product) [rows, out] before the leading axes are restored.

    Performance: the leading axes are folded into one so that this is a single 2-D MatMul. A 3-D
    `x` times a 2-D kernel would otherwise be a broadcasting BatchMatMul, whose kernel gradient
    computes one [in, out] product per batch row and then sums them (for the masked-LM output
    layer that is a [B, V, H] intermediate); the 2-D form gets the same sums from one GEMM over all
    rows. Same dot products, so the results differ at most by float round-off (summation order).
    """
    epilogue = epilogue or (lambda y: y)
    if x.shape.rank == 2:
        return epilogue(tf.matmul(x, kernel, transpose_b=transpose_b))
    in_size, out_size = kernel.shape[::-1] if transpose_b else kernel.shape
    y = epilogue(tf.matmul(tf.reshape(x, [-1, in_size]), kernel, transpose_b=transpose_b))
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
        return kernels.layer_norm(x, tf.convert_to_tensor(self.gamma),
                                  tf.convert_to_tensor(self.beta))

    def add_and_norm(self, y, bias, residual, dropout_rate, training, key=None):
        """LayerNorm(dropout(y + bias) + residual): see kernels.dropout_add_layer_norm (bias None:
        y has its bias, with kernels.standard_ops only)."""
        bias = None if bias is None else tf.convert_to_tensor(bias)
        return kernels.dropout_add_layer_norm(y, bias, residual,
                                              tf.convert_to_tensor(self.gamma),
                                              tf.convert_to_tensor(self.beta),
                                              dropout_rate if training else 0.0, key)


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
        # A gather from the variable's value, not from the variable (ResourceGather): a variable
        # read by a sparse op switches to copy-on-read, after which every dense read (the tied
        # masked-LM decoder, the optimizer) copies the whole table (performance).
        return tf.gather(tf.convert_to_tensor(table), ids)

    def __call__(self, input_ids, token_type_ids, training, compute_dtype):
        seq_length = input_ids.shape[1]
        if seq_length is not None and seq_length > self.config.max_position_embeddings:
            raise InputError(f"sequence length {seq_length} exceeds max_position_embeddings "
                             f"({self.config.max_position_embeddings}) of the BERT config")
        x = self._lookup(self.word_embeddings, input_ids)                   # [B, S, H]
        x += self._lookup(self.token_type_embeddings, token_type_ids)       # [B, S, H]
        x += self.position_embeddings[:tf.shape(input_ids)[1]][tf.newaxis]  # [1, S, H]
        x = self.layer_norm(x)
        x = kernels.dropout(x, self.config.hidden_dropout_prob, training)
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

    def __call__(self, x, attention_bias, training, key=None):
        """x [B, S, H], attention_bias [B, 1, 1, T] -> [B, S, H]; key: the attention dropout's."""
        q, k, v = self._heads(x)                                             # 3 x [B, N, S, D]
        scores = tf.matmul(q, k, transpose_b=True)                           # [B, N, F, T]
        probs = kernels.attention_probs(scores, attention_bias,
                                        self.dropout_rate if training else 0.0, key)  # [B, N, F, T]
        context = tf.matmul(probs, v)                                        # [B, N, F, D]
        context = tf.transpose(context, [0, 2, 1, 3])                        # [B, F, N, D]
        b, f = tf.shape(x)[0], tf.shape(x)[1]
        return tf.reshape(context, [b, f, self.num_heads * self.head_size])  # [B, F, H]

    def _heads(self, x):
        """q / sqrt(D), k, v [B, N, S, D] of x [B, S, H]."""
        scale = 1.0 / math.sqrt(self.head_size)
        if kernels.standard_ops_enabled():
            # Three products, each with its bias fused into it by Grappler: no copy of the
            # kernels (the concatenation below copies 3 H^2 values per call, which costs more
            # than it saves for the short batches of serving).
            b, s = tf.shape(x)[0], tf.shape(x)[1]
            q, k, v = (tf.transpose(tf.reshape(dense(x), [b, s, self.num_heads, -1]),
                                    [0, 2, 1, 3]) for dense in (self.query, self.key, self.value))
            return q * tf.cast(scale, q.dtype), k, v
        # Performance: one [H, 3H] product instead of three [H, H] ones (the three kernels are
        # concatenated at call time; the variables stay as they are), then one fused pass adds
        # the bias, splits the heads of all three and scales q. Each output column is the same
        # dot product as before.
        kernel = tf.concat([self.query.kernel, self.key.kernel, self.value.kernel], axis=1)
        bias = tf.concat([self.query.bias, self.key.bias, self.value.bias], axis=0)
        qkv = matmul_last_axis(x, tf.cast(kernel, x.dtype))                  # [B, S, 3H]
        return kernels.split_heads(qkv, bias, self.num_heads, scale)


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

    def __call__(self, x, attention_bias, training, recompute=False):
        """x [B, S, H] in the compute dtype, attention_bias float32 [B, 1, 1, T] -> [B, S, H].

        recompute: keep only x (and the dropout keys) for the backward pass, which runs the layer
        again to get its activations (`tf.recompute_grad`: the forward pass is not recorded on
        the gradient tape; the backward pass records the second run and differentiates it). The
        keys are drawn here, outside both runs, so that the second run drops exactly what the
        first dropped and the gradients are those without recomputation.
        """
        keys = self.dropout_keys(training)

        def forward(x):
            return self._forward(x, attention_bias, training, keys)

        return tf.recompute_grad(forward)(x) if recompute else forward(x)

    def dropout_keys(self, training):
        """Fresh keys of the layer's three dropout masks (attention probabilities, attention
        output, output), in that order; None for a mask without dropout."""
        rates = (self.attention.dropout_rate, self.dropout_rate, self.dropout_rate)
        return [kernels.new_dropout_key() if training and rate else None for rate in rates]

    def _forward(self, x, attention_bias, training, keys):
        a = self.attention(x, attention_bias, training, keys[0])           # [B, S, H]
        x = self._output(self.attention_output, self.attention_norm, a, x, training, keys[1])
        return self._output(self.output, self.output_norm, self.intermediate(x), x, training,
                            keys[2])                                         # [B, S, I] -> [B, S, H]

    def _output(self, dense, norm, y, residual, training, key):
        """norm(dropout(dense(y)) + residual): the end of each half of the layer."""
        if kernels.standard_ops_enabled():
            # The bias in the product, where Grappler fuses it with the MatMul.
            return norm.add_and_norm(dense(y), None, residual, self.dropout_rate, training, key)
        return norm.add_and_norm(dense.product(y), dense.bias, residual, self.dropout_rate,
                                 training, key)


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
      gradient_checkpointing: recompute each Transformer layer's activations in the backward
        pass instead of keeping them from the forward pass (TransformerLayer's `recompute`):
        activation memory of about one layer plus the layers' inputs instead of all layers, for
        about one more forward pass of the encoder per step, and the same gradients. The last
        layer is not recomputed: its backward pass comes right after the heads', so keeping its
        activations adds only the heads' (small) to the peak and saves its second run.
    """

    def __init__(self, config, compute_dtype=tf.float32, use_one_hot_embeddings=False,
                 check_ids=True, gradient_checkpointing=False):
        super().__init__(name=None)
        self.config = config
        self.gradient_checkpointing = gradient_checkpointing
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
        for i, layer in enumerate(self.layers):
            recompute = self.gradient_checkpointing and i < len(self.layers) - 1
            x = layer(x, attention_bias, training, recompute)
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
        return kernels.add_bias_float32(self._products(sequence_output, positions),
                                        tf.convert_to_tensor(self.output_bias))

    def loss(self, sequence_output, positions, label_ids, label_weights):
        """masked_lm_loss(self(sequence_output, positions), label_ids, label_weights)[0].

        Performance: the float32 logits are never stored; the bias add is part of the cross
        entropy's passes over the compute-dtype products (same values).
        """
        per_position = kernels.sparse_softmax_cross_entropy(
            label_ids, self._products(sequence_output, positions),
            bias=tf.convert_to_tensor(self.output_bias))
        return _weighted_mean(per_position, label_weights)

    def _products(self, sequence_output, positions):
        """[B, P, V] in the compute dtype: the logits without their bias."""
        x = gather_positions(sequence_output, positions)                     # [B, P, H]
        x = self.layer_norm(self.transform(x))
        table = tf.cast(self.embedding_table, x.dtype)                       # [V, H]
        return matmul_last_axis(x, table, transpose_b=True)


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
    """`output_weights` [L, H] / `output_bias` [L] over the dropped-out pooled output
    (run_classifier), or over each token of the dropped-out sequence output (run_ner: the
    original's classifier names, which HF's BertForTokenClassification `classifier.*` convert
    to as well)."""

    def __init__(self, config, num_labels, dropout_rate=0.1):
        super().__init__("", num_labels, config)
        self.dropout_rate = dropout_rate

    def __call__(self, x, training=False):
        """x [B, H] -> [B, L], or x [B, S, H] -> [B, S, L]; float32."""
        return self.logits(kernels.dropout(x, self.dropout_rate, training))


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
    per_position = kernels.sparse_softmax_cross_entropy(label_ids, logits)
    return _weighted_mean(per_position, label_weights), per_position


def _weighted_mean(per_position, label_weights):
    weights = tf.cast(label_weights, tf.float32)
    return tf.reduce_sum(per_position * weights) / (tf.reduce_sum(weights) + 1e-5)

def classification_loss(logits, labels):
    """Mean softmax cross entropy; logits [B, L], labels int [B]. Returns (loss, per_example)."""
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32))
    return tf.reduce_mean(per_example), per_example


def token_classification_loss(logits, labels, label_weights):
    """Softmax cross entropy per token, averaged over the scored tokens (label_weights 1; 0 for
    a word's later pieces, [CLS], [SEP] and padding). logits [B, S, L], labels int [B, S],
    label_weights [B, S]. Returns (loss, per_token [B, S], zero where not scored); 0 when no
    token is scored."""
    weights = tf.cast(label_weights, tf.float32)
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int32), logits=tf.cast(logits, tf.float32)) * weights
    return tf.math.divide_no_nan(tf.reduce_sum(per_token), tf.reduce_sum(weights)), per_token


def regression_loss(predictions, labels):
    """Mean squared error; predictions and labels [B]. Returns (loss, per_example [B])."""
    per_example = tf.square(tf.cast(predictions, tf.float32) - tf.cast(labels, tf.float32))
    return tf.reduce_mean(per_example), per_example


def multi_label_loss(logits, labels):
    """Sigmoid cross entropy averaged over the L labels, then over the batch.

    logits [B, L], labels 0/1 [B, L]. Returns (loss, per_example [B]).
    """
    per_label = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32),
                                                        logits=tf.cast(logits, tf.float32))
    per_example = tf.reduce_mean(per_label, axis=-1)
    return tf.reduce_mean(per_example), per_example


# Distillation: the student learns the teacher's output distribution (Hinton et al., 2015; Turc et
# al., 2019 distil with temperature 1). Both logits are divided by the temperature T and the loss
# is multiplied by T^2, so that its gradients keep their size whatever T is.

def soft_classification_loss(logits, teacher_logits, temperature=1.0):
    """Cross entropy between softmax(teacher_logits / T) and softmax(logits / T), times T^2.

    logits, teacher_logits [B, L]. Returns (loss, per_example [B]).
    """
    t = float(temperature)
    targets = tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / t, axis=-1)
    per_example = tf.nn.softmax_cross_entropy_with_logits(
        labels=targets, logits=tf.cast(logits, tf.float32) / t) * (t * t)
    return tf.reduce_mean(per_example), per_example


def soft_multi_label_loss(logits, teacher_logits, temperature=1.0):
    """Sigmoid cross entropy against sigmoid(teacher_logits / T), averaged over the L labels,
    times T^2. logits, teacher_logits [B, L]. Returns (loss, per_example [B])."""
    t = float(temperature)
    loss, per_example = multi_label_loss(tf.cast(logits, tf.float32) / t,
                                         tf.sigmoid(tf.cast(teacher_logits, tf.float32) / t))
    return loss * (t * t), per_example * (t * t)


# ---------------------------------------------------------------------------------------------------
# The pretraining model: BertModel with both pretraining heads, its loss and its metrics.
# Feature names are those of the pretraining TFRecords (create_pretraining_data.py).


class BertPretrainer(tf.Module):
    """`bert/...` plus `cls/predictions/...` and `cls/seq_relationship/...`: the original graph."""

    def __init__(self, config, compute_dtype=tf.float32, use_one_hot_embeddings=False,
                 gradient_checkpointing=False):
        super().__init__(name=None)
        self.bert = BertModel(config, compute_dtype, use_one_hot_embeddings,
                              gradient_checkpointing=gradient_checkpointing)
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


class BertClassifier(tf.Module):
    """`bert/...` plus `output_weights` [L, H] / `output_bias` [L]: the original classifier.

    L is the number of classes (1 for regression); dropout 0.1 on the pooled output in training.
    """

    def __init__(self, config, num_labels, compute_dtype=tf.float32,
                 use_one_hot_embeddings=False, gradient_checkpointing=False):
        super().__init__(name=None)
        self.bert = BertModel(config, compute_dtype, use_one_hot_embeddings,
                              gradient_checkpointing=gradient_checkpointing)
        self.classifier = ClassifierHead(config, num_labels, dropout_rate=0.1)

    def __call__(self, features, training=False):
        """features: input_ids, input_mask, segment_ids int [B, S] -> logits [B, L] float32."""
        out = self.bert(features["input_ids"], features["input_mask"], features["segment_ids"],
                        training=training)
        return self.classifier(out.pooled_output, training)


class BertTokenClassifier(BertClassifier):
    """BertClassifier's variables (`bert/...`, `output_weights` [L, H] / `output_bias` [L])
    applied to every token instead of the pooled output: a tagger (named entities, chunks, parts
    of speech). L is the number of tags; dropout 0.1 on the sequence output in training."""

    def __call__(self, features, training=False):
        """features: input_ids, input_mask, segment_ids int [B, S] -> logits [B, S, L] float32."""
        out = self.bert(features["input_ids"], features["input_mask"], features["segment_ids"],
                        training=training)
        return self.classifier(out.sequence_output, training)


class BertQuestionAnswering(tf.Module):
    """`bert/...` plus `cls/squad/output_weights` [2, H] / `cls/squad/output_bias` [2]: the
    original run_squad model (no dropout on the sequence output before the span head)."""

    def __init__(self, config, compute_dtype=tf.float32, use_one_hot_embeddings=False,
                 gradient_checkpointing=False):
        super().__init__(name=None)
        self.bert = BertModel(config, compute_dtype, use_one_hot_embeddings,
                              gradient_checkpointing=gradient_checkpointing)
        self.span = SpanHead(config)

    def __call__(self, features, training=False):
        """features: input_ids, input_mask, segment_ids int [B, S] -> (start_logits,
        end_logits), float32 [B, S] each."""
        out = self.bert(features["input_ids"], features["input_mask"], features["segment_ids"],
                        training=training)
        return self.span(out.sequence_output)


def span_loss(start_logits, end_logits, start_positions, end_positions):
    """The original SQuAD loss: the mean of the start and the end position cross entropies, each
    a softmax over all S positions of the window (padding included, as the original).
    start/end_logits [B, S], positions int [B]. Returns (loss, per_example [B])."""
    _, start = classification_loss(start_logits, start_positions)
    _, end = classification_loss(end_logits, end_positions)
    per_example = (start + end) / 2.0
    return tf.reduce_mean(per_example), per_example


def pretraining_loss(model, features, training):
    """Masked-LM loss (weighted by masked_lm_weights) plus next-sentence loss, as the original.

    model: a BertPretrainer. The same value as from its logits (pretraining_metrics' `loss`), but
    the masked-LM loss comes from MaskedLMHead.loss (performance).
    """
    out = model.bert(features["input_ids"], features["input_mask"], features["segment_ids"],
                     training=training)
    mlm_loss = model.mlm.loss(out.sequence_output, features["masked_lm_positions"],
                              features["masked_lm_ids"], features["masked_lm_weights"])
    labels = tf.reshape(features["next_sentence_labels"], [-1])
    nsp_loss, _ = classification_loss(model.nsp(out.pooled_output), labels)
    return mlm_loss + nsp_loss


def pretraining_metrics(model, features):
    """{name: (sum, count)} for the original eval_results.txt of run_pretraining.py.

    As the original's streaming metrics: masked-LM accuracy and loss are means over all masked
    positions (weighted by masked_lm_weights), next-sentence ones means over examples, and `loss`
    the mean of each batch's training loss, weighted by batch size. Every sum over no examples
    is 0, so a replica left without examples by a last, smaller batch adds nothing.
    """
    mlm_logits, nsp_logits = model(features, False)
    weights = tf.cast(features["masked_lm_weights"], tf.float32)
    mlm_loss, mlm_per_position = masked_lm_loss(mlm_logits, features["masked_lm_ids"], weights)
    labels = tf.reshape(features["next_sentence_labels"], [-1])
    _, nsp_per_example = classification_loss(nsp_logits, labels)
    batch = tf.cast(tf.shape(labels)[0], tf.float32)
    nsp_loss = tf.math.divide_no_nan(tf.reduce_sum(nsp_per_example), batch)
    mlm_hit = tf.cast(tf.equal(tf.argmax(mlm_logits, -1, output_type=tf.int32),
                               tf.cast(features["masked_lm_ids"], tf.int32)), tf.float32)
    nsp_hit = tf.cast(tf.equal(tf.argmax(nsp_logits, -1, output_type=tf.int32),
                               tf.cast(labels, tf.int32)), tf.float32)
    return {"masked_lm_accuracy": (tf.reduce_sum(mlm_hit * weights), tf.reduce_sum(weights)),
            "masked_lm_loss": (tf.reduce_sum(mlm_per_position * weights), tf.reduce_sum(weights)),
            "next_sentence_accuracy": (tf.reduce_sum(nsp_hit), batch),
            "next_sentence_loss": (tf.reduce_sum(nsp_per_example), batch),
            "loss": ((mlm_loss + nsp_loss) * batch, batch)}
