"""optimization.py: schedule values, the original AdamW update, exclusions, clipping, LAMB."""
import numpy as np
import pytest
import tensorflow as tf

import optimization
import training


def test_schedule_warmup_then_linear_decay_from_step_zero():
    lr = optimization.learning_rate_schedule(1e-4, num_train_steps=100, num_warmup_steps=10)
    values = {s: float(lr(s)) for s in (0, 5, 9, 10, 50, 99, 100, 150)}
    assert values[0] == 0.0
    assert values[5] == pytest.approx(5e-5)
    assert values[9] == pytest.approx(9e-5)
    # After warm-up the decay is the one counted from step 0: 1e-4 * (1 - 10/100).
    assert values[10] == pytest.approx(9e-5)
    assert values[50] == pytest.approx(5e-5)
    assert values[99] == pytest.approx(1e-6, rel=1e-5)
    assert values[100] == 0.0 and values[150] == 0.0
    no_warmup = optimization.learning_rate_schedule(1e-4, 100, 0)
    assert float(no_warmup(0)) == pytest.approx(1e-4)


@pytest.mark.parametrize("name, decays", [
    ("bert/encoder/layer_0/attention/self/query/kernel", True),
    ("bert/embeddings/word_embeddings", True),
    ("output_weights", True),
    ("bert/encoder/layer_0/attention/self/query/bias", False),
    ("bert/embeddings/LayerNorm/gamma", False),
    ("cls/predictions/output_bias", False),
    ("cls/predictions/transform/LayerNorm/beta", False),
])
def test_weight_decay_exclusions(name, decays):
    opt = optimization.AdamWeightDecay(1e-3)
    assert opt.uses_weight_decay(name) == decays


