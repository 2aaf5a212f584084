"""kernels.py: every fused kernel against its plain TensorFlow reference (values, and gradients for
every input under a random upstream gradient) in float32 and bfloat16, with XLA on and off and as
standard ops, with dropout off and on (the same mask); the kernels against TensorFlow's own ops;
dropout statistics; the XLA and standard-ops settings."""
import numpy as np
import pytest
import tensorflow as tf

import kernels

DTYPES = {"float32": tf.float32, "bfloat16": tf.bfloat16}
KEY = tf.constant(-0x0123456789ABCDEF, tf.int64)   # a fixed dropout key, shared by both sides
MASK_BIAS = -10000.0                                # modeling.MASK_BIAS, on padded positions


def _tensor(rng, shape, dtype, scale=1.0):
    return tf.cast(tf.constant(rng.randn(*shape) * scale, tf.float32), dtype)


# Each case: (rng, dtype, rate) -> (kernel, reference, args). Arguments in the compute dtype are the
# tensors a layer feeds in; biases, gamma and beta are float32 (variables), as in the model.

def _bias_gradient(rng, dtype, rate):
    return kernels.bias_gradient, kernels.bias_gradient_reference, [_tensor(rng, [4, 6, 8], dtype)]


def _dropout(rng, dtype, rate):
    return (lambda x: kernels.dropout(x, rate, True, KEY),
            lambda x: kernels.dropout_reference(x, rate, KEY), [_tensor(rng, [4, 6, 8], dtype)])


def _gelu(rng, dtype, rate):
    return kernels.gelu, kernels.gelu_reference, [_tensor(rng, [4, 6, 8], dtype, 3.0)]


def _bias_gelu(rng, dtype, rate):
    return (kernels.bias_gelu, kernels.bias_gelu_reference,
            [_tensor(rng, [4, 6, 8], dtype, 3.0), _tensor(rng, [8], tf.float32)])


def _add_bias_float32(rng, dtype, rate):
    return (kernels.add_bias_float32, kernels.add_bias_float32_reference,
            [_tensor(rng, [4, 6, 8], dtype), _tensor(rng, [8], tf.float32)])


def _layer_norm(rng, dtype, rate):
    return (kernels.layer_norm, kernels.layer_norm_reference,
            [_tensor(rng, [4, 6, 8], dtype, 3.0), _tensor(rng, [8], tf.float32),
             _tensor(rng, [8], tf.float32)])


def _dropout_add_layer_norm(rng, dtype, rate):
    return (lambda *a: kernels.dropout_add_layer_norm(*a, rate, KEY),
            lambda *a: kernels.dropout_add_layer_norm_reference(*a, rate, KEY),
            [_tensor(rng, [4, 6, 8], dtype), _tensor(rng, [8], tf.float32),
             _tensor(rng, [4, 6, 8], dtype), _tensor(rng, [8], tf.float32),
             _tensor(rng, [8], tf.float32)])


def _attention_probs(rng, dtype, rate):
    mask_bias = tf.constant((rng.rand(2, 1, 1, 5) < 0.3) * MASK_BIAS, tf.float32)
    return (lambda s, b: kernels.attention_probs(s, b, rate, KEY),
            lambda s, b: kernels.attention_probs_reference(s, b, rate, KEY),
            [_tensor(rng, [2, 3, 5, 5], dtype, 3.0), mask_bias])


def _split_heads(rng, dtype, rate):   # [B, S, 3H] = [2, 5, 24] -> 3 x [B, N, S, D] = [2, 2, 5, 4]
    return (lambda t, b: kernels.split_heads(t, b, 2, 0.5),
            lambda t, b: kernels.split_heads_reference(t, b, 2, 0.5),
            [_tensor(rng, [2, 5, 24], dtype), _tensor(rng, [24], tf.float32)])


def _cross_entropy(rng, dtype, rate):
    labels = tf.constant(rng.randint(0, 11, (4, 6)))
    return (lambda t: kernels.sparse_softmax_cross_entropy(labels, t),
            lambda t: kernels.sparse_softmax_cross_entropy_reference(labels, t),
            [_tensor(rng, [4, 6, 11], dtype, 3.0)])


def _cross_entropy_with_bias(rng, dtype, rate):
    labels = tf.constant(rng.randint(0, 11, (4, 6)))
    return (lambda t, b: kernels.sparse_softmax_cross_entropy(labels, t, b),
            lambda t, b: kernels.sparse_softmax_cross_entropy_reference(labels, t, b),
            [_tensor(rng, [4, 6, 11], dtype, 3.0), _tensor(rng, [11], tf.float32, 3.0)])


