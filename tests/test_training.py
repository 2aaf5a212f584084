"""training.py: the runner on one device and on two mirrored replicas, resume, accumulation, the
best checkpoint."""
import os
import types

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import input_pipeline
import modeling
import optimization
import training
from test_modeling import tiny_config

NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def build(**overrides):
    return lambda: modeling.BertPretrainer(tiny_config(**{**NO_DROPOUT, **overrides}))


loss_fn = modeling.pretraining_loss


def features(n=8, seq=12, seed=0):
    rng = np.random.RandomState(seed)
    mask = np.ones((n, seq), np.int32)
    mask[::2, seq - 3:] = 0
    return dict(input_ids=rng.randint(0, 99, (n, seq)).astype(np.int32), input_mask=mask,
                segment_ids=(np.arange(seq) >= seq // 2).astype(np.int32)[None].repeat(n, 0),
                masked_lm_positions=rng.randint(0, seq - 3, (n, 3)).astype(np.int32),
                masked_lm_ids=rng.randint(0, 99, (n, 3)).astype(np.int32),
                masked_lm_weights=np.ones((n, 3), np.float32),
                next_sentence_labels=rng.randint(0, 2, (n, 1)).astype(np.int32))


def same_batch_dataset(batch_size=8):
    """Every step sees the same global batch: makes runs comparable step for step.

    With several replicas on one worker, the pipeline's consecutive per-replica batches go to
    replicas 0, 1, ... in turn, so each step still covers exactly the 8 examples.
    """
    data = features(batch_size)

    def dataset_fn(ctx):
        per_replica = input_pipeline.per_replica_batch_size(ctx, batch_size)
        return tf.data.Dataset.from_tensor_slices(data).batch(per_replica).repeat()
    return dataset_fn


def one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def train(output_dir, steps, strategy=None, accumulation=1, save_every=2, total=4, lr=1e-2,
          build_fn=None, dataset_fn=None, init_checkpoint=None):
    runner = training.Runner(strategy or one_device(), build_fn or build(), str(output_dir))
    config = training.TrainConfig(num_train_steps=steps, train_batch_size=8,
                                  iterations_per_loop=2, save_checkpoints_steps=save_every,
                                  gradient_accumulation_steps=accumulation,
                                  init_checkpoint=init_checkpoint)
    optimizer = optimization.create_optimizer(lr, total, 1)
    loss = runner.train(config, loss_fn, dataset_fn or same_batch_dataset(), optimizer)
    return runner, optimizer, loss


def weights(runner):
    return {n: v.numpy() for n, v in runner.model_variables.items()}


def assert_close(a, b, atol=1e-5):
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=atol, err_msg=name)


def test_training_lowers_the_loss_and_writes_original_names(tmp_path):
    tf.random.set_seed(0)
    runner = training.Runner(one_device(), build(), str(tmp_path))
    config = training.TrainConfig(num_train_steps=30, train_batch_size=8, iterations_per_loop=10,
                                  save_checkpoints_steps=10)
    first = runner.evaluate(lambda m, f: {"loss": (loss_fn(m, f, False), 1.0)},
                            tf.data.Dataset.from_tensor_slices(features()).batch(8))["loss"]
    last = runner.train(config, loss_fn, same_batch_dataset(),
                        optimization.create_optimizer(1e-2, 30, 3))
    assert last < first * 0.7
    names = dict(checkpoints.list_variables(str(tmp_path)))
    assert names["global_step"] == []
    assert "bert/encoder/layer_1/attention/self/query/kernel/adam_v" in names
    assert "cls/predictions/output_bias/adam_m" in names
    assert checkpoints.step_of(tf.train.latest_checkpoint(str(tmp_path))) == 30
    assert [f for f in os.listdir(tmp_path) if f.startswith("events.out.tfevents")]


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    tf.random.set_seed(1)
    straight, straight_opt, _ = train(tmp_path / "straight", 4)
    tf.random.set_seed(1)
    train(tmp_path / "resumed", 2)
    # A new process would build new variables with new random values: the checkpoint wins.
    tf.random.set_seed(2)
    resumed, resumed_opt, _ = train(tmp_path / "resumed", 4)
    assert int(resumed.global_step.numpy()) == 4
    assert_close(weights(straight), weights(resumed))
    assert_close({n: v.numpy() for n, v in straight_opt.slot_variables().items()},
                 {n: v.numpy() for n, v in resumed_opt.slot_variables().items()})
    # Starting the finished command again trains nothing and keeps the final step.
    again, _, loss = train(tmp_path / "resumed", 4)
    assert loss is None and int(again.global_step.numpy()) == 4


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    tf.random.set_seed(3)
    full, _, _ = train(tmp_path / "full", 2, total=2)
    tf.random.set_seed(3)
    accumulated, _, _ = train(tmp_path / "acc", 2, accumulation=4, total=2)
    assert_close(weights(full), weights(accumulated), atol=2e-5)