def reference_adamw(w, grads, lr, wd, decay, b1=0.9, b2=0.999, eps=1e-6):
    """The original update in numpy, no bias correction."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for g in grads:
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        update = m / (np.sqrt(v) + eps)
        if decay:
            update = update + wd * w
        w = w - lr * update
    return w, m, v


def run_optimizer(opt, names, init, grads_per_step):
    variables = {n: tf.Variable(init[n], name=n) for n in names}
    opt.build(variables)
    step = tf.Variable(0, dtype=tf.int64)
    for grads in grads_per_step:
        opt.apply_gradients({n: tf.constant(grads[n]) for n in names}, variables, step)
        step.assign_add(1)
    return variables


def test_adamw_matches_the_original_formula_with_exclusions():
    rng = np.random.RandomState(0)
    names = ["layer/kernel", "layer/bias", "LayerNorm/gamma"]
    init = {n: rng.randn(3, 4).astype(np.float32) for n in names}
    grads = [{n: rng.randn(3, 4).astype(np.float32) for n in names} for _ in range(5)]
    opt = optimization.AdamWeightDecay(1e-2, weight_decay_rate=0.1)
    variables = run_optimizer(opt, names, init, grads)
    for n in names:
        expected_w, m, v = reference_adamw(init[n], [g[n] for g in grads], 1e-2, 0.1,
                                           decay=(n == "layer/kernel"))
        np.testing.assert_allclose(variables[n].numpy(), expected_w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(opt.slot_variables()[f"{n}/adam_m"].numpy(), m, rtol=1e-5,
                                   atol=1e-7)
        np.testing.assert_allclose(opt.slot_variables()[f"{n}/adam_v"].numpy(), v, rtol=1e-5,
                                   atol=1e-7)


def test_adamw_first_step_is_not_bias_corrected():
    # With bias correction the first step would be lr * sign(g) = 0.1; without, it is
    # lr * 0.1 g / (sqrt(0.001 g^2) + eps), about 0.316 * lr.
    opt = optimization.AdamWeightDecay(0.1, weight_decay_rate=0.0)
    variables = run_optimizer(opt, ["w"], {"w": np.zeros([1], np.float32)},
                              [{"w": np.ones([1], np.float32)}])
    assert float(variables["w"][0]) == pytest.approx(-0.1 * 0.1 / (np.sqrt(0.001) + 1e-6), rel=1e-5)


def test_slot_names_are_the_originals():
    opt = optimization.AdamWeightDecay(1e-3)
    opt.build({"bert/pooler/dense/kernel": tf.Variable(tf.zeros([2, 2]))})
    assert sorted(opt.slot_variables()) == ["bert/pooler/dense/kernel/adam_m",
                                            "bert/pooler/dense/kernel/adam_v"]


def test_clip_by_global_norm():
    grads = {"a": tf.constant([3.0, 0.0]), "b": tf.constant([0.0, 4.0])}
    clipped, norm = optimization.clip_by_global_norm(grads, 1.0)
    assert float(norm) == pytest.approx(5.0)
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(clipped["b"], [0.0, 0.8], rtol=1e-6)
    small, _ = optimization.clip_by_global_norm({"a": tf.constant([0.3])}, 1.0)
    np.testing.assert_allclose(small["a"], [0.3])


def test_lamb_matches_a_numpy_reference():
    rng = np.random.RandomState(1)
    names = ["dense/kernel", "dense/bias"]
    init = {n: rng.randn(4).astype(np.float32) for n in names}
    grads = [{n: rng.randn(4).astype(np.float32) for n in names} for _ in range(3)]
    lr, wd, b1, b2, eps = 1e-2, 0.01, 0.9, 0.999, 1e-6
    variables = run_optimizer(optimization.Lamb(lr, weight_decay_rate=wd), names, init, grads)
    for n in names:
        w, m, v = init[n].astype(np.float64), 0.0, 0.0
        for t, g in enumerate([g[n] for g in grads], start=1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            update = (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
            if n == "dense/kernel":
                update = update + wd * w
                update = update * (np.linalg.norm(w) / np.linalg.norm(update))
            w = w - lr * update
        np.testing.assert_allclose(variables[n].numpy(), w, rtol=1e-5, atol=1e-6)


def test_apply_gradients_under_mirrored_strategy_matches_one_device():
    strategy = training.mirrored_strategy(["/cpu:0", "/cpu:1"])
    init = np.arange(6, dtype=np.float32).reshape(2, 3)
    grad = np.full((2, 3), 0.5, np.float32)
    with strategy.scope():
        var = tf.Variable(init, name="w/kernel")
        step = tf.Variable(0, dtype=tf.int64, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        opt = optimization.AdamWeightDecay(1e-1)
        opt.build({"w/kernel": var})

    @tf.function
    def replica_step():
        opt.apply_gradients({"w/kernel": tf.constant(grad)}, {"w/kernel": var}, step)
        step.assign_add(1)

    for _ in range(2):
        strategy.run(replica_step)
    expected, _, _ = reference_adamw(init, [grad, grad], 1e-1, 0.01, decay=True)
    copies = [c.numpy() for c in strategy.experimental_local_results(var)]
    np.testing.assert_array_equal(copies[0], copies[1])
    # Relative 5e-5: TensorFlow's fused Adam kernel rounds its float32 square root differently
    # from numpy (about 1e-5 relative per step when v is tiny, as in the first steps here).
    np.testing.assert_allclose(copies[0], expected, rtol=5e-5)
    assert int(step.numpy()) == 2


def test_create_optimizer():
    opt = optimization.create_optimizer(2e-5, 1000, 100)
    assert isinstance(opt, optimization.AdamWeightDecay)
    assert float(opt.learning_rate(50)) == pytest.approx(1e-5)
    assert isinstance(optimization.create_optimizer(1e-3, 10, 1, optimizer="lamb"),
                      optimization.Lamb)
    with pytest.raises(ValueError, match="adamw"):
        optimization.create_optimizer(1e-3, 10, 1, optimizer="sgd")
