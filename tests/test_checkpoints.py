"""checkpoints.py: original names on disk, loading checkpoints from other writers, strict errors."""
import os

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import file_io
import modeling
from test_modeling import tiny_config, inputs


def model_and_heads():
    config = tiny_config()
    model = modeling.BertModel(config)
    mlm = modeling.MaskedLMHead(config, model.embedding_table)
    return model, mlm, checkpoints.named_variables(model, mlm)


def test_saved_names_and_shapes_are_the_originals(tmp_path):
    _, _, variables = model_and_heads()
    prefix = checkpoints.save(str(tmp_path / "bert_model.ckpt"), variables)
    listed = dict(tf.train.list_variables(prefix))
    assert listed == {n: v.shape.as_list() for n, v in variables.items()}
    assert sorted(os.listdir(tmp_path)) == ["bert_model.ckpt.data-00000-of-00001",
                                           "bert_model.ckpt.index"]


def test_round_trip_restores_outputs(tmp_path):
    model, _, variables = model_and_heads()
    checkpoints.save(str(tmp_path / "bert_model.ckpt"), variables)
    other, _, other_vars = model_and_heads()
    loaded, missing, unused = checkpoints.restore(other_vars, str(tmp_path / "bert_model.ckpt"))
    assert loaded == sorted(variables) and missing == [] and unused == []
    np.testing.assert_array_equal(model(*inputs()).sequence_output,
                                  other(*inputs()).sequence_output)


@pytest.mark.parametrize("form", ["prefix", "index", "data", "directory"])
def test_resolve_accepts_prefix_files_and_directories(tmp_path, form):
    _, _, variables = model_and_heads()
    manager = checkpoints.CheckpointManager(str(tmp_path), variables)
    prefix = manager.save(7)
    path = {"prefix": prefix, "index": prefix + ".index",
            "data": prefix + ".data-00000-of-00001", "directory": str(tmp_path)}[form]
    assert checkpoints.resolve(path) == prefix


def test_missing_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(checkpoints.CheckpointError, match="no checkpoint found"):
        checkpoints.resolve(str(tmp_path / "bert_model.ckpt"))
    with pytest.raises(checkpoints.CheckpointError, match="directory holds no checkpoint"):
        checkpoints.resolve(str(tmp_path))


def write_v1_checkpoint(prefix, values):
    """The legacy V1 single-file format, written by the `Save` kernel (not this module)."""
    names = sorted(values)
    tf.raw_ops.Save(filename=prefix, tensor_names=names,
                    data=[tf.constant(values[n]) for n in names])


def write_sharded_v2_checkpoint(prefix, values, shards=2):
    """A two-shard V2 bundle as a sharded TF1 Saver wrote it: shard files, then a merge."""
    names = sorted(values)
    shard_prefixes = []
    for i in range(shards):
        shard = f"{prefix}_temp/part-{i:05d}-of-{shards:05d}"
        part = names[i::shards]
        tf.raw_ops.SaveV2(prefix=shard, tensor_names=part, shape_and_slices=[""] * len(part),
                          tensors=[tf.constant(values[n]) for n in part])
        shard_prefixes.append(shard)
    tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=shard_prefixes, destination_prefix=prefix,
                                  delete_old_dirs=True)


@pytest.mark.parametrize("writer", [write_v1_checkpoint, write_sharded_v2_checkpoint])
def test_loads_checkpoints_written_by_other_writers(tmp_path, writer):
    source, _, variables = model_and_heads()
    values = {n: v.numpy() for n, v in variables.items()}
    # What an original pretraining checkpoint also holds: optimizer slots and the step.
    values.update({f"{n}/adam_m": np.ones_like(v) for n, v in list(values.items())[:3]})
    values["global_step"] = np.array(1000, np.int64)
    prefix = str(tmp_path / "bert_model.ckpt")
    writer(prefix, values)
    target, _, target_vars = model_and_heads()
    loaded, missing, unused = checkpoints.restore(target_vars, prefix)
    assert loaded == sorted(variables) and missing == [] and unused == []
    np.testing.assert_array_equal(source(*inputs()).pooled_output, target(*inputs()).pooled_output)


