"""The BERT model's fused elementwise kernels and their hand-written gradients, each beside a plain
TensorFlow reference of the same function.

Why these exist (performance, CPU): in a training step the matrix products take most of the time,
and they run fastest as oneDNN kernels, whose bfloat16 products are about twice as fast as XLA's
on CPU (so compiling the whole step with XLA is slower). The elementwise work between them (bias
add and head split of q, k, v; the attention softmax with its dropout; bias + dropout + residual +
LayerNorm; bias + GELU; the masked-LM bias and cross entropy) is done here as small XLA-compiled
functions: XLA turns each into one or a few loops over the tensor instead of one TensorFlow op
(one pass over memory) per step of the formula. Their gradients are written out and compiled the
same way, and recompute cheap intermediates (LayerNorm statistics, the softmax, dropout masks)
from the inputs instead of keeping them, which saves memory traffic. Bias gradients are oneDNN
products with a row of ones outside XLA (`bias_gradient`). For 16-bit inputs the elementwise
arithmetic is float32 and only the results are rounded to the input's dtype.

Every public kernel `name` has a `name_reference`: the same function written with ordinary
TensorFlow ops and differentiated by autodiff (dropout-carrying references apply the same mask,
`keep_mask`, given the same key). tests/test_kernels.py compares values and gradients of each pair;
the references are for the tests (and for reading), not for training.

XLA on or off: `compile_with_xla(enabled)` is a context manager. The setting is read whenever a
kernel is called; inside a `tf.function` that is when the function is traced, so it applies to the
functions traced (or retraced) inside the block and is fixed in their graphs afterwards. It is one
setting for the whole process, not per thread (tf.distribute runs replicas in threads of their
own, and they must see it). Off, the same functions run as ordinary TensorFlow ops, with the same
values and dropout masks up to float round-off. extract_features.py traces without XLA: XLA
compiles once per input shape, and its batches come in many lengths.

Standard ops: `standard_ops()` is a context manager of the same kind: kernels called in the block
are their plain references (standard TensorFlow ops, autodiff gradients), with biases added by
tf.nn.bias_add and GELU written as TensorFlow's graph optimizer expects it, so that on CPU it
fuses MatMul + BiasAdd (+ GELU) into oneDNN kernels. Exported SavedModels (saved_models.py) are
traced this way: they need neither XLA nor custom gradients, and their forward pass is faster
than the fused functions run without XLA (see saved_models.py).

Dropout. Why not tf.nn.dropout: on a bfloat16 tensor it draws bfloat16 uniforms (8 significant
bits), so it drops about 10.15% instead of 10% and scales the kept values by bfloat16(1 / 0.9) =
1.109375; and TensorFlow's random-number kernels cost ~3 ns per element on CPU, more than any other
elementwise work of a training step. Here element i of a tensor (i = its row-major index) is
dropped iff the high 32 bits of the SplitMix64 output for it, mix64(key + (i + 1) * GAMMA) (Steele,
Lea & Flood, "Fast splittable pseudorandom number generators", 2014; a counter-based form of the
generator), are below round(rate * 2**32): the drop probability is `rate` to within 2**-33 whatever
the dtype. Kept values are multiplied by 1 / (1 - rate) in float32 (in x's dtype when wider) and
only then cast back. `key` is a fresh 64-bit value per call, drawn with TensorFlow's stateful
generator (so tf.random.set_seed makes runs repeatable); keys are random, so two calls' counter
ranges overlap with negligible probability. The mask is a pure function of (key, index), so XLA
computes it inside the loop that applies it, and gradients recompute it instead of storing it.

Dimension legend used in shape comments:
  B = batch size, S = sequence length (F = "from", T = "to" in attention), H = hidden size,
  N = attention heads, D = size per head (H / N), I = intermediate size, V = vocabulary size,
  P = masked positions per sequence,
  C = the last axis of any tensor (what a bias or a LayerNorm runs along), R = all other axes.
"""

import contextlib
import functools
import math

import tensorflow as tf