def test_two_mirrored_replicas_match_one_device(tmp_path):
    tf.random.set_seed(4)
    single, _, _ = train(tmp_path / "one", 2, total=2)
    tf.random.set_seed(4)
    mirrored = training.mirrored_strategy(["/cpu:0", "/cpu:1"])
    two, _, _ = train(tmp_path / "two", 2, strategy=mirrored, total=2)
    assert_close(weights(single), weights(two), atol=2e-5)
    names = dict(checkpoints.list_variables(str(tmp_path / "two")))
    assert "bert/embeddings/word_embeddings/adam_m" in names and "global_step" in names


def test_init_checkpoint_loads_weights_but_not_optimizer_state_or_step(tmp_path):
    tf.random.set_seed(5)
    pretrained, _, _ = train(tmp_path / "pre", 2)
    runner = training.Runner(one_device(), build(), str(tmp_path / "fine"))
    optimizer = optimization.create_optimizer(0.0, 1, 0)  # lr 0: weights stay as loaded
    config = training.TrainConfig(num_train_steps=1, train_batch_size=8,
                                  init_checkpoint=str(tmp_path / "pre"))
    runner.train(config, loss_fn, same_batch_dataset(), optimizer)
    assert int(runner.global_step.numpy()) == 1  # counted from 0, not from the checkpoint's 2
    assert_close(weights(pretrained), weights(runner), atol=0)
    restored = checkpoints.read(str(tmp_path / "fine"))
    pre = checkpoints.read(str(tmp_path / "pre"))
    # The slots are this run's own (one step), not the pretraining run's.
    name = "bert/pooler/dense/kernel/adam_v"
    assert not np.allclose(restored[name], pre[name])


def test_non_finite_loss_stops_without_saving(tmp_path):
    def nan_loss(model, f, training):
        return loss_fn(model, f, training) * float("nan")

    runner = training.Runner(one_device(), build(), str(tmp_path))
    config = training.TrainConfig(num_train_steps=2, train_batch_size=8, iterations_per_loop=1,
                                  save_checkpoints_steps=1)
    with pytest.raises(FloatingPointError, match="nan"):
        runner.train(config, nan_loss, same_batch_dataset(), optimization.create_optimizer(1e-3, 2, 0))
    assert tf.train.latest_checkpoint(str(tmp_path)) is None


def test_indivisible_accumulation_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="gradient_accumulation_steps=3"):
        train(tmp_path, 1, accumulation=3)


@pytest.mark.parametrize("strategy", ["one", "mirrored"])
def test_predict_keeps_order_and_evaluate_sums(tmp_path, strategy):
    strategy = one_device() if strategy == "one" else \
        training.mirrored_strategy(["/cpu:0", "/cpu:1"])
    runner = training.Runner(strategy, build(), str(tmp_path))
    data = features(n=11)
    dataset = tf.data.Dataset.from_tensor_slices(data).batch(4)  # 4, 4, 3: uneven at the end
    outputs = list(runner.predict(lambda m, f: {"ids": f["input_ids"][:, 0],
                                                "pooled": m.bert(f["input_ids"]).pooled_output},
                                  dataset))
    np.testing.assert_array_equal(np.concatenate([o["ids"] for o in outputs]),
                                  data["input_ids"][:, 0])
    assert np.concatenate([o["pooled"] for o in outputs]).shape == (11, 32)
    results = runner.evaluate(
        lambda m, f: {"mean_first_id": (tf.reduce_sum(tf.cast(f["input_ids"][:, 0], tf.float32)),
                                        tf.cast(tf.shape(f["input_ids"])[0], tf.float32))},
        dataset)
    assert results["mean_first_id"] == pytest.approx(data["input_ids"][:, 0].mean())


def test_restore_for_inference_prefers_the_output_dir(tmp_path):
    tf.random.set_seed(6)
    trained, _, _ = train(tmp_path / "run", 2)
    runner = training.Runner(one_device(), build(), str(tmp_path / "run"))
    assert runner.restore_for_inference("/does/not/matter").endswith("model.ckpt-2")
    assert_close(weights(trained), weights(runner), atol=0)
    empty = training.Runner(one_device(), build(), str(tmp_path / "empty"))
    with pytest.raises(checkpoints.CheckpointError, match="no --init_checkpoint"):
        empty.restore_for_inference(None)


