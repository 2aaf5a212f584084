"""run_pretraining.py end to end on a tiny model.

The TFRecord files are written here (tests/test_input_pipeline.py's helpers), in the pretraining
format of create_pretraining_data.py, with random but valid examples. One test runs the original README's command line in a subprocess; the
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
import script_main
from script_main import run_script_main
from test_input_pipeline import FILE_SIZES, PRED, SEQ, make_examples, write_records
from test_modeling import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_KEYS = {"masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy",
             "next_sentence_loss", "global_step", "loss"}


# -- Test data ------------------------------------------------------------------------------------

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
    init = checkpoints.named_variables(modeling.BertPretrainer(config))
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
    checkpoints.restore(checkpoints.named_variables(model), init, log_each=False)
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
    loaded, missing, unused = checkpoints.restore(checkpoints.named_variables(bert), source,
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


def test_gradient_checkpointing_flag_reaches_the_model(data, tmp_path):
    # What the option does: tests/test_gradient_checkpointing.py.
    for value in (False, True):
        model = script_main.built_model(run_pretraining, **tiny_flags(
            data, tmp_path, do_train=True, num_train_steps=1, gradient_checkpointing=value))
        assert model.bert.gradient_checkpointing is value


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


def test_corrupt_file_is_named(data, tmp_path):
    # Other malformed records: tests/test_input_pipeline.py (check_tfrecord_features).
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