# LayerNorm epsilon of the original implementation (the TF1 layer_norm default it used).
LAYER_NORM_EPSILON = 1e-12

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------------
# XLA or plain TensorFlow


class _Setting:
    """A process-wide switch that kernels read when they are called (traced): `value`, and
    `scope(value)`, a context manager setting it within a block and restoring it afterwards.
    One setting for the whole process, not per thread (see the module docstring)."""

    def __init__(self, value):
        self.value = value

    @contextlib.contextmanager
    def scope(self, value):
        saved, self.value = self.value, bool(value)
        try:
            yield
        finally:
            self.value = saved


_XLA = _Setting(True)
_STANDARD_OPS = _Setting(False)


def compile_with_xla(enabled):
    """Within the block, kernels called (or traced into a tf.function) are XLA-compiled iff
    `enabled`; the previous setting comes back afterwards. See the module docstring."""
    return _XLA.scope(enabled)


def xla_enabled():
    """Whether kernels called now are XLA-compiled (True unless inside compile_with_xla(False))."""
    return _XLA.value


def standard_ops(enabled=True):
    """Within the block, kernels called (or traced into a tf.function) are written with standard
    TensorFlow ops and differentiated by autodiff, instead of the fused functions with
    hand-written gradients; the previous setting comes back afterwards (read as
    compile_with_xla's, at trace time).

    For graphs that run elsewhere or mostly forward (SavedModels, feature extraction): no XLA and
    no custom gradients in the graph, and ops in the patterns TensorFlow's graph optimizer
    (Grappler's remapper) rewrites into oneDNN kernels on CPU: MatMul + BiasAdd + exact GELU
    becomes one _FusedMatMul, MatMul + BiasAdd another. Each kernel is then its `_reference`,
    except that biases are added with tf.nn.bias_add and GELU is 0.5 * x * (1 + erf(x / sqrt(2)))
    (gelu_standard), the forms the remapper matches. Same values up to float round-off.
    """
    return _STANDARD_OPS.scope(enabled)


def standard_ops_enabled():
    """Whether kernels called now are standard ops (inside standard_ops())."""
    return _STANDARD_OPS.value


def _maybe_xla(fn):
    """`fn`, compiled with XLA when xla_enabled() (read at each call, so at trace time in a
    tf.function).

    Python arguments (dropout rates, None) are fixed at trace time: one compilation per value.
    """
    compiled = tf.function(fn, jit_compile=True, autograph=False)

    @functools.wraps(fn)
    def call(*args):
        return (compiled if _XLA.value else fn)(*args)

    return call


def _wide(dtype):
    """float32 for 16-bit dtypes (TensorFlow's bfloat16 erfc is slow and coarse), else dtype."""
    return tf.float32 if dtype.size < 4 else dtype


# ---------------------------------------------------------------------------------------------------
# Bias gradients


def _sum_rows(x):
    """float32 x [..., C] summed over all axes but the last -> [C] (a bias's gradient, in XLA).

    Performance: written as a product with a vector of ones because XLA on CPU compiles a plain
    reduce_sum over the leading axes into a slow strided loop (~8x slower at [B * S, I]); its
    matrix-vector product reads the rows contiguously.
    """
    rows = tf.reshape(x, [-1, tf.shape(x)[-1]])                              # [R, C]
    return tf.matmul(tf.ones([1, tf.shape(rows)[0]], x.dtype), rows)[0]


def bias_gradient(d):
    """d [..., C] (a gradient in the compute dtype) summed over all axes but the last -> float32 [C].

    Outside XLA (performance): oneDNN's product with a row of ones reads a bfloat16 d directly,
    about three times as fast as XLA's float32 column sum. The sums accumulate in float32; for a
    bfloat16 d they are rounded to bfloat16 once, as the kernels' gradients are.
    """
    if d.dtype == tf.float16:  # float16 sums could overflow
        d = tf.cast(d, tf.float32)
    rows = tf.reshape(d, [-1, tf.shape(d)[-1]])                              # [R, C]
    return tf.cast(tf.matmul(tf.ones([1, tf.shape(rows)[0]], d.dtype), rows)[0], tf.float32)


