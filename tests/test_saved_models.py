"""saved_models.py and export_saved_model.py: a fine-tuned classifier and TF Hub-format encoders as
SavedModels, loaded where the project is not (a fresh Python process that cannot import it) and
compared with what the project computes.

The classifiers are run_classifier.py's tiny models of tests/test_run_classifier.py (2 training
steps; each test set repeats its dev set's texts), exported and checked against the
test_results.tsv that run_classifier.py --do_predict wrote, raw text in (the in-graph tokenizer,
tf_tokenization.py) and integer features in; multi-label and regression heads against the model.
The real MiniLM weights (tests/real_model.py) check the exported encoder against transformers;
the exported preprocessor (the real vocabulary) is checked against tokenization.py on
multilingual and random text (tests/test_tf_tokenization.py checks tf_tokenization itself on
the 1.4 MB real-text corpus and the whole fuzz).
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import classification
import classifier_data
import export_saved_model
import modeling
import saved_models
import tokenization
from errors import InputError
from script_main import error_line, run_script_command, run_script_main
from test_run_classifier import (SEQ, env, read_rows, train_glue)  # noqa: F401  (env: fixture)

TOLERANCE = 1e-5


def export_main(**flag_values):
    """export_saved_model.main() with these flags, as the command line would run it."""
    return run_script_main(export_saved_model, **flag_values)


def vocab_of(env):
    with open(env.vocab_file, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def export_classifier(env, trained, export_dir, **kwargs):
    """saved_models.export_classifier of a run_classifier.py output dir."""
    return saved_models.export_classifier(str(export_dir), env.config, str(trained),
                                          env.vocab_file, **kwargs)


def features_of(env, pairs):
    """Encoder inputs int32 [N, SEQ] of [(text_a, text_b)], by tokenization.encode_pair."""
    tokenizer = tokenization.FullTokenizer(env.vocab_file, do_lower_case=True)
    encoded = [tokenization.encode_pair(tokenizer, a, b, SEQ) for a, b in pairs]
    return dict(input_word_ids=[e.input_ids for e in encoded],
                input_mask=[e.input_mask for e in encoded],
                input_type_ids=[e.segment_ids for e in encoded])


# A program that does not import the project (run with -I from another directory): loads
# SavedModels (after tensorflow_text, which registers the WordPiece op) and calls their signatures
# on the requests of a JSON file ({"models": {name: [export dir, {signature[:tag]: inputs}, output
# .npz]}, "saved_model_cli": [[export dir, output .txt]]}), saving each model's outputs as .npz;
# then runs `saved_model_cli show --all --dir <export dir>` as its console script does (main()),
# saving what it prints.
FRESH_PROCESS = textwrap.dedent("""
    import contextlib, importlib.util, io, json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    from tensorflow.python.tools import saved_model_cli
    for module in ("modeling", "saved_models", "kernels", "tokenization", "tf_tokenization"):
        assert importlib.util.find_spec(module) is None, module
    with open(sys.argv[1], encoding="utf-8") as f:
        jobs = json.load(f)
    for export_dir, requests, output_file in jobs["models"].values():
        model = tf.saved_model.load(export_dir)
        outputs = {}
        for request, inputs in requests.items():   # signature, or signature:tag
            signature = request.split(":")[0]
            dtype = tf.string if signature == "serving_default" else tf.int32
            results = model.signatures[signature](**{k: tf.constant(v, dtype) for k, v in
                                                     inputs.items()})
            outputs.update({f"{request}/{k}": v.numpy().astype(bytes) if v.dtype == tf.string
                            else v.numpy() for k, v in results.items()})
        np.savez(output_file, **outputs)
    for export_dir, output_file in jobs["saved_model_cli"]:
        sys.argv = ["saved_model_cli", "show", "--all", "--dir", export_dir]
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            try:
                saved_model_cli.main()
            except SystemExit as e:
                assert not e.code, e.code
        with open(output_file, "w", encoding="utf-8") as f:
            f.write(shown.getvalue())
    """)


def run_fresh(jobs, cli_dirs, tmp_path):
    """FRESH_PROCESS on jobs {name: (export dir, {signature[:tag]: inputs})} and `cli_dirs`:
    ({name: {signature[:tag]/output: numpy array}}, [what saved_model_cli shows of each])."""
    request_file = tmp_path / "requests.json"
    outputs = {name: str(tmp_path / f"outputs_{i}.npz") for i, name in enumerate(jobs)}
    shown = [str(tmp_path / f"shown_{i}.txt") for i in range(len(cli_dirs))]
    request_file.write_text(json.dumps(dict(
        models={name: [str(export_dir), requests, outputs[name]]
                for name, (export_dir, requests) in jobs.items()},
        saved_model_cli=[[str(d), f] for d, f in zip(cli_dirs, shown)])), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_PROCESS, str(request_file)], cwd=elsewhere,
        env=dict(env, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True, timeout=600,
        check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return ({name: dict(np.load(path)) for name, path in outputs.items()},
            [open(path, encoding="utf-8").read() for path in shown])


def expected_probabilities(trained):
    return np.array(read_rows(trained / "test_results.tsv"), dtype=np.float64)


@pytest.fixture(scope="module")
def exported(env, tmp_path_factory):
    """{task: (its data, run_classifier.py's output dir, the export of export_saved_model.py)}
    for SST-2 (single texts) and MRPC (pairs)."""
    root = tmp_path_factory.mktemp("exported")
    result = {}
    for task in ("sst-2", "mrpc"):
        data, trained = train_glue(env, task, tmp_path_factory)
        assert export_main(export_type="classifier", init_checkpoint=trained,
                           bert_config_file=env.bert_config_file, vocab_file=env.vocab_file,
                           export_dir=root / task) == 0
        result[task] = data, trained, root / task
    assert sorted(os.listdir(root)) == ["mrpc", "sst-2"]   # no temporary directory left
    return result


@pytest.fixture(scope="module")
def fresh(env, exported, tmp_path_factory):
    """FRESH_PROCESS (run_fresh) on the exports: raw text and integer features in, and
    saved_model_cli on MRPC's. Returns (outputs by task, what saved_model_cli shows)."""
    jobs = {}
    for task, (data, _, export_dir) in exported.items():
        pairs = [(a, b) for a, b, _ in data["dev"]]        # the test set's texts, in order
        texts = {"text_a": [a for a, _ in pairs]}
        jobs[task] = (export_dir, {"serve_features": features_of(env, pairs)})
        if task == "mrpc":
            # An empty text_b: the row is a single text (the original's `if example.text_b`).
            jobs[task][1]["serving_default:single"] = dict(texts, text_b=[""] * len(pairs))
            jobs[task][1]["serve_features:single"] = features_of(env, [(a, None)
                                                                      for a, _ in pairs])
            texts["text_b"] = [b for _, b in pairs]
        jobs[task][1]["serving_default"] = texts
    outputs, (shown,) = run_fresh(jobs, [exported["mrpc"][2]], tmp_path_factory.mktemp("fresh"))
    return outputs, shown


def test_exported_classifiers_give_run_classifier_s_predictions_in_a_fresh_process(exported,
                                                                                   fresh):
    """The exports loaded where the project is not give test_results.tsv's probabilities."""
    for task, outputs in fresh[0].items():
        expected = expected_probabilities(exported[task][1])
        for signature in ("serve_features", "serving_default"):
            probabilities = outputs[f"{signature}/probabilities"]
            assert probabilities.shape == expected.shape and probabilities.dtype == np.float32
            difference = np.max(np.abs(probabilities - expected))
            print(f"\n{task} {signature}: max abs difference to test_results.tsv "
                  f"{difference:.1e}")
            assert difference <= TOLERANCE, (task, signature)
            labels = [label.decode() for label in outputs[f"{signature}/label"]]
            assert labels == [["0", "1"][i] for i in expected.argmax(1)]
            np.testing.assert_allclose(tf.nn.softmax(outputs[f"{signature}/logits"]).numpy(),
                                       probabilities, atol=1e-6)
        if task == "mrpc":
            np.testing.assert_allclose(outputs["serving_default:single/probabilities"],
                                       outputs["serve_features:single/probabilities"],
                                       atol=TOLERANCE)


def test_saved_model_cli_lists_the_classifier_s_signatures(fresh):
    shown = fresh[1]
    for part in ("signature_def['serving_default']", "signature_def['serve_features']",
                 "inputs['text_a']", "inputs['text_b']", "inputs['input_word_ids']",
                 "inputs['input_mask']", "inputs['input_type_ids']", "outputs['probabilities']",
                 "outputs['logits']", "outputs['label']", "dtype: DT_STRING", "dtype: DT_INT32"):
        assert part in shown, part
    ops = shown[shown.index("contains the following ops:"):]
    for foreign in ("Xla", "PyFunc", "CustomGradient"):   # portable graphs: standard ops only
        assert foreign not in ops, foreign


def test_batches_run_in_chunks_of_similar_length_give_the_whole_batch_s_logits(env):
    classifier = modeling.BertClassifier(env.config, 3)
    rng = np.random.RandomState(7)
    lengths = rng.randint(1, 20, 11)
    mask = (np.arange(24)[None, :] < lengths[:, None]).astype(np.int32)
    features = dict(input_word_ids=tf.constant(rng.randint(5, 30, (11, 24)) * mask, tf.int32),
                    input_mask=tf.constant(mask), input_type_ids=tf.zeros([11, 24], tf.int32))

    def logits(part):
        return classifier({"input_ids": part["input_word_ids"], "input_mask": part["input_mask"],
                           "segment_ids": part["input_type_ids"]})

    run = tf.function(lambda f: saved_models.logits_by_length(logits, f, 3, rows=4))
    np.testing.assert_allclose(run(features), logits(features), atol=1e-5)
    empty = {name: value[:0] for name, value in features.items()}
    assert run(empty).shape == (0, 3)


def untrained_run(env, directory, num_outputs, info):
    """A run_classifier.py output directory as export_saved_model.py reads it, without the
    training: the tiny pretrained encoder, a random head, task.json `info` and label_list.txt.
    Returns (checkpoint prefix, the classifier)."""
    classifier = modeling.BertClassifier(env.config, num_outputs)
    checkpoints.restore(checkpoints.named_variables(classifier), env.init_checkpoint,
                        log_each=False)
    head = classifier.classifier
    head.output_weights.assign(np.random.RandomState(num_outputs).normal(
        0.0, 1.0, head.output_weights.shape).astype(np.float32))
    prefix = checkpoints.save(str(directory / "model.ckpt-1"),
                              checkpoints.named_variables(classifier))
    classification.write_task_file(str(directory), info)
    if info["labels"] is not None:
        classification.write_label_list(str(directory), info["labels"])
    return prefix, classifier


def test_multi_label_and_regression_outputs(env, tmp_path):
    """The other kinds of task: the outputs are the model's, and the multi-label names those
    test_predictions.tsv has for the same probabilities (classifier_data's submission label of
    classification.predicted)."""
    from test_run_classifier import sentence  # pylint: disable=import-outside-toplevel
    import random  # pylint: disable=import-outside-toplevel
    texts = [sentence(random.Random(i)) for i in range(12)]
    features = {k: tf.constant(v) for k, v in features_of(env, [(t, None) for t in texts]).items()}
    names = ["animal", "colour", "motion"]
    submission = classifier_data.get_task("generic", text_a_column=0, label_column=1,
                                          labels=names, multi_label=True, label_separator=";")
    for kind, labels in (("multi_label", names), ("regression", None)):
        info = dict(task="generic", kind=kind, labels=labels, text_pairs=False,
                    multi_label_threshold=0.45, label_separator=";", do_lower_case=True,
                    max_seq_length=SEQ)
        (tmp_path / kind).mkdir()
        prefix, classifier = untrained_run(env, tmp_path / kind, len(labels or [0]), info)
        export_classifier(env, prefix, tmp_path / f"{kind}_export")
        loaded = tf.saved_model.load(str(tmp_path / f"{kind}_export"))
        outputs = loaded.signatures["serving_default"](text_a=tf.constant(texts))
        logits = classifier({"input_ids": features["input_word_ids"],
                             "input_mask": features["input_mask"],
                             "segment_ids": features["input_type_ids"]}).numpy()
        np.testing.assert_allclose(outputs["logits"], logits, atol=TOLERANCE)
        if kind == "regression":
            assert sorted(outputs) == ["logits", "value"]
            np.testing.assert_allclose(outputs["value"], logits[:, 0], atol=TOLERANCE)
            assert loaded.labels.numpy().tolist() == []
            continue
        probabilities = outputs["probabilities"].numpy()
        np.testing.assert_allclose(probabilities, tf.sigmoid(logits), atol=1e-6)
        assert [label.decode() for label in outputs["label"].numpy()] == [
            submission.submission_label(row)
            for row in classification.predicted(kind, probabilities, threshold=0.45)]
        assert loaded.labels.numpy().tolist() == [n.encode() for n in names]
    # The names for logits on both sides of the threshold, none and all of them included.
    task = saved_models.ClassifierTask(kind="multi_label", labels=names,
                                       multi_label_threshold=0.45, label_separator=";")
    logits = np.array([[2.0, -2.0, -0.1], [-3.0, -3.0, -3.0], [3.0, 0.0, 1.0]], np.float32)
    label = saved_models.classifier_outputs(task, tf.constant(logits))["label"].numpy()
    assert [x.decode() for x in label] == ["animal;motion", "", "animal;colour;motion"]
    assert [x.decode() for x in label] == [
        submission.submission_label(row) for row in
        classification.predicted("multi_label", tf.sigmoid(logits).numpy(), threshold=0.45)]


def test_bad_exports_fail_clearly_and_write_nothing(env, tmp_path_factory, tmp_path, capsys,
                                                    monkeypatch):
    _, trained = train_glue(env, "sst-2", tmp_path_factory)
    common = dict(bert_config_file=env.bert_config_file, vocab_file=env.vocab_file)

    def error(**flag_values):
        assert run_script_command(export_saved_model, **dict(common, **flag_values)) == 1
        return error_line(*capsys.readouterr())

    # A pretrained checkpoint is not a classifier.
    line = error(export_type="classifier", init_checkpoint=env.init_checkpoint,
                 export_dir=tmp_path / "a")
    assert "is not a classifier (no output_weights)" in line and "--export_type=encoder" in line
    # A classifier whose label_list.txt (and task.json) is missing.
    bare = tmp_path / "bare"
    bare.mkdir()
    prefix = tf.train.latest_checkpoint(str(trained))
    for path in tf.io.gfile.glob(prefix + ".*"):
        shutil.copy(path, bare)
    line = error(export_type="classifier", init_checkpoint=bare / os.path.basename(prefix),
                 export_dir=tmp_path / "b")
    assert line == f"ERROR: {bare / 'label_list.txt'} is missing: the class names of the " \
        f"classifier in {bare} are not known (run_classifier.py writes label_list.txt beside " \
        "its checkpoints)"
    # An export directory that exists is never overwritten.
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    line = error(export_type="encoder", init_checkpoint=env.init_checkpoint,
                 export_dir=existing)
    assert line == f"ERROR: --export_dir={existing} exists; give a new directory (an export " \
        "never overwrites)"
    assert os.listdir(existing) == ["keep.txt"]
    # --do_lower_case against the casing the classifier was trained with.
    line = error(export_type="classifier", init_checkpoint=trained, do_lower_case="false",
                 export_dir=tmp_path / "c")
    assert "--do_lower_case=False, but the classifier was trained with do_lower_case=True" in line
    # Without tensorflow-text (an optional dependency) there is no in-graph tokenizer.
    with monkeypatch.context() as patch:
        patch.delitem(sys.modules, "tf_tokenization", raising=False)
        patch.setitem(sys.modules, "tensorflow_text", None)
        for export_type in ("classifier", "preprocessor"):
            line = error(export_type=export_type, init_checkpoint=trained,
                         export_dir=tmp_path / "d")
            assert line == "ERROR: exporting a classifier or a preprocessor needs " \
                "tensorflow-text, the in-graph tokenizer's WordPiece: pip install -r " \
                "requirements-export.txt"
    assert sorted(os.listdir(tmp_path)) == ["bare", "existing"]


def test_a_run_from_before_task_json_is_read_from_its_label_list(env, tmp_path_factory,
                                                                 tmp_path):
    """Without task.json: label_list.txt makes a single-label classifier of text pairs (an
    empty text_b is a single text: see the fresh-process test), one output without it a
    regression model; a label list that does not fit the checkpoint is an error."""
    _, trained = train_glue(env, "sst-2", tmp_path_factory)
    old = tmp_path / "old_run"
    shutil.copytree(trained, old)
    os.remove(old / classification.TASK_FILE)
    task = saved_models.read_classifier_task(str(old), 2)
    assert task == saved_models.ClassifierTask(classifier_data.CLASSIFICATION, ["0", "1"])
    assert task.text_pairs
    with pytest.raises(InputError, match="2 output\\(s\\), but the checkpoint's output_weights "
                       "has 3"):
        saved_models.read_classifier_task(str(old), 3)
    os.remove(old / classification.LABEL_LIST_FILE)
    assert saved_models.read_classifier_task(str(old), 1).kind == classifier_data.REGRESSION


def test_exported_preprocessor_gives_tokenization_py_s_ids(tmp_path):
    """--export_type=preprocessor with the real uncased vocabulary, cased: TF Hub's preprocessor
    (tf_tokenization.save_preprocessor), whose ids are FullTokenizer's on multilingual and random
    text, single texts and pairs."""
    from real_model import real_vocab_file  # pylint: disable=import-outside-toplevel
    from test_tokenization import MULTILINGUAL_SAMPLE, _fuzz_strings  # pylint: disable=C0415
    export_dir = tmp_path / "preprocessor"
    assert export_main(export_type="preprocessor", vocab_file=real_vocab_file(),
                       do_lower_case="false", max_seq_length=40, export_dir=export_dir) == 0
    preprocessor = tf.saved_model.load(str(export_dir))
    assert preprocessor.do_lower_case.numpy() == False  # noqa: E712
    # (Lone surrogates removed: UTF-8, the graph's input, cannot carry them.)
    texts = MULTILINGUAL_SAMPLE + ["".join(c for c in text if not 0xD800 <= ord(c) <= 0xDFFF)
                                   for text in _fuzz_strings(count=300)]
    full = tokenization.FullTokenizer(real_vocab_file(), do_lower_case=False)
    single = preprocessor(tf.constant(texts))                     # seq_length 40 by default
    pieces = [preprocessor.tokenize(tf.constant(part)) for part in (texts, texts[::-1])]
    pairs = preprocessor.bert_pack_inputs(pieces, seq_length=24)
    for row, (a, b) in enumerate(zip(texts, texts[::-1])):
        assert single["input_word_ids"][row].numpy().tolist() == \
            tokenization.encode_pair(full, a, None, 40).input_ids, a
        expected = tokenization.encode_pair(full, a, b, 24)
        assert pairs["input_word_ids"][row].numpy().tolist() == expected.input_ids, (a, b)
        assert pairs["input_type_ids"][row].numpy().tolist() == expected.segment_ids


# -- The encoder in TF Hub's format ----------------------------------------------------------------

def encoder_inputs(batch=3, seq=9, vocab_size=20, seed=0):
    rng = np.random.RandomState(seed)
    ids = rng.randint(5, vocab_size, (batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), np.int32)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    types = np.zeros((batch, seq), np.int32)
    types[0, 5:] = 1
    return dict(input_word_ids=tf.constant(ids * mask), input_mask=tf.constant(mask),
                input_type_ids=tf.constant(types))


@pytest.fixture(scope="module")
def tiny_encoder(env, tmp_path_factory):
    """The tiny pretrained checkpoint (bert/* and cls/*) exported by the command line, loaded."""
    export_dir = tmp_path_factory.mktemp("encoder") / "encoder"
    assert export_main(export_type="encoder", init_checkpoint=env.init_checkpoint,
                       bert_config_file=env.bert_config_file, vocab_file=env.vocab_file,
                       do_lower_case="false", export_dir=export_dir) == 0
    pretrainer = modeling.BertPretrainer(env.config)
    checkpoints.restore(checkpoints.named_variables(pretrainer), env.init_checkpoint)
    return export_dir, tf.saved_model.load(str(export_dir)), pretrainer


def test_encoder_outputs_are_the_model_s(tiny_encoder):
    _, encoder, pretrainer = tiny_encoder
    inputs = encoder_inputs()
    outputs = encoder(inputs)
    assert sorted(outputs) == ["default", "encoder_outputs", "pooled_output", "sequence_output"]
    reference = pretrainer.bert(inputs["input_word_ids"], inputs["input_mask"],
                                inputs["input_type_ids"])
    np.testing.assert_allclose(outputs["sequence_output"], reference.sequence_output,
                               atol=TOLERANCE)
    np.testing.assert_allclose(outputs["pooled_output"], reference.pooled_output, atol=TOLERANCE)
    np.testing.assert_array_equal(outputs["default"], outputs["pooled_output"])
    assert len(outputs["encoder_outputs"]) == 2
    for ours, theirs in zip(outputs["encoder_outputs"], reference.all_encoder_layers):
        np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)
    # The signature for TF Serving: the same, with one output per layer.
    served = encoder.signatures["serving_default"](**inputs)
    assert sorted(served) == ["default", "encoder_outputs_0", "encoder_outputs_1",
                              "pooled_output", "sequence_output"]
    np.testing.assert_allclose(served["encoder_outputs_1"], outputs["sequence_output"], atol=1e-6)
    # The masked-LM sub-object.
    positions = tf.constant([[1, 2], [0, 5], [2, 2]], tf.int32)
    mlm = encoder.mlm(dict(inputs, masked_lm_positions=positions))
    np.testing.assert_allclose(mlm["mlm_logits"],
                               pretrainer.mlm(reference.sequence_output, positions),
                               atol=TOLERANCE)


def test_encoder_carries_its_tokenization_and_trainable_variables(env, tiny_encoder):
    export_dir, encoder, pretrainer = tiny_encoder
    with open(encoder.vocab_file.asset_path.numpy().decode(), encoding="utf-8") as f:
        assert [line.rstrip("\n") for line in f] == vocab_of(env)
    assert str(export_dir) in encoder.vocab_file.asset_path.numpy().decode()
    assert encoder.do_lower_case.numpy() == False  # noqa: E712  (as exported)
    names = sorted(v.name.split(":")[0] for v in encoder.trainable_variables)
    assert names == sorted(checkpoints.named_variables(pretrainer.bert))
    assert [v.name for v in encoder.variables] == [v.name for v in encoder.trainable_variables]
    mlm_names = {v.name.split(":")[0] for v in encoder.mlm.trainable_variables}
    assert mlm_names == set(checkpoints.named_variables(pretrainer.bert, pretrainer.mlm))
    assert list(encoder.regularization_losses) == []


def test_encoder_trains_with_dropout(tiny_encoder):
    _, encoder, _ = tiny_encoder
    inputs = encoder_inputs()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(inputs, training=True)["pooled_output"] ** 2)
    gradients = tape.gradient(loss, encoder.trainable_variables)
    assert all(g is not None for g in gradients)
    first = encoder(inputs, training=True)["pooled_output"]
    second = encoder(inputs, training=True)["pooled_output"]   # new dropout masks
    inference = encoder(inputs, training=False)["pooled_output"]
    assert np.max(np.abs(first - second)) > 1e-3 and np.max(np.abs(first - inference)) > 1e-3
    np.testing.assert_array_equal(encoder(inputs)["pooled_output"], inference)