CASES = {f.__name__[1:]: f for f in (
    _bias_gradient, _gelu, _bias_gelu, _add_bias_float32, _layer_norm, _split_heads,
    _cross_entropy, _cross_entropy_with_bias)}
DROPOUT_CASES = {f.__name__[1:]: f for f in (_dropout, _dropout_add_layer_norm, _attention_probs)}
PARAMS = [(name, rate) for name in CASES for rate in (0.0,)] \
    + [(name, rate) for name in DROPOUT_CASES for rate in (0.0, 0.25)]


def _outputs_and_gradients(fn, args):
    """fn's outputs and the gradients of every floating-point argument (None where it gets none),
    under a fixed random upstream gradient for each output."""
    floats = [a for a in args if a.dtype.is_floating]
    with tf.GradientTape() as tape:
        tape.watch(floats)
        outputs = tf.nest.flatten(fn(*args))
    rng = np.random.RandomState(1)
    upstream = [_tensor(rng, o.shape, o.dtype) for o in outputs]
    return outputs, tape.gradient(outputs, floats, output_gradients=upstream)


def _assert_close(got, want, dtype):
    """float32: float round-off. bfloat16: both sides compute in float32 and round the results
    to bfloat16 (equal here but for the float32 round-off), except the bias gradients, which the
    kernels sum from bfloat16 gradients and round to bfloat16 where the references sum float32
    ones (here up to 0.6% of the largest element apart)."""
    assert (got is None) == (want is None)
    if got is None:
        return
    assert got.dtype == want.dtype and got.shape == want.shape
    got, want = tf.cast(got, tf.float32).numpy(), tf.cast(want, tf.float32).numpy()
    if dtype == tf.float32:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2 * np.abs(want).max())