def bias_gradient_reference(d):
    """bias_gradient with reduce_sum (float32 throughout, no rounding to d's dtype)."""
    return tf.reduce_sum(tf.cast(d, tf.float32), axis=list(range(d.shape.rank - 1)))


# ---------------------------------------------------------------------------------------------------
# Dropout (see the module docstring)

_SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
_SPLITMIX_MUL1 = 0xBF58476D1CE4E5B9
_SPLITMIX_MUL2 = 0x94D049BB133111EB


def new_dropout_key():
    """A fresh random int64 dropout key (TensorFlow's stateful generator; obeys set_seed)."""
    return tf.random.uniform([], tf.int64.min, tf.int64.max, dtype=tf.int64)


def _u64(value):
    return tf.constant(value, tf.uint64)


def _flat_index(shape):
    """uint64 [*shape]: each element's row-major index, as a sum of broadcast iotas.

    `shape` is a 1-D int32 tensor of static rank; XLA folds the iotas into the loop that uses them.
    """
    rank = shape.shape[0]
    index, stride = _u64(0), _u64(1)
    for axis in reversed(range(rank)):
        iota = tf.cast(tf.range(shape[axis]), tf.uint64)
        index = index + tf.reshape(iota, [-1] + [1] * (rank - 1 - axis)) * stride
        stride = stride * tf.cast(shape[axis], tf.uint64)
    return tf.broadcast_to(index, shape)


def keep_mask(shape, key, rate):
    """bool [*shape]: True where dropout with int64 `key` keeps an element (probability
    1 - rate). `shape`: a 1-D int32 tensor of static rank, such as tf.shape(x)."""
    z = tf.bitcast(key, tf.uint64) + (_flat_index(shape) + _u64(1)) * _u64(_SPLITMIX_GAMMA)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, _u64(30))) * _u64(_SPLITMIX_MUL1)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, _u64(27))) * _u64(_SPLITMIX_MUL2)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, _u64(31)))
    # high 32 bits >= t  <=>  z >= t * 2**32 (the low bits add less than 2**32).
    threshold = min(round(rate * 2**32), 2**32 - 1)
    return z >= _u64(threshold << 32)


def _apply_dropout(h, key, rate):
    """h (float32 or wider) with dropout: dropped elements 0, kept ones h / (1 - rate)."""
    scale = tf.constant(1.0 / (1.0 - rate), h.dtype)
    return tf.where(keep_mask(tf.shape(h), key, rate), h * scale, tf.zeros([], h.dtype))


@_maybe_xla
def _dropout_xla(x, key, rate):
    """Dropout of x with `key`; the same function is its own gradient (dy * mask * scale)."""
    return tf.cast(_apply_dropout(tf.cast(x, _wide(x.dtype)), key, rate), x.dtype)


def _mask_key(rate, key):
    """The dropout key of a kernel call: None without dropout, else `key` or a fresh one."""
    if not rate:
        return None
    return new_dropout_key() if key is None else key


def dropout(x, rate, training, key=None):
    """Inverted dropout with drop probability `rate` in any dtype; identity unless training.

    key: the int64 key of the mask (keep_mask); by default a fresh one (new_dropout_key).
    """
    if not training or rate == 0.0:
        return x
    key = _mask_key(rate, key)
    if _STANDARD_OPS.value:
        return dropout_reference(x, rate, key)

    @tf.custom_gradient
    def apply(x):
        return _dropout_xla(x, key, rate), lambda dy: _dropout_xla(dy, key, rate)

    return apply(x)


def dropout_reference(x, rate, key):
    """dropout(x, rate, True, key): x * mask * (1 / (1 - rate)), in float32 for 16-bit x."""
    h = tf.cast(x, _wide(x.dtype))
    kept = tf.cast(keep_mask(tf.shape(h), key, rate), h.dtype)
    return tf.cast(h * kept * tf.constant(1.0 / (1.0 - rate), h.dtype), x.dtype)