def test_make_strategy():
    assert isinstance(training.make_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    assert isinstance(training.make_strategy("auto"), tf.distribute.OneDeviceStrategy)
    assert training.make_strategy("mirrored").num_replicas_in_sync >= 1
    with pytest.raises(ValueError, match="distribution_strategy"):
        training.make_strategy("parameter_server")


def test_write_results(tmp_path):
    path = str(tmp_path / "eval_results.txt")
    training.write_results(path, {"loss": 1.5, "global_step": 10, "eval_accuracy": 0.5})
    assert open(path).read() == "eval_accuracy = 0.5\nglobal_step = 10\nloss = 1.5\n"


def test_bfloat16_training_learns_and_keeps_float32_state(tmp_path):
    tf.random.set_seed(7)

    runner = training.Runner(
        one_device(), lambda: modeling.BertPretrainer(tiny_config(**NO_DROPOUT), tf.bfloat16),
        str(tmp_path))
    dataset = tf.data.Dataset.from_tensor_slices(features()).batch(8)
    metric = lambda m, f: {"loss": (loss_fn(m, f, False), 1.0)}  # noqa: E731
    before = runner.evaluate(metric, dataset)["loss"]
    config = training.TrainConfig(num_train_steps=30, train_batch_size=8, iterations_per_loop=10,
                                  save_checkpoints_steps=30)
    runner.train(config, loss_fn, same_batch_dataset(), optimization.create_optimizer(1e-2, 30, 3))
    assert runner.evaluate(metric, dataset)["loss"] < before * 0.7
    stored = checkpoints.read(str(tmp_path))
    assert stored["bert/embeddings/word_embeddings"].dtype == np.float32
    assert stored["bert/embeddings/word_embeddings/adam_m"].dtype == np.float32


def test_loops_end_at_checkpoints_callbacks_and_the_last_step():
    config = training.TrainConfig(num_train_steps=11, train_batch_size=8, iterations_per_loop=5,
                                  save_checkpoints_steps=4)
    callback = training.StepCallback(3, lambda step: None)

    def loop_ends(callbacks):
        step, ends = 0, []
        while step < config.num_train_steps:
            step += training._steps_this_loop(step, config, callbacks)
            ends.append(step)
        return ends

    assert loop_ends(()) == [4, 8, 11]
    assert loop_ends([callback]) == [3, 4, 6, 8, 9, 11]
    assert [s for s in loop_ends([callback]) if callback.due(s, 11)] == [3, 6, 9, 11]
    assert not training.StepCallback(3, None, at_end=False).due(11, 11)


def test_progress_reports_every_loop_and_resumes_after_callbacks(tmp_path):
    reports = []

    class RecordingProgress(training.Progress):
        def update(self, step, steps_done, loss, lr):
            reports.append(("update", step, steps_done))
            super().update(step, steps_done, loss, lr)

        def resume(self):
            reports.append(("resume",))
            super().resume()

    runner = training.Runner(one_device(), build(), str(tmp_path))
    config = training.TrainConfig(num_train_steps=5, train_batch_size=8, iterations_per_loop=2,
                                  save_checkpoints_steps=100)
    runner.train(config, loss_fn, same_batch_dataset(), optimization.create_optimizer(1e-3, 5, 0),
                 callbacks=[training.StepCallback(3, lambda step: None, at_end=False)],
                 progress=RecordingProgress)
    assert reports == [("update", 2, 2), ("update", 3, 1), ("resume",), ("update", 5, 2)]


def test_best_checkpoint_replaces_only_a_worse_one_and_survives_a_restart(tmp_path):
    runner = types.SimpleNamespace(model_variables={"w": tf.Variable([1.0, 2.0], name="w")},
                                   global_step=tf.Variable(0, dtype=tf.int64))
    directory = str(tmp_path / "best")
    labels = {"label_list.txt": "a\nb\n"}
    best = training.BestCheckpoint(runner, directory, "eval_f1", labels)
    for step, value, saved in ((1, 0.5, True), (2, 0.4, False), (3, float("nan"), False),
                               (4, 0.5, False), (5, 0.7, True)):
        runner.global_step.assign(step)
        runner.model_variables["w"].assign([step, step])
        assert best.update({"eval_f1": value, "global_step": step}) == saved, step
    assert tf.train.latest_checkpoint(directory).endswith("model.ckpt-5")
    assert len(tf.io.gfile.glob(os.path.join(directory, "*.index"))) == 1
    assert checkpoints.read(directory)["w"].tolist() == [5.0, 5.0]
    with open(os.path.join(directory, "eval_results.txt")) as f:
        assert f.read() == "eval_f1 = 0.7\nglobal_step = 5\n"
    with open(os.path.join(directory, "label_list.txt")) as f:
        assert f.read() == "a\nb\n"
    restarted = training.BestCheckpoint(runner, directory, "eval_f1", labels)
    assert restarted.best == 0.7
    assert not restarted.update({"eval_f1": 0.6, "global_step": 6})
    # A recorded value whose checkpoint is gone does not count.
    for path in tf.io.gfile.glob(os.path.join(directory, "model.ckpt-5*")):
        os.remove(path)
    assert training.BestCheckpoint(runner, directory, "eval_f1").best is None