@pytest.mark.parametrize("mode", ["xla", "plain", "standard"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name, rate", PARAMS)
def test_kernel_matches_its_reference_in_values_and_gradients(name, rate, dtype, mode):
    """mode: XLA-compiled, the same functions without XLA, or kernels.standard_ops()."""
    dtype = DTYPES[dtype]
    kernel, reference, args = {**CASES, **DROPOUT_CASES}[name](np.random.RandomState(0), dtype,
                                                               rate)
    with kernels.compile_with_xla(mode == "xla"), kernels.standard_ops(mode == "standard"):
        got_outputs, got_grads = _outputs_and_gradients(kernel, args)
    want_outputs, want_grads = _outputs_and_gradients(reference, args)
    assert len(got_outputs) == len(want_outputs)
    for got, want in zip(got_outputs + got_grads, want_outputs + want_grads):
        _assert_close(got, want, dtype)
    if rate:  # the mask drops elements, so a different mask would have failed above
        dropped = kernels.keep_mask(tf.shape(args[0]), KEY, rate).numpy()
        assert 0 < (~dropped).sum() < dropped.size


# -- against TensorFlow's own ops and plain formulas ------------------------------------------------

def _value_and_grad(fn, *args):
    args = [tf.constant(a) for a in args]
    with tf.GradientTape() as tape:
        tape.watch(args)
        y = fn(*args)
        weight = tf.constant(np.random.RandomState(0).randn(*y.shape), y.dtype)
        total = tf.reduce_sum(y * weight)  # a non-uniform upstream gradient
    return [y.numpy()] + [g.numpy() for g in tape.gradient(total, args)]


def test_hand_written_gradients_match_autodiff_of_the_plain_formulas():
    rng = np.random.RandomState(3)
    x = rng.randn(4, 6, 8).astype(np.float32) * 3
    gamma, beta = rng.randn(8).astype(np.float32), rng.randn(8).astype(np.float32)

    def plain_layer_norm(x, g, b):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, b, g, kernels.LAYER_NORM_EPSILON)

    for ours, reference, args in [
            (kernels.gelu, lambda t: tf.nn.gelu(t, approximate=False), (x,)),
            (kernels.layer_norm, plain_layer_norm, (x, gamma, beta))]:
        for a, b in zip(_value_and_grad(ours, *args), _value_and_grad(reference, *args)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

    labels = rng.randint(0, 8, (4, 6))
    xent_ours = lambda t: kernels.sparse_softmax_cross_entropy(labels, t)  # noqa: E731
    xent_tf = lambda t: tf.nn.sparse_softmax_cross_entropy_with_logits(labels, t)  # noqa: E731
    for a, b in zip(_value_and_grad(xent_ours, x), _value_and_grad(xent_tf, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_fused_blocks_match_the_plain_formulas():
    rng = np.random.RandomState(4)
    y, r = rng.randn(4, 6, 8).astype(np.float32), rng.randn(4, 6, 8).astype(np.float32)
    bias, gamma, beta = (rng.randn(8).astype(np.float32) for _ in range(3))
    scores = rng.randn(2, 3, 5, 5).astype(np.float32) * 3
    mask_bias = (rng.rand(2, 1, 1, 5) < 0.3).astype(np.float32) * MASK_BIAS

    def plain_add_norm(y, b, r, g, be):
        mean, var = tf.nn.moments(y + b + r, axes=[-1], keepdims=True)
        return tf.nn.batch_normalization(y + b + r, mean, var, be, g, kernels.LAYER_NORM_EPSILON)

    for ours, reference, args in [
            (lambda *a: kernels.dropout_add_layer_norm(*a, 0.0), plain_add_norm,
             (y, bias, r, gamma, beta)),
            (lambda s: kernels.attention_probs(s, mask_bias, 0.0),
             lambda s: tf.nn.softmax(s + mask_bias), (scores,)),
            (kernels.bias_gelu, lambda t, b: tf.nn.gelu(t + b, approximate=False), (y, bias)),
            (kernels.add_bias_float32, lambda t, b: t + b, (y, bias))]:
        for a, b in zip(_value_and_grad(ours, *args), _value_and_grad(reference, *args)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

    qkv, qkv_bias = rng.randn(2, 5, 3 * 8).astype(np.float32), rng.randn(3 * 8).astype(np.float32)

    def plain_split(qkv, b):  # [B, S, 3H] -> 3 x [B, N, S, D] with N = 2, D = 4; q scaled
        heads = [tf.transpose(tf.reshape(t, [2, 5, 2, 4]), [0, 2, 1, 3])
                 for t in tf.split(qkv + b, 3, axis=-1)]
        return tf.stack([heads[0] * 0.5, heads[1], heads[2]])

    ours = lambda t, b: tf.stack(kernels.split_heads(t, b, 2, 0.5))  # noqa: E731
    for a, b in zip(_value_and_grad(ours, qkv, qkv_bias),
                    _value_and_grad(plain_split, qkv, qkv_bias)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_exact_gelu_value():
    assert float(kernels.gelu(tf.constant(1.0))) == pytest.approx(0.8413447, abs=1e-6)
    assert float(kernels.gelu_reference(tf.constant(1.0))) == pytest.approx(0.8413447, abs=1e-6)


# -- Dropout ------------------------------------------------------------------------------------------

def test_bfloat16_dropout_drops_exactly_rate_and_scales_kept_values_in_float32():
    # tf.nn.dropout on a bfloat16 tensor drew bfloat16 uniforms: it dropped ~10.16% instead of 10%
    # and scaled the kept values by bfloat16(1 / 0.9) = 1.109375 instead of 1.1111.
    tf.random.set_seed(7)
    x = tf.cast(tf.random.uniform([2000, 2048], 1.0, 2.0), tf.bfloat16)  # 4.1M elements, none 0
    y = kernels.dropout(x, 0.1, training=True)
    assert y.dtype == tf.bfloat16
    x32, y32 = tf.cast(x, tf.float32).numpy(), tf.cast(y, tf.float32).numpy()
    dropped = y32 == 0
    # The drop fraction's standard deviation is sqrt(0.1 * 0.9 / 4.1M) = 1.5e-4: 10.16% is ten
    # of them away, and 4 of them is the tolerance.
    assert abs(dropped.mean() - 0.1) < 6e-4
    kept_x, kept_y = x32[~dropped], y32[~dropped]
    # Each kept value is float32(x) * float32(1 / 0.9), rounded once to bfloat16 ...
    expected = tf.cast(kept_x * np.float32(1 / 0.9), tf.bfloat16)
    np.testing.assert_array_equal(kept_y, tf.cast(expected, tf.float32).numpy())
    # ... so on average kept values are scaled by 1 / 0.9 (1.109375 is 1.7e-3 away).
    assert abs(kept_y.sum() / kept_x.sum() - 1 / 0.9) < 3e-4


def test_bfloat16_fused_dropout_blocks_drop_exactly_rate():
    # The fused blocks (attention probabilities; bias + dropout + residual + LayerNorm) in bfloat16.
    tf.random.set_seed(8)
    scores = tf.zeros([16, 4, 256, 256], tf.bfloat16)          # uniform probabilities 1 / 256
    probs = kernels.attention_probs(scores, tf.zeros([16, 1, 1, 256]), 0.1).numpy()
    assert probs.dtype == tf.bfloat16.as_numpy_dtype
    probs = probs.astype(np.float32)
    assert abs((probs == 0).mean() - 0.1) < 6e-4
    np.testing.assert_array_equal(np.unique(probs), [0, np.float32(tf.cast(
        np.float32(1 / 256) * np.float32(1 / 0.9), tf.bfloat16))])
    # With y = 1, no bias and no residual, the sum is 0 where dropped and 1 / 0.9 where kept; the
    # LayerNorm output is then negative exactly at the dropped positions.
    y = tf.ones([4096, 1024], tf.bfloat16)
    out = kernels.dropout_add_layer_norm(y, tf.zeros([1024]), tf.zeros_like(y), tf.ones([1024]),
                                         tf.zeros([1024]), 0.1)
    assert out.dtype == tf.bfloat16
    assert abs((tf.cast(out, tf.float32).numpy() < 0).mean() - 0.1) < 6e-4


def test_dropout_masks_are_fresh_independent_and_shared_with_the_gradient():
    x = tf.ones([1000, 1000])
    a = kernels.dropout(x, 0.1, training=True).numpy() == 0
    b = kernels.dropout(x, 0.1, training=True).numpy() == 0
    # Two calls: different masks, dropping independently of each other and of the neighbours.
    assert abs((a & b).mean() - 0.01) < 5e-4
    assert abs((a[:, 1:] & a[:, :-1]).mean() - 0.01) < 5e-4
    assert abs((a[1:] & a[:-1]).mean() - 0.01) < 5e-4
    # The gradient reuses the forward mask and scale.
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = kernels.dropout(x, 0.25, training=True)
    np.testing.assert_array_equal(tape.gradient(y, x), y)
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}


def test_dropout_with_a_key_applies_keep_mask():
    x = tf.ones([300, 400])
    kept = kernels.keep_mask(tf.shape(x), KEY, 0.1).numpy()
    np.testing.assert_array_equal(kernels.dropout(x, 0.1, True, KEY).numpy() != 0, kept)
    assert abs((~kept).mean() - 0.1) < 3e-3   # sqrt(0.09 / 120000) = 8.7e-4


def test_dropout_is_off_unless_training():
    x = tf.cast(tf.random.normal([8, 16]), tf.bfloat16)
    assert kernels.dropout(x, 0.1, training=False) is x
    assert kernels.dropout(x, 0.0, training=True) is x


# -- The XLA setting ----------------------------------------------------------------------------------

def _compiled_calls(fn):
    """How many XLA-compiled function calls a tf.function traced now holds."""
    graph = tf.function(fn).get_concrete_function(tf.TensorSpec([2, 3])).graph
    return sum(op.node_def.attr["_XlaMustCompile"].b for op in graph.get_operations()
               if "_XlaMustCompile" in op.node_def.attr)


def test_compile_with_xla_applies_to_functions_traced_inside_and_restores_the_setting():
    assert kernels.xla_enabled()
    assert _compiled_calls(kernels.gelu) == 1
    with kernels.compile_with_xla(False):
        assert not kernels.xla_enabled()
        assert _compiled_calls(kernels.gelu) == 0
        with kernels.compile_with_xla(True):
            assert _compiled_calls(kernels.gelu) == 1
        assert not kernels.xla_enabled()
    assert kernels.xla_enabled()
    with pytest.raises(RuntimeError), kernels.compile_with_xla(False):
        raise RuntimeError
    assert kernels.xla_enabled()


def _op_types(fn, *specs):
    graph = tf.function(fn).get_concrete_function(*specs).graph
    return {op.type for op in graph.get_operations()}


def test_standard_ops_trace_standard_ops_and_restore_the_setting():
    assert not kernels.standard_ops_enabled()
    spec, bias = tf.TensorSpec([2, 3]), tf.TensorSpec([3])
    with kernels.standard_ops():
        assert kernels.standard_ops_enabled()
        ops = _op_types(kernels.bias_gelu, spec, bias)
        # The form Grappler's remapper fuses with a MatMul before it; no XLA, no custom gradient.
        assert {"BiasAdd", "Erf"} <= ops and "IdentityN" not in ops
        assert _compiled_calls(kernels.gelu) == 0
        with kernels.standard_ops(False):
            assert "IdentityN" in _op_types(kernels.layer_norm, spec, bias, bias)
    assert not kernels.standard_ops_enabled()
    assert "IdentityN" in _op_types(kernels.bias_gelu, spec, bias)   # the custom gradient