# ---------------------------------------------------------------------------------------------------
# GELU


def _normal_cdf(h, result_dtype):
    """Phi(h) for the wide h; cheaper and coarser in the far left tail for a 16-bit result.

    0.5 * erfc(-h / sqrt(2)) is accurate to float round-off relative to Phi(h) everywhere. For a
    16-bit result the erf form 0.5 + 0.5 * erf(h / sqrt(2)) is used instead (performance: XLA's
    erf is about twice as fast as its erfc): the same up to an absolute error of ~6e-8, i.e. a
    GELU error of ~6e-8 * |h|, relatively large only where GELU(h) is tiny (h < -4).
    """
    if result_dtype.size < 4:
        return 0.5 + 0.5 * tf.math.erf(_SQRT_HALF * h)
    return 0.5 * tf.math.erfc(-_SQRT_HALF * h)


def _gelu_f(h, result_dtype):
    return h * _normal_cdf(h, result_dtype)


def _gelu_grad_f(h, dy, result_dtype):
    """dy * GELU'(h) = dy * (Phi(h) + h * phi(h))."""
    pdf = _INV_SQRT_2PI * tf.exp(-0.5 * tf.square(h))
    return dy * (_normal_cdf(h, result_dtype) + h * pdf)


@_maybe_xla
def _gelu_forward(x):
    return tf.cast(_gelu_f(tf.cast(x, _wide(x.dtype)), x.dtype), x.dtype)


@_maybe_xla
def _gelu_backward(x, dy):
    xw = tf.cast(x, _wide(x.dtype))
    return tf.cast(_gelu_grad_f(xw, tf.cast(dy, xw.dtype), x.dtype), x.dtype)


def gelu(x):
    """Exact GELU, x * Phi(x) with the Gaussian CDF (as HuggingFace's "gelu").

    Performance: computed in float32 for 16-bit inputs, and with its gradient written out
    (dy * (Phi(x) + x * phi(x))) rather than derived op by op from erfc. Same values as
    tf.nn.gelu up to float round-off. With standard_ops(): gelu_standard.
    """
    return gelu_standard(x) if _STANDARD_OPS.value else _gelu_fused(x)


@tf.custom_gradient
def _gelu_fused(x):
    return _gelu_forward(x), lambda dy: _gelu_backward(x, dy)


def gelu_standard(x):
    """0.5 * x * (1 + erf(x / sqrt(2))) in float32 for 16-bit x, by autodiff: the ops of the
    exact GELU that Grappler's remapper fuses with a preceding MatMul + BiasAdd on CPU.

    The erf form loses the far left tail to cancellation (absolute error ~6e-8 * |x|, as the
    16-bit kernels' _normal_cdf), which the erfc form of gelu_reference keeps.
    """
    h = tf.cast(x, _wide(x.dtype))
    return tf.cast(h * ((tf.math.erf(h * _SQRT_HALF) + 1.0) * 0.5), x.dtype)


def gelu_reference(x):
    """x * 0.5 * erfc(-x / sqrt(2)), in float32 for 16-bit x."""
    h = tf.cast(x, _wide(x.dtype))
    return tf.cast(h * 0.5 * tf.math.erfc(-h * _SQRT_HALF), x.dtype)


@_maybe_xla
def _bias_gelu_forward(y, bias):
    h = tf.cast(y, _wide(y.dtype)) + tf.cast(bias, _wide(y.dtype))
    return tf.cast(_gelu_f(h, y.dtype), y.dtype)


@_maybe_xla
def _bias_gelu_backward(y, bias, dy):
    h = tf.cast(y, _wide(y.dtype)) + tf.cast(bias, _wide(y.dtype))
    return tf.cast(_gelu_grad_f(h, tf.cast(dy, h.dtype), y.dtype), y.dtype)


