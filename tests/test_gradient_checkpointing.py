"""Activation recomputation (BertModel's `gradient_checkpointing`, the scripts'
--gradient_checkpointing): every Transformer layer but the last keeps only its input and runs again
in the backward pass.

Recomputation must change memory and nothing else. With dropout on, the gradients (eager and in a
tf.function, float32 and bfloat16) and the weights after a few training steps through
training.Runner (one device, two mirrored replicas, gradient accumulation, bfloat16) are those
without it, and the layers do run twice. The scripts pass the flag to their model:
test_run_pretraining.py, test_run_classifier.py, test_run_squad.py. What it saves and costs:
benchmarks/recompute_memory.py.
"""
import collections

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import modeling
import training
from test_modeling import tiny_config
from test_training import features, train, weights

LAYERS = 3
# Dropout well above the default, so that a mask differing between the two runs shows.
CONFIG = dict(num_hidden_layers=LAYERS, hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)
# What else could make the two runs differ: a matrix product or reduction summed in another order
# in the second run. None does on CPU (the differences are 0); the bfloat16 tolerance would leave
# room for a bfloat16 rounding going the other way, far below what one wrong mask does.
TOLERANCE = {"float32": dict(rtol=1e-6, atol=1e-8), "bfloat16": dict(rtol=1e-2, atol=1e-6)}


def pretrainer(gradient_checkpointing, dtype="float32"):
    """The same initial weights for every call."""
    tf.random.set_seed(0)
    return modeling.BertPretrainer(tiny_config(**CONFIG), tf.as_dtype(dtype),
                                   gradient_checkpointing=gradient_checkpointing)


def batch():
    return {name: tf.constant(value) for name, value in features().items()}


def gradients(model, seed, in_function):
    """{name: gradient, "loss": loss} of the pretraining loss in training mode (dropout keys
    from `seed`)."""
    trainable = {n: v for n, v in checkpoints.named_variables(model).items() if v.trainable}

    def step():
        with tf.GradientTape() as tape:
            loss = modeling.pretraining_loss(model, batch(), True)
        return dict(tape.gradient(loss, trainable), loss=loss)

    tf.random.set_seed(seed)
    grads = (tf.function(step) if in_function else step)()
    return {name: tf.convert_to_tensor(g).numpy() for name, g in grads.items()}


def count_layer_runs(monkeypatch):
    """A Counter of runs of each TransformerLayer's computation (first runs and recomputations),
    by layer, filled as the model runs or is traced."""
    runs = collections.Counter()
    forward = modeling.TransformerLayer._forward  # pylint: disable=protected-access

    def counted(layer, *args):
        runs[layer] += 1
        return forward(layer, *args)

    monkeypatch.setattr(modeling.TransformerLayer, "_forward", counted)
    return runs


@pytest.mark.parametrize("in_function, dtype", [(False, "float32"), (True, "float32"),
                                                (True, "bfloat16")],
                         ids=["eager-float32", "function-float32", "function-bfloat16"])
def test_recomputation_gives_the_gradients_of_the_plain_model(in_function, dtype, monkeypatch):
    runs = count_layer_runs(monkeypatch)
    model = pretrainer(False, dtype)
    plain = gradients(model, seed=1, in_function=in_function)
    assert [runs[layer] for layer in model.bert.layers] == [1] * LAYERS
    model = pretrainer(True, dtype)
    recomputed = gradients(model, seed=1, in_function=in_function)
    # Once forward, once more in the backward pass; the last layer is not recomputed.
    assert [runs[layer] for layer in model.bert.layers] == [2] * (LAYERS - 1) + [1]
    assert sorted(plain) == sorted(recomputed)
    for name in plain:
        np.testing.assert_allclose(recomputed[name], plain[name], err_msg=name,
                                   **TOLERANCE[dtype])
    # Dropout is on and matters: other keys give other gradients.
    other = gradients(pretrainer(False, dtype), seed=2, in_function=in_function)
    kernel = "bert/encoder/layer_0/intermediate/dense/kernel"
    assert np.abs(other[kernel] - plain[kernel]).max() > 0.1 * np.abs(plain[kernel]).max()


def test_evaluation_is_unchanged():
    def logits(gradient_checkpointing):
        model = pretrainer(gradient_checkpointing)
        return tf.function(lambda features: model(features, training=False))(batch())

    for plain, recomputed in zip(logits(False), logits(True)):
        np.testing.assert_array_equal(recomputed, plain)


@pytest.mark.parametrize("devices, dtype, accumulation", [(2, "float32", 2), (1, "bfloat16", 2)],
                         ids=["mirrored-float32-accumulation", "one-device-bfloat16-accumulation"])
def test_training_steps_give_the_weights_of_the_plain_model(tmp_path, devices, dtype,
                                                            accumulation):
    def run(gradient_checkpointing):
        strategy = (training.mirrored_strategy(["/cpu:0", "/cpu:1"]) if devices == 2
                    else tf.distribute.OneDeviceStrategy("/cpu:0"))
        runner, _, _ = train(tmp_path / str(gradient_checkpointing), 3, strategy, accumulation,
                             save_every=3, total=3,
                             build_fn=lambda: pretrainer(gradient_checkpointing, dtype))
        return weights(runner)

    plain, recomputed = run(False), run(True)
    initial = {n: v.numpy() for n, v in checkpoints.named_variables(pretrainer(False)).items()}
    kernel = "bert/encoder/layer_0/attention/self/query/kernel"
    assert np.abs(plain[kernel] - initial[kernel]).max() > 1e-3   # it did train
    for name in plain:
        np.testing.assert_allclose(recomputed[name], plain[name], rtol=0, atol=1e-6,
                                   err_msg=name)