def test_fine_tuning_ignores_slots_and_step_and_reports_new_heads(tmp_path):
    model, _, variables = model_and_heads()
    values = dict(variables)
    values["global_step"] = tf.Variable(5, dtype=tf.int64)
    values["bert/pooler/dense/kernel/adam_m"] = tf.Variable(tf.ones([32, 32]))
    prefix = checkpoints.save(str(tmp_path / "bert_model.ckpt"), values)
    classifier = modeling.ClassifierHead(tiny_config(), 2)
    target = checkpoints.named_variables(modeling.BertModel(tiny_config()), classifier)
    loaded, missing, unused = checkpoints.restore(target, prefix)
    assert missing == ["output_bias", "output_weights"]
    assert "global_step" not in loaded and not any(n.endswith("adam_m") for n in loaded)
    assert unused == sorted(n for n in variables if n.startswith("cls/"))


def test_shape_mismatch_names_every_offending_variable(tmp_path):
    _, _, variables = model_and_heads()
    prefix = checkpoints.save(str(tmp_path / "bert_model.ckpt"), variables)
    bigger = modeling.BertModel(tiny_config(intermediate_size=40))
    with pytest.raises(checkpoints.CheckpointError) as e:
        checkpoints.restore(checkpoints.named_variables(bigger), prefix)
    message = str(e.value)
    assert "bert/encoder/layer_0/intermediate/dense/kernel: checkpoint [32, 37] vs model [32, 40]" \
        in message
    assert "bert/encoder/layer_1/output/dense/kernel" in message


def test_checkpoint_matching_nothing_lists_both_sides(tmp_path):
    prefix = checkpoints.save(str(tmp_path / "other.ckpt"),
                              {"model/layer/weights": np.zeros([2], np.float32)})
    _, _, variables = model_and_heads()
    with pytest.raises(checkpoints.CheckpointError) as e:
        checkpoints.restore(variables, prefix)
    assert "model/layer/weights" in str(e.value) and "bert/embeddings" in str(e.value)


def test_manager_keeps_the_newest_and_writes_a_readable_state_file(tmp_path):
    _, _, variables = model_and_heads()
    manager = checkpoints.CheckpointManager(str(tmp_path), variables, max_to_keep=2)
    for step in (10, 20, 30):
        manager.save(step)
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-30")
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == \
        ["model.ckpt-20", "model.ckpt-30"]
    assert not tf.io.gfile.glob(str(tmp_path / "model.ckpt-10*"))
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    # A new manager over the same directory continues the rotation.
    again = checkpoints.CheckpointManager(str(tmp_path), variables, max_to_keep=2)
    again.save(40)
    assert not tf.io.gfile.glob(str(tmp_path / "model.ckpt-20*"))


def test_interrupted_state_file_write_leaves_the_previous_state(tmp_path, monkeypatch):
    _, _, variables = model_and_heads()
    manager = checkpoints.CheckpointManager(str(tmp_path), variables, max_to_keep=2)
    manager.save(10)

    def failing_rename(*args):
        raise OSError("disk full")

    monkeypatch.setattr(file_io, "rename", failing_rename)  # the state file's move into place
    with pytest.raises(OSError, match="disk full"):
        manager.save(20)
    monkeypatch.undo()
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-10")
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_failed_save_leaves_the_existing_checkpoint_and_no_temporary_files(tmp_path, monkeypatch):
    _, _, variables = model_and_heads()
    prefix = checkpoints.save(str(tmp_path / "model.ckpt-1"), variables)
    before = checkpoints.read(prefix)

    def failing_rename(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.io.gfile, "rename", failing_rename)
    changed = {n: v.numpy() + 1.0 for n, v in variables.items()}
    with pytest.raises(OSError, match="disk full"):
        checkpoints.save(prefix, changed)  # the bundle was written, the move into place fails
    monkeypatch.undo()
    after = checkpoints.read(prefix)
    assert sorted(after) == sorted(before)
    assert all(np.array_equal(after[n], before[n]) for n in before)
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt-1.data-00000-of-00001",
                                           "model.ckpt-1.index"]


def test_step_of(tmp_path):
    _, _, variables = model_and_heads()
    prefix = checkpoints.save(str(tmp_path / "m"), dict(variables, global_step=np.int64(42)))
    assert checkpoints.step_of(prefix) == 42