def bias_gelu(y, bias):
    """gelu(y + bias), the bias added in float32; one pass each way (and the bias gradient).

    y [..., C] in the compute dtype, bias [C] float32 -> [..., C] in y's dtype. With
    standard_ops(): gelu_standard(tf.nn.bias_add(y, bias)).
    """
    if _STANDARD_OPS.value:
        return gelu_standard(_bias_add_standard(y, bias))
    return _bias_gelu_fused(y, bias)


def _bias_add_standard(y, bias):
    """tf.nn.bias_add in y's dtype for float32 y (the op Grappler fuses into a MatMul before
    it), else in float32, cast back."""
    if y.dtype == tf.float32:
        return tf.nn.bias_add(y, tf.cast(bias, y.dtype))
    return tf.cast(tf.nn.bias_add(tf.cast(y, tf.float32), tf.cast(bias, tf.float32)), y.dtype)


@tf.custom_gradient
def _bias_gelu_fused(y, bias):
    def grad(dy):
        dh = _bias_gelu_backward(y, bias, dy)
        return dh, tf.cast(bias_gradient(dh), bias.dtype)

    return _bias_gelu_forward(y, bias), grad


def bias_gelu_reference(y, bias):
    """gelu_reference(y + bias), the sum in float32 for 16-bit y."""
    h = tf.cast(y, _wide(y.dtype)) + tf.cast(bias, _wide(y.dtype))
    return tf.cast(gelu_reference(h), y.dtype)


# ---------------------------------------------------------------------------------------------------
# The float32 bias of the masked-LM logits


@_maybe_xla
def _add_bias_float32_forward(y, bias):
    return tf.cast(y, tf.float32) + bias


def add_bias_float32(y, bias):
    """float32(y) + bias (float32). Fused for the [B, P, V] masked-LM logits (performance: the
    cast and the bias add in one pass; same values)."""
    if _STANDARD_OPS.value:
        return tf.nn.bias_add(tf.cast(y, tf.float32), bias)
    return _add_bias_float32_fused(y, bias)


@tf.custom_gradient
def _add_bias_float32_fused(y, bias):
    def grad(dz):
        dy = tf.cast(dz, y.dtype)
        return dy, bias_gradient(dy)

    return _add_bias_float32_forward(y, bias), grad


def add_bias_float32_reference(y, bias):
    return tf.cast(y, tf.float32) + bias


# ---------------------------------------------------------------------------------------------------
# LayerNorm, and the dropout + residual + LayerNorm that ends each half of a transformer layer


def _normalize(z):
    """((z - mean) * rstd, rstd) over the last axis of float32 z."""
    mean = tf.reduce_mean(z, axis=-1, keepdims=True)
    centered = z - mean
    rstd = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True)
                         + LAYER_NORM_EPSILON)
    return centered * rstd, rstd


def _normalize_grad(dy, gamma, normed, rstd):
    """d LayerNorm / d input: rstd * (g - mean(g) - normed * mean(g * normed)), g = dy * gamma.

    Written out instead of derived op by op from tf.nn.moments and tf.nn.batch_normalization,
    which takes about twice as many passes. Same values up to float round-off.
    """
    g = dy * gamma
    return rstd * (g - tf.reduce_mean(g, axis=-1, keepdims=True)
                   - normed * tf.reduce_mean(g * normed, axis=-1, keepdims=True))


@_maybe_xla
def _layer_norm_forward(x, gamma, beta):
    normed, _ = _normalize(tf.cast(x, tf.float32))
    return tf.cast(normed * gamma + beta, x.dtype)


@_maybe_xla
def _layer_norm_backward(x, gamma, dy):
    """(dx, dgamma, dbeta); the statistics are recomputed from x rather than kept."""
    normed, rstd = _normalize(tf.cast(x, tf.float32))
    dy = tf.cast(dy, tf.float32)
    return (tf.cast(_normalize_grad(dy, gamma, normed, rstd), x.dtype),
            _sum_rows(dy * normed), _sum_rows(dy))