def test_minilm_encoder_equals_transformers(minilm_checkpoint, minilm_encoder):
    """The exported real MiniLM weights (conftest.py) against transformers on
    test_extract_features' lines, tokenized as extract_features.py does (a pair at the last
    " ||| "); extract_features.py itself is checked against transformers on the same lines
    there, and runs the same standard-ops graph in float32."""
    import torch  # pylint: disable=import-outside-toplevel
    import transformers  # pylint: disable=import-outside-toplevel
    from real_model import real_model_dir  # pylint: disable=import-outside-toplevel
    from test_extract_features import REAL_LINES  # pylint: disable=import-outside-toplevel
    tokenizer = tokenization.FullTokenizer(minilm_checkpoint["vocab_file"], do_lower_case=True)
    encoded = [tokenization.encode_pair(tokenizer, *(line.rsplit(" ||| ", 1) + [None])[:2], 64)
               for line in REAL_LINES]
    inputs = dict(input_word_ids=np.array([e.input_ids for e in encoded], np.int32),
                  input_mask=np.array([e.input_mask for e in encoded], np.int32),
                  input_type_ids=np.array([e.segment_ids for e in encoded], np.int32))
    assert inputs["input_type_ids"].any() and not inputs["input_mask"].all()
    export_dir = minilm_encoder
    encoder = tf.saved_model.load(str(export_dir))
    assert not hasattr(encoder, "mlm")   # MiniLM comes without its masked-LM head
    ours = encoder({k: tf.constant(v) for k, v in inputs.items()})["sequence_output"].numpy()
    model = transformers.BertModel.from_pretrained(real_model_dir()).eval()
    with torch.inference_mode():
        theirs = model(input_ids=torch.tensor(inputs["input_word_ids"], dtype=torch.long),
                       attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
                       token_type_ids=torch.tensor(inputs["input_type_ids"], dtype=torch.long)
                       ).last_hidden_state.numpy()
    mask = inputs["input_mask"].astype(bool)
    difference = float(np.max(np.abs(ours[mask] - theirs[mask])))
    print(f"\nexported MiniLM encoder, max abs difference of sequence_output to transformers "
          f"{difference:.2e}")
    assert difference <= TOLERANCE
