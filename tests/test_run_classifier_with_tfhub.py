"""run_classifier_with_tfhub.py: fine-tuning TF Hub-format encoders, this project's and others'.

The tiny encoder is the tiny pretrained checkpoint of tests/test_run_classifier.py exported by
saved_models.export_encoder; the other one is a small Keras encoder saved by tf_keras with TF Hub's
conventions (what TF Hub's and Model Garden's BERT encoders are), which this project did not
write. The real MiniLM weights compare run_classifier_with_tfhub.py on the exported encoder with
run_classifier.py on the checkpoint, same settings, on the bundled task.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import run_classifier
import run_classifier_with_tfhub
import saved_models
from script_main import error_line, read_results, run_script_command, run_script_main
from test_run_classifier import (SEQ, DEMO_DIR, env, read_rows,  # noqa: F401  (env: fixture)
                                 write_glue)

def run_hub(**flag_values):
    return run_script_main(run_classifier_with_tfhub, **flag_values)


def hub_flags(handle, data_dir, output_dir, **overrides):
    return dict(dict(bert_hub_module_handle=str(handle), data_dir=str(data_dir),
                     output_dir=str(output_dir), max_seq_length=SEQ, train_batch_size=4,
                     eval_batch_size=8, predict_batch_size=8, learning_rate=1e-3,
                     num_train_epochs=1.0, iterations_per_loop=10), **overrides)


@pytest.fixture(scope="module")
def tiny_hub(env, tmp_path_factory):
    """The tiny pretrained checkpoint as a TF Hub encoder, and SST-2 data."""
    root = tmp_path_factory.mktemp("tiny_hub")
    saved_models.export_encoder(str(root / "encoder"), env.config, env.init_checkpoint,
                                env.vocab_file, do_lower_case=True)
    data = write_glue("sst-2", root / "data", seed=3)
    return root / "encoder", root / "data", data


def test_fine_tunes_the_exported_encoder_with_run_classifier_s_outputs(env, tiny_hub, tmp_path):
    handle, data_dir, _ = tiny_hub
    out = tmp_path / "out"
    run_hub(**hub_flags(handle, data_dir, out, task_name="SST-2", do_train="true",
                        do_eval="true", do_predict="true"))
    results = read_results(out / "eval_results.txt")
    assert set(results) == {"eval_accuracy", "eval_loss", "global_step", "loss"}
    assert results["global_step"] == 2
    assert len(read_rows(out / "test_results.tsv")) == 5 and (out / "SST-2.tsv").exists()
    info = json.loads((out / "task.json").read_text())
    assert info["kind"] == "classification" and info["do_lower_case"] is True
    # The checkpoint is run_classifier.py's: the encoder's variables keep their original names,
    # trained from the module's weights, with the new head and the optimizer slots.
    stored = checkpoints.read(str(out))
    names = {n for n in stored if not n.endswith(("adam_m", "adam_v")) and n != "global_step"}
    assert names == {n for n in env.init if n.startswith("bert/")} | {"output_weights",
                                                                     "output_bias"}
    name = "bert/encoder/layer_1/output/dense/kernel"
    assert 0 < np.max(np.abs(stored[name] - env.init[name])) < 0.1
    assert "bert/pooler/dense/kernel/adam_m" in stored
    # ... so run_classifier.py evaluates it and gets the same results.
    again = tmp_path / "again"
    run_script_main(run_classifier, task_name="SST-2", do_eval="true", data_dir=data_dir,
                    output_dir=again, init_checkpoint=out, vocab_file=env.vocab_file,
                    bert_config_file=env.bert_config_file, max_seq_length=SEQ)
    for key, value in read_results(again / "eval_results.txt").items():
        assert value == pytest.approx(results[key], rel=1e-5, abs=1e-6), key
    # Resuming continues from the checkpoint.
    run_hub(**hub_flags(handle, data_dir, out, task_name="SST-2", do_train="true",
                        num_train_epochs=2.0))
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(out))) == 4


def keras_encoder(vocab_size, hidden=32, num_layers=2, heads=2, max_len=64):
    """A small BERT-like encoder as a tf_keras functional model with TF Hub's inputs and outputs
    (Keras layer names, as Model Garden's encoders have)."""
    import tf_keras as keras  # pylint: disable=import-outside-toplevel

    class PositionEmbedding(keras.layers.Layer):
        def build(self, input_shape):
            self.table = self.add_weight("embeddings", [max_len, hidden])

        def call(self, x):
            return x + self.table[tf.newaxis, :tf.shape(x)[1]]

    inputs = {name: keras.Input(shape=(None,), dtype=tf.int32, name=name)
              for name in saved_models.ENCODER_INPUTS}
    x = keras.layers.Embedding(vocab_size, hidden, name="word_embeddings")(
        inputs["input_word_ids"])
    x = x + keras.layers.Embedding(2, hidden, name="type_embeddings")(inputs["input_type_ids"])
    x = PositionEmbedding(name="position_embedding")(x)
    x = keras.layers.Dropout(0.1)(keras.layers.LayerNormalization(name="embeddings/norm")(x))
    mask = tf.cast(inputs["input_mask"][:, tf.newaxis, :], tf.bool)
    layers = []
    for i in range(num_layers):
        scope = f"transformer/layer_{i}"
        a = keras.layers.MultiHeadAttention(heads, hidden // heads, dropout=0.1,
                                            name=f"{scope}/self_attention")(x, x,
                                                                            attention_mask=mask)
        x = keras.layers.LayerNormalization(name=f"{scope}/attention_layer_norm")(
            x + keras.layers.Dropout(0.1)(a))
        h = keras.layers.Dense(4 * hidden, activation="gelu", name=f"{scope}/intermediate")(x)
        h = keras.layers.Dense(hidden, name=f"{scope}/output")(h)
        x = keras.layers.LayerNormalization(name=f"{scope}/output_layer_norm")(
            x + keras.layers.Dropout(0.1)(h))
        layers.append(x)
    pooled = keras.layers.Dense(hidden, activation="tanh", name="pooler_transform")(x[:, 0])
    return keras.Model(inputs, dict(sequence_output=x, pooled_output=pooled,
                                    encoder_outputs=layers, default=pooled))


def test_fine_tunes_a_keras_encoder_saved_with_tf_hub_s_conventions(env, tiny_hub, tmp_path):
    _, data_dir, _ = tiny_hub
    tf.random.set_seed(2)
    model = keras_encoder(env.config.vocab_size)
    model.vocab_file = tf.saved_model.Asset(env.vocab_file)
    model.do_lower_case = tf.Variable(False, trainable=False)   # read from the module
    handle = tmp_path / "keras_encoder"
    model.save(str(handle), include_optimizer=False, save_format="tf")
    initial = {v.name.split(":")[0]: v.numpy() for v in model.variables}
    out = tmp_path / "out"
    flags = hub_flags(handle, data_dir, out, task_name="sst-2", do_train="true",
                      do_eval="true", do_predict="true")
    run_hub(**flags)
    assert read_results(out / "eval_results.txt")["global_step"] == 2
    assert json.loads((out / "task.json").read_text())["do_lower_case"] is False
    stored = checkpoints.read(str(out))
    name = "transformer/layer_1/output/kernel"
    assert 0 < np.max(np.abs(stored[name] - initial[name])) < 0.1   # the encoder trained
    assert {"output_weights", "output_bias", "word_embeddings/embeddings",
            "transformer/layer_0/self_attention/query/kernel/adam_m"} <= set(stored)
    predictions = read_rows(out / "test_results.tsv")
    run_hub(**dict(flags, do_train="false", do_eval="false", output_dir=tmp_path / "again",
                   init_checkpoint=out))
    np.testing.assert_allclose(np.array(read_rows(tmp_path / "again" / "test_results.tsv"),
                                        float), np.array(predictions, float), atol=1e-6)


def test_distinct_checkpoint_names_for_repeated_variable_names():
    import hub_encoders  # pylint: disable=import-outside-toplevel
    variables = [tf.Variable(1.0, name="kernel"), tf.Variable(2.0, name="bias"),
                 tf.Variable(3.0, name="kernel"), tf.Variable(4.0, name="kernel")]
    named = hub_encoders.distinct_names(variables)
    assert list(named) == ["kernel", "bias", "kernel_1", "kernel_2"]
    assert [float(v.numpy()) for v in named.values()] == [1.0, 2.0, 3.0, 4.0]


def test_bad_modules_and_flags_fail_clearly_before_anything_is_written(env, tiny_hub, tmp_path,
                                                                        capsys):
    handle, data_dir, _ = tiny_hub
    other = tf.Module()
    other.double = tf.function(lambda x: 2 * x, input_signature=[tf.TensorSpec([], tf.float32)])
    tf.saved_model.save(other, str(tmp_path / "not_an_encoder"))
    out = tmp_path / "out"

    def error(**overrides):
        flag_values = hub_flags(handle, data_dir, out, task_name="sst-2", do_train="true")
        assert run_script_command(run_classifier_with_tfhub, **dict(flag_values,
                                                                      **overrides)) == 1
        return error_line(*capsys.readouterr())

    no_model = tmp_path / "empty"
    no_model.mkdir()
    assert error(bert_hub_module_handle=no_model) == (
        f"ERROR: --bert_hub_module_handle={no_model}: no saved_model.pb there (expected a TF2 "
        "SavedModel directory)")
    url = "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"
    assert "nothing is downloaded" in error(bert_hub_module_handle=url)
    assert "not a TF2 encoder in TF Hub's format" in error(
        bert_hub_module_handle=tmp_path / "not_an_encoder")
    assert "the vocabulary comes from --bert_hub_module_handle" in error(
        vocab_file=env.vocab_file)
    assert f"--do_lower_case=False, but --bert_hub_module_handle={handle} has " \
        "do_lower_case=True" in error(do_lower_case="false")
    assert "--precision=bfloat16" in error(precision="bfloat16")
    assert "--gradient_checkpointing" in error(gradient_checkpointing="true")
    assert "fails on inputs of --max_seq_length=128 tokens" in error(max_seq_length=128)
    assert not out.exists()


def test_minilm_from_its_tf_hub_export_learns_as_from_its_checkpoint(minilm_checkpoint,
                                                                       minilm_encoder, tmp_path):
    """The exported real MiniLM encoder fine-tuned on the bundled task (a small budget: 320
    training sentences, 10 steps of 32) reaches the dev accuracy of run_classifier.py from the
    same weights with the same settings, within noise (200 dev sentences: a standard error of
    about 0.02 per run). Both differ in the head's initial values and the dropout masks only.
    --max_seq_length=20 holds the task's longest sentence (20 word pieces with [CLS] and [SEP])."""
    bert = minilm_checkpoint
    data = tmp_path / "data"
    data.mkdir()
    for name, count in (("train.tsv", 320), ("dev.tsv", 200)):
        with open(os.path.join(DEMO_DIR, name), encoding="utf-8") as f:
            lines = f.read().split("\n")
        (data / name).write_text("\n".join(lines[:count + 1]) + "\n", encoding="utf-8")
    settings = dict(task_name="sst-2", data_dir=data, do_train="true", do_eval="true",
                    max_seq_length=20, train_batch_size=32, learning_rate=1e-4,
                    num_train_epochs=1.0)
    run_script_main(run_classifier, output_dir=tmp_path / "checkpoint",
                    vocab_file=bert["vocab_file"], bert_config_file=bert["bert_config_file"],
                    init_checkpoint=bert["init_checkpoint"], **settings)
    run_hub(bert_hub_module_handle=minilm_encoder, output_dir=tmp_path / "hub", **settings)
    accuracy = {name: read_results(tmp_path / name / "eval_results.txt")["eval_accuracy"]
                for name in ("checkpoint", "hub")}
    print(f"\nMiniLM, 10 steps on 320 sentences, dev accuracy on 200: run_classifier.py "
          f"{accuracy['checkpoint']:.3f}, run_classifier_with_tfhub.py {accuracy['hub']:.3f}")
    assert min(accuracy.values()) >= 0.8 and abs(accuracy["checkpoint"] - accuracy["hub"]) <= 0.07