def layer_norm(x, gamma, beta):
    """LayerNorm of the last axis in float32, returned in x's dtype.

    x [..., C]; gamma, beta [C] float32; epsilon LAYER_NORM_EPSILON.
    """
    if _STANDARD_OPS.value:
        return layer_norm_reference(x, gamma, beta)
    return _layer_norm_fused(x, gamma, beta)


@tf.custom_gradient
def _layer_norm_fused(x, gamma, beta):
    return _layer_norm_forward(x, gamma, beta), lambda dy: _layer_norm_backward(x, gamma, dy)


def layer_norm_reference(x, gamma, beta):
    """layer_norm from tf.nn.moments, in float32."""
    z = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(z, axes=[-1], keepdims=True)
    return tf.cast((z - mean) * tf.math.rsqrt(variance + LAYER_NORM_EPSILON) * gamma + beta,
                   x.dtype)


def _dropped_sum(y, bias, residual, key, rate):
    """float32 dropout(y + bias) + residual."""
    h = tf.cast(y, tf.float32) + bias
    if rate:
        h = _apply_dropout(h, key, rate)
    return h + tf.cast(residual, tf.float32)


@_maybe_xla
def _add_norm_forward(y, bias, residual, gamma, beta, key, rate):
    normed, _ = _normalize(_dropped_sum(y, bias, residual, key, rate))
    return tf.cast(normed * gamma + beta, residual.dtype)


@_maybe_xla
def _add_norm_backward(y, bias, residual, gamma, key, rate, dout):
    """(dy, dresidual, dgamma), recomputing the forward pass and the mask."""
    normed, rstd = _normalize(_dropped_sum(y, bias, residual, key, rate))
    dout = tf.cast(dout, tf.float32)
    dz = _normalize_grad(dout, gamma, normed, rstd)               # d(sum)
    dh = _apply_dropout(dz, key, rate) if rate else dz            # d(y + bias)
    return tf.cast(dh, y.dtype), tf.cast(dz, residual.dtype), _sum_rows(dout * normed)


def dropout_add_layer_norm(y, bias, residual, gamma, beta, rate, key=None):
    """LayerNorm(dropout(y + bias) + residual) in float32, returned in residual's dtype.

    y, residual [..., H]: y is a matrix product without its float32 bias [H] (with standard_ops(),
    bias may be None: y has its bias); gamma, beta [H] float32. rate 0 means no dropout; key: the
    mask's key (by default a fresh one). The block that ends each half of a transformer layer,
    fused (performance: one XLA function each way instead of ~15 TensorFlow ops over [B, S, H]). In bfloat16 the bias add, dropout and residual sum are
    float32 instead of bfloat16 (only more accurate); in float32 the same values as the separate
    ops up to float round-off.
    """
    key = _mask_key(rate, key)
    if _STANDARD_OPS.value:
        h = y if bias is None else _bias_add_standard(y, bias)
        if rate:
            h = dropout_reference(h, rate, key)
        return tf.cast(layer_norm_reference(tf.cast(h, tf.float32) + tf.cast(residual, tf.float32),
                                            gamma, beta), residual.dtype)

    @tf.custom_gradient
    def fused(y, bias, residual, gamma, beta):
        def grad(dout):
            dy, dresidual, dgamma = _add_norm_backward(y, bias, residual, gamma, key, rate, dout)
            return dy, bias_gradient(dy), dresidual, dgamma, bias_gradient(dout)

        return _add_norm_forward(y, bias, residual, gamma, beta, key, rate), grad

    return fused(y, bias, residual, gamma, beta)


def dropout_add_layer_norm_reference(y, bias, residual, gamma, beta, rate, key=None):
    """layer_norm_reference(dropout_reference(y + bias) + residual), all in float32."""
    h = tf.cast(y, tf.float32) + bias
    if rate:
        h = dropout_reference(h, rate, key)
    normed = layer_norm_reference(h + tf.cast(residual, tf.float32), gamma, beta)
    return tf.cast(normed, residual.dtype)


# ---------------------------------------------------------------------------------------------------
# Attention: the heads of q, k, v, and the probabilities


