"""run_pretraining.py end to end on a tiny model, and training.py's TFRecord input pipeline.

The TFRecord files are written here, in the pretraining format of create_pretraining_data.py, with
random but valid examples. One test runs the original README's command line in a subprocess; the
others call main() in-process with explicit flags (faster: TensorFlow is imported once).
"""
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import modeling
import run_pretraining
import training
import script_main
from script_main import run_script_main
from test_modeling import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ, PRED = 32, 5
FILE_SIZES = (12, 9)  # 21 examples: with eval batches of 4 the last holds one (a replica idles)
EVAL_KEYS = {"masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy",
             "next_sentence_loss", "global_step", "loss"}


# -- Test data ------------------------------------------------------------------------------------

def make_examples(n, seq=SEQ, pred=PRED, seed=0, first_id=0):
    """{feature: array [n, ...]} of valid masked-LM / next-sentence examples (vocab 99)."""
    rng = np.random.RandomState(seed)
    out = {k: [] for k in ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                           "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")}
    for _ in range(n):
        length = rng.randint(seq // 2, seq + 1)
        ids = np.zeros(seq, np.int64)
        ids[:length] = rng.randint(5, 99, length)
        ids[0] = 2  # [CLS]
        mask = (np.arange(seq) < length).astype(np.int64)
        segments = ((np.arange(seq) >= rng.randint(2, length - 1)) & (mask > 0)).astype(np.int64)
        k = rng.randint(1, pred + 1)
        positions = np.sort(rng.choice(np.arange(1, length), k, replace=False))
        labels = ids[positions].copy()
        ids[positions] = 4  # [MASK]
        pad = pred - k
        out["input_ids"].append(ids)
        out["input_mask"].append(mask)
        out["segment_ids"].append(segments)
        out["masked_lm_positions"].append(np.pad(positions, (0, pad)))
        out["masked_lm_ids"].append(np.pad(labels, (0, pad)))
        out["masked_lm_weights"].append(np.array([1.0] * k + [0.0] * pad, np.float32))
        out["next_sentence_labels"].append(np.array([rng.randint(2)], np.int64))
    arrays = {k: np.stack(v) for k, v in out.items()}
    arrays["example_id"] = np.arange(first_id, first_id + n, dtype=np.int64)[:, None]
    return arrays


def write_records(path, arrays, with_id=False, drop=(), as_int=()):
    """Writes arrays as tf.train.Example records (optionally an example_id feature, or a feature
    left out / written as int64)."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(len(arrays["input_ids"])):
            feature = {}
            for name, values in arrays.items():
                if name in drop or (name == "example_id" and not with_id):
                    continue
                if values.dtype == np.float32 and name not in as_int:
                    feature[name] = tf.train.Feature(
                        float_list=tf.train.FloatList(value=values[i].tolist()))
                else:
                    feature[name] = tf.train.Feature(
                        int64_list=tf.train.Int64List(value=values[i].astype(np.int64).tolist()))
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)


def concat(parts):
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two pretraining files, a tiny bert_config.json and an original-style init checkpoint."""
    root = tmp_path_factory.mktemp("pretraining_data")
    parts = [make_examples(n, seed=i, first_id=sum(FILE_SIZES[:i]))
             for i, n in enumerate(FILE_SIZES)]
    files = [write_records(root / f"tf_examples-{i:02d}.tfrecord", p) for i, p in enumerate(parts)]
    config = tiny_config()
    config.to_json_file(str(root / "bert_config.json"))
    # As a released bert_model.ckpt: only bert/* and cls/* variables, no slots, no global_step.
    tf.random.set_seed(0)
    init = modeling.named_variables(modeling.BertPretrainer(config))
    checkpoints.save(str(root / "bert_model.ckpt"), init)
    return dict(root=root, files=files, pattern=str(root / "tf_examples-*.tfrecord"),
                arrays=concat(parts), config=config,
                bert_config_file=str(root / "bert_config.json"),
                init_checkpoint=str(root / "bert_model.ckpt"),
                init={n: v.numpy() for n, v in init.items()})


def tiny_flags(data, output_dir, **overrides):
    return dict(dict(input_file=data["pattern"], output_dir=str(output_dir),
                     bert_config_file=data["bert_config_file"], max_seq_length=SEQ,
                     max_predictions_per_seq=PRED, train_batch_size=8, eval_batch_size=4,
                     learning_rate=1e-3, num_warmup_steps=1, save_checkpoints_steps=2,
                     iterations_per_loop=2, max_eval_steps=100), **overrides)


def run_main(**flag_values):
    """Runs run_pretraining.main() with these flags, as the command line would."""
    return run_script_main(run_pretraining, **flag_values)


def read_results(output_dir):
    return script_main.read_results(os.path.join(output_dir, "eval_results.txt"))


def final_step(output_dir):
    return checkpoints.step_of(tf.train.latest_checkpoint(str(output_dir)))


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A run to step 4 with checkpoints at 2 and 4 (tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("trained")
    run_main(**tiny_flags(data, out, do_train=True, num_train_steps=4))
    return out


# -- The script end to end ------------------------------------------------------------------------

def test_original_readme_command_trains_from_init_checkpoint_and_evaluates(data, tmp_path):
    out = tmp_path / "pretraining_output"
    command = [sys.executable, os.path.join(ROOT, "run_pretraining.py"),
               f"--input_file={data['files'][0]}", f"--output_dir={out}", "--do_train=True",
               "--do_eval=True", f"--bert_config_file={data['bert_config_file']}",
               f"--init_checkpoint={data['init_checkpoint']}", "--train_batch_size=8",
               f"--max_seq_length={SEQ}", f"--max_predictions_per_seq={PRED}",
               "--num_train_steps=4", "--num_warmup_steps=2", "--learning_rate=2e-5"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Initialising from" in result.stderr and "masked_lm_accuracy = " in result.stderr

    results = read_results(out)
    assert set(results) == EVAL_KEYS
    assert results["global_step"] == 4
    for key in ("masked_lm_accuracy", "next_sentence_accuracy"):
        assert 0.0 <= results[key] <= 1.0, key
    for key in ("masked_lm_loss", "next_sentence_loss", "loss"):
        assert 0.0 < results[key] < 20.0 and np.isfinite(results[key]), key
    # The masked-LM loss of a tiny, near-random model is about log(vocab_size).
    assert abs(results["masked_lm_loss"] - np.log(99)) < 1.0
    # `loss` averages each batch's loss; masked_lm_loss averages over all masked positions (as
    # the original): close, not equal, when batches hold different numbers of masked positions.
    assert results["loss"] == pytest.approx(results["masked_lm_loss"]
                                            + results["next_sentence_loss"], rel=1e-2)

    names = dict(checkpoints.list_variables(str(out)))
    for name in ("bert/embeddings/word_embeddings", "bert/pooler/dense/kernel",
                 "bert/encoder/layer_1/attention/self/query/kernel",
                 "cls/predictions/output_bias", "cls/predictions/transform/LayerNorm/gamma",
                 "cls/seq_relationship/output_weights", "cls/seq_relationship/output_bias",
                 "bert/encoder/layer_0/output/dense/kernel/adam_m",
                 "cls/predictions/output_bias/adam_v", "global_step"):
        assert name in names, name
    assert final_step(out) == 4 and os.path.basename(tf.train.latest_checkpoint(str(out))) \
        == "model.ckpt-4"
    assert [f for f in os.listdir(out) if f.startswith("events.out.tfevents")]
    # Four steps at 2e-5 barely move the weights: they are the init checkpoint's, not fresh ones.
    stored = checkpoints.read(str(out))
    for name in ("bert/encoder/layer_1/output/dense/kernel", "cls/seq_relationship/output_weights",
                 "cls/predictions/transform/dense/kernel"):
        assert np.max(np.abs(stored[name] - data["init"][name])) < 1e-3, name


def expected_metrics(config, init, arrays, batch_size, max_batches=None):
    """eval_results of the checkpoint's weights over arrays, computed directly."""
    model = modeling.BertPretrainer(config)
    checkpoints.restore(modeling.named_variables(model), init, log_each=False)
    totals = {}
    batches = tf.data.Dataset.from_tensor_slices(
        {k: v.astype(np.float32 if v.dtype == np.float32 else np.int32) for k, v in arrays.items()
         if k != "example_id"}).batch(batch_size)
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        for name, (t, c) in modeling.pretraining_metrics(model, batch).items():
            totals[name] = [a + float(b) for a, b in zip(totals.get(name, (0.0, 0.0)), (t, c))]
    return {name: t / c for name, (t, c) in totals.items()}


def test_eval_only_evaluates_the_init_checkpoint_over_the_files_in_order(data, tmp_path):
    out = tmp_path / "eval"
    run_main(**tiny_flags(data, out, do_eval=True, init_checkpoint=data["init_checkpoint"],
                          eval_batch_size=8, max_eval_steps=2))
    results = read_results(out)
    assert set(results) == EVAL_KEYS and results["global_step"] == 0
    # The first 2 batches of 8 of the 21 examples, in file order.
    expected = expected_metrics(data["config"], data["init_checkpoint"], data["arrays"], 8, 2)
    for key, value in expected.items():
        assert results[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert not tf.io.gfile.glob(str(out / "model.ckpt*"))  # evaluation writes no checkpoint


def test_resume_continues_from_the_saved_step(trained, data, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = {step: checkpoints.read(str(out / f"model.ckpt-{step}")) for step in (2, 4)}
    run_main(**tiny_flags(data, out, do_train=True, do_eval=True, num_train_steps=6))
    assert final_step(out) == 6
    assert read_results(out)["global_step"] == 6
    # Resumed at 4: the earlier checkpoints were not written again.
    for step, values in before.items():
        again = checkpoints.read(str(out / f"model.ckpt-{step}"))
        for name, value in values.items():
            np.testing.assert_array_equal(again[name], value, err_msg=name)
    # The finished command again: nothing to train, the final checkpoint unchanged.
    last = checkpoints.read(str(out / "model.ckpt-6"))
    run_main(**tiny_flags(data, out, do_train=True, num_train_steps=6))
    assert final_step(out) == 6
    np.testing.assert_array_equal(
        checkpoints.read(str(out / "model.ckpt-6"))["bert/pooler/dense/kernel"],
        last["bert/pooler/dense/kernel"])


def test_eval_only_of_a_checkpoint_directory_reports_its_step(trained, data, tmp_path):
    out = tmp_path / "eval_trained"
    run_main(**tiny_flags(data, out, do_eval=True, init_checkpoint=str(trained),
                          max_eval_steps=1))
    assert read_results(out)["global_step"] == final_step(trained)


def test_killed_run_restarted_with_the_same_command_ends_at_the_same_step(trained, data,
                                                                             tmp_path):
    # As if `--num_train_steps=4` had been killed while saving step 4: the state file names
    # model.ckpt-2 and a half-written bundle and state file are left behind.
    out = tmp_path / "killed"
    shutil.copytree(trained, out)
    for path in tf.io.gfile.glob(str(out / "model.ckpt-4.*")):
        os.rename(path, str(out / ".tmp-0123abcd-") + os.path.basename(path))
    (out / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-2"\n'
                                    'all_model_checkpoint_paths: "model.ckpt-2"\n')
    (out / "checkpoint.tmp").write_text('model_checkpoint_path: "model.ckpt-4"\n')
    run_main(**tiny_flags(data, out, do_train=True, num_train_steps=4))
    assert final_step(out) == final_step(trained) == 4
    names = dict(checkpoints.list_variables(str(out)))
    assert "cls/predictions/output_bias/adam_m" in names and "global_step" in names


def test_checkpoint_written_here_loads_as_init_checkpoint_and_into_a_bert_model(trained, data,
                                                                                 tmp_path):
    source = tf.train.latest_checkpoint(str(trained))
    stored = checkpoints.read(source)
    # Through --init_checkpoint: with a learning rate of 0 the weights stay exactly as loaded; the
    # step counts from 0 and the optimizer slots are this run's own.
    out = tmp_path / "fine"
    run_main(**tiny_flags(data, out, do_train=True, init_checkpoint=source, num_train_steps=1,
                          learning_rate=0.0))
    assert final_step(out) == 1
    mine = checkpoints.read(str(out))
    for name, value in stored.items():
        if name.endswith(("/adam_m", "/adam_v")) or name == "global_step":
            continue
        np.testing.assert_array_equal(mine[name], value, err_msg=name)
    assert not np.array_equal(mine["bert/pooler/dense/kernel/adam_v"],
                              stored["bert/pooler/dense/kernel/adam_v"])
    # Into a BertModel alone: every bert/* variable loads; the heads' variables are left over.
    bert = modeling.BertModel(data["config"])
    loaded, missing, unused = checkpoints.restore(modeling.named_variables(bert), source,
                                                  log_each=False)
    assert not missing and loaded and all(n.startswith("bert/") for n in loaded)
    assert "cls/seq_relationship/output_weights" in unused
    np.testing.assert_array_equal(bert.embeddings.word_embeddings.numpy(),
                                  stored["bert/embeddings/word_embeddings"])


def test_two_mirrored_replicas_train_and_evaluate_every_example(data, tmp_path):
    out = tmp_path / "mirrored"
    run_main(**tiny_flags(data, out, do_train=True, do_eval=True, num_train_steps=2,
                          distribution_strategy="mirrored"))
    results = read_results(out)
    assert final_step(out) == 2 and results["global_step"] == 2
    # The last eval batch holds one example, so one replica gets none: still no NaN.
    assert all(np.isfinite(v) for v in results.values()), results


# -- Bad inputs fail early, naming the culprit ---------------------------------------------------

def test_feature_length_mismatch_names_file_feature_and_flag(data, tmp_path):
    short = write_records(tmp_path / "seq16.tfrecord", make_examples(3, seq=16))
    with pytest.raises(ValueError) as error:
        run_main(**tiny_flags(data, tmp_path / "out", do_train=True, input_file=short))
    message = str(error.value)
    assert short in message
    assert "input_ids has 16 values but --max_seq_length=32 expects 32" in message
    predictions = write_records(tmp_path / "pred3.tfrecord", make_examples(3, pred=3))
    with pytest.raises(ValueError, match="masked_lm_positions has 3 values but "
                                         "--max_predictions_per_seq=5"):
        run_main(**tiny_flags(data, tmp_path / "out", do_eval=True, input_file=predictions))


def test_wrong_type_missing_feature_and_corrupt_file_are_named(data, tmp_path):
    features = run_pretraining.name_to_features(SEQ, PRED)
    arrays = make_examples(2)
    as_int = write_records(tmp_path / "int_weights.tfrecord", arrays, as_int=("masked_lm_weights",))
    with pytest.raises(ValueError, match=r"int_weights.tfrecord: feature 'masked_lm_weights' is "
                                         r"an int64_list but float32"):
        training.check_tfrecord_features([as_int], features)
    missing = write_records(tmp_path / "no_nsp.tfrecord", arrays, drop=("next_sentence_labels",))
    with pytest.raises(ValueError, match=r"no_nsp.tfrecord: feature 'next_sentence_labels' is "
                                         r"missing; the record has input_ids"):
        training.check_tfrecord_features([missing], features)
    corrupt = tmp_path / "corrupt.tfrecord"
    corrupt.write_bytes(b"this is not a TFRecord file, just some text\n" * 4)
    with pytest.raises(ValueError, match=r"corrupt.tfrecord: not a readable TFRecord file"):
        run_main(**tiny_flags(data, tmp_path / "out", do_train=True,
                              input_file=f"{data['files'][0]},{corrupt}"))


def test_glob_matching_nothing_names_the_pattern(data, tmp_path):
    pattern = str(tmp_path / "nothing-*.tfrecord")
    message = f"--input_file: {pattern!r} matches no file"
    with pytest.raises(ValueError, match=re.escape(message)):
        run_main(**tiny_flags(data, tmp_path / "out", do_train=True,
                              input_file=f"{data['pattern']},{pattern}"))


# -- The input pipeline ---------------------------------------------------------------------------

def id_features():
    return dict(run_pretraining.name_to_features(SEQ, PRED),
                example_id=tf.io.FixedLenFeature([1], tf.int64))


@pytest.fixture(scope="module")
def id_files(tmp_path_factory):
    """The two files again, with an example_id feature to tell the records apart."""
    root = tmp_path_factory.mktemp("with_ids")
    return [write_records(root / f"ids-{i}.tfrecord",
                          make_examples(n, seed=i, first_id=sum(FILE_SIZES[:i])), with_id=True)
            for i, n in enumerate(FILE_SIZES)]


def ids_of(dataset, batches):
    return np.concatenate([b["example_id"][:, 0].numpy() for b in dataset.take(batches)])


def test_training_pipeline_shapes_dtypes_and_repeat(id_files):
    dataset = training.tfrecord_dataset(id_files, id_features(), 8, is_training=True)
    spec = dataset.element_spec
    for name in ("input_ids", "input_mask", "segment_ids"):
        assert spec[name].shape == [8, SEQ] and spec[name].dtype == tf.int32, name
    assert spec["masked_lm_positions"].shape == [8, PRED]
    assert spec["masked_lm_ids"].dtype == tf.int32
    assert spec["masked_lm_weights"].shape == [8, PRED]
    assert spec["masked_lm_weights"].dtype == tf.float32
    assert spec["next_sentence_labels"].shape == [8, 1]
    ids = ids_of(dataset, 10)  # 80 examples from 21 records: it repeats, and sees them all
    assert len(ids) == 80 and set(ids) == set(range(sum(FILE_SIZES)))
    per_replica = training.tfrecord_dataset(
        id_files, id_features(), 8, is_training=True,
        input_context=tf.distribute.InputContext(1, 0, num_replicas_in_sync=2))
    assert per_replica.element_spec["input_ids"].shape == [4, SEQ]


@pytest.mark.parametrize("use_both_files", [True, False])
def test_training_pipelines_read_disjoint_data(id_files, use_both_files):
    """Two input pipelines: each reads one file (2 files), or every other record (1 file)."""
    files = id_files if use_both_files else id_files[:1]
    seen = []
    for index in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index,
                                             num_replicas_in_sync=2)
        seen.append(set(ids_of(training.tfrecord_dataset(files, id_features(), 8, True, context),
                               12)))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(FILE_SIZES[0] if not use_both_files
                                          else sum(FILE_SIZES)))


def test_eval_pipeline_reads_every_record_once_in_file_order(id_files):
    dataset = training.tfrecord_dataset(id_files, id_features(), 8, is_training=False)
    sizes = [len(b["example_id"]) for b in dataset]
    assert sizes == [8, 8, 5]  # no repeat, the remainder kept
    np.testing.assert_array_equal(ids_of(dataset, 3), np.arange(sum(FILE_SIZES)))
    batches = list(training.tfrecord_dataset(id_files, id_features(), 8, is_training=False,
                                             drop_remainder=True))
    assert len(batches) == 2