@_maybe_xla
def _split_heads_forward(qkv, bias, num_heads, q_scale):
    h = tf.cast(qkv, _wide(qkv.dtype)) + tf.cast(bias, _wide(qkv.dtype))
    b, s = tf.shape(qkv)[0], tf.shape(qkv)[1]
    h = tf.reshape(h, [b, s, 3, num_heads, -1])                             # [B, S, 3, N, D]
    q, k, v = tf.unstack(tf.transpose(h, [2, 0, 3, 1, 4]))                  # 3 x [B, N, S, D]
    return tf.cast(q * q_scale, qkv.dtype), tf.cast(k, qkv.dtype), tf.cast(v, qkv.dtype)


@_maybe_xla
def _split_heads_backward(qkv, dq, dk, dv, q_scale):
    # Performance: three [B, N, S, D] -> [B, S, N, D] transposes and a concatenation; XLA on CPU
    # turns one transpose of the stacked [3, B, N, S, D] into a loop about three times slower.
    dq = tf.cast(tf.cast(dq, _wide(dq.dtype)) * q_scale, dq.dtype)
    d = tf.concat([tf.transpose(x, [0, 2, 1, 3]) for x in (dq, dk, dv)], axis=2)
    return tf.reshape(d, tf.shape(qkv))                                     # [B, S, 3H]


def split_heads(qkv, bias, num_heads, q_scale):
    """qkv [B, S, 3H] (without its float32 bias [3H]) -> q * q_scale, k, v, each [B, N, S, D].

    One XLA pass each way instead of a bias add, a transpose, three slices and a scaling (and
    their gradients). The bias add and scaling are in float32 for 16-bit qkv (same values in
    float32). With standard_ops(): split_heads_reference.
    """
    if _STANDARD_OPS.value:
        return split_heads_reference(qkv, bias, num_heads, q_scale)

    @tf.custom_gradient
    def fused(qkv, bias):
        def grad(dq, dk, dv):
            dqkv = _split_heads_backward(qkv, dq, dk, dv, q_scale)
            return dqkv, bias_gradient(dqkv)

        return _split_heads_forward(qkv, bias, num_heads, q_scale), grad

    return fused(qkv, bias)


def split_heads_reference(qkv, bias, num_heads, q_scale):
    """split_heads by bias add, reshape, transpose and scaling (float32 for 16-bit qkv)."""
    h = tf.cast(qkv, _wide(qkv.dtype)) + tf.cast(bias, _wide(qkv.dtype))
    b, s = tf.shape(qkv)[0], tf.shape(qkv)[1]
    heads = tf.transpose(tf.reshape(h, [b, s, 3, num_heads, -1]), [2, 0, 3, 1, 4])
    return tuple(tf.cast(x, qkv.dtype) for x in (heads[0] * q_scale, heads[1], heads[2]))


def _attention_softmax(scores, bias):
    return tf.nn.softmax(tf.cast(scores, tf.float32) + bias)


@_maybe_xla
def _attention_probs_forward(scores, bias, key, rate):
    probs = _attention_softmax(scores, bias)
    if rate:
        probs = _apply_dropout(probs, key, rate)
    return tf.cast(probs, scores.dtype)


@_maybe_xla
def _attention_probs_backward(scores, bias, key, rate, dprobs):
    """d scores, recomputing the softmax and the mask rather than keeping them."""
    probs = _attention_softmax(scores, bias)
    dp = tf.cast(dprobs, tf.float32)
    if rate:
        dp = _apply_dropout(dp, key, rate)
    return tf.cast(probs * (dp - tf.reduce_sum(dp * probs, axis=-1, keepdims=True)), scores.dtype)


def attention_probs(scores, attention_bias, rate, key=None):
    """dropout(softmax(scores + attention_bias)) in float32, returned in scores' dtype.

    scores [B, N, F, T]; attention_bias float32 [B, 1, 1, T] (from the input mask), which gets no
    gradient. rate 0 means no dropout; key: the mask's key (by default a fresh one). Softmax in
    float32 because bfloat16's 8-bit mantissa loses the small probabilities. Fused (performance:
    the largest elementwise tensor of attention, [B, N, F, T], is read and written once each way).
    """
    key = _mask_key(rate, key)
    if _STANDARD_OPS.value:
        return attention_probs_reference(scores, attention_bias, rate, key)

    @tf.custom_gradient
    def fused(scores):
        def grad(dprobs):
            return _attention_probs_backward(scores, attention_bias, key, rate, dprobs)

        return _attention_probs_forward(scores, attention_bias, key, rate), grad

    return fused(scores)


def attention_probs_reference(scores, attention_bias, rate, key=None):
    """tf.nn.softmax in float32, then dropout_reference; attention_bias gets no gradient."""
    probs = tf.nn.softmax(tf.cast(scores, tf.float32) + tf.stop_gradient(attention_bias))
    if rate:
        probs = dropout_reference(probs, rate, key)
    return tf.cast(probs, scores.dtype)


# ---------------------------------------------------------------------------------------------------
# Cross entropy


def sparse_softmax_cross_entropy(labels, logits, bias=None):
    """tf.nn.sparse_softmax_cross_entropy_with_logits, in float32, for logits [..., V]; with a
    float32 `bias` [V], that of float32(logits) + bias, computed without storing that sum.

    Performance: TensorFlow's fused kernel is slow on CPU for [B * P, V] masked-LM logits; here the
    loss is logsumexp(logits) - logits[label] and the gradient (softmax(logits) - one_hot(label))
    * dloss, each an XLA function making one or two passes over the logits: about a quarter of the
    time. Same values up to float round-off; out-of-range labels still raise (in tf.gather, which
    stays outside XLA because XLA's gather clamps bad indices silently). The logits' gradient has
    their dtype.
    """
    if _STANDARD_OPS.value:
        return sparse_softmax_cross_entropy_reference(labels, logits, bias)
    labels = tf.cast(labels, tf.int32)
    rows = tf.reshape(logits, [-1, tf.shape(logits)[-1]])                   # [R, V]
    flat_labels = tf.reshape(labels, [-1])                                   # [R]
    has_bias = bias is not None
    if not has_bias:
        rows = tf.cast(rows, tf.float32)
        bias = tf.zeros(tf.shape(rows)[-1:], tf.float32)

    @tf.custom_gradient
    def xent(rows, bias):
        lse = _biased_logsumexp(rows, bias)
        at_label = tf.cast(tf.gather(rows, flat_labels, batch_dims=1), tf.float32) \
            + tf.gather(bias, flat_labels)

        def grad(dloss):
            drows = _xent_backward(rows, bias, lse, flat_labels, dloss)
            return drows, bias_gradient(drows) if has_bias else tf.zeros_like(bias)

        return lse - at_label, grad

    return tf.reshape(xent(rows, bias), tf.shape(labels))


@_maybe_xla
def _biased_logsumexp(rows, bias):
    return tf.reduce_logsumexp(tf.cast(rows, tf.float32) + bias, axis=-1)


@_maybe_xla
def _xent_backward(rows, bias, lse, labels, dloss):
    """(softmax(rows + bias) - one_hot(labels)) * dloss in rows' dtype, the softmax from the
    forward's logsumexp."""
    logits = tf.cast(rows, tf.float32) + bias
    at_label = tf.range(tf.shape(rows)[-1])[tf.newaxis, :] == labels[:, tf.newaxis]
    d = (tf.exp(logits - lse[:, tf.newaxis]) - tf.cast(at_label, tf.float32)) \
        * dloss[:, tf.newaxis]
    return tf.cast(d, rows.dtype)


def sparse_softmax_cross_entropy_reference(labels, logits, bias=None):
    """tf.nn.sparse_softmax_cross_entropy_with_logits of float32(logits) (+ bias)."""
    logits = tf.cast(logits, tf.float32)
    if bias is not None:
        logits += bias
    return tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)
