"""modeling.py on tiny configs: config files, shapes, masking, precision, heads, original names.

The fused kernels the model calls are tested in test_kernels.py."""
import json

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import kernels
import modeling

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=37, max_position_embeddings=64, type_vocab_size=2)


def tiny_config(**overrides):
    return modeling.BertConfig(**{**TINY, **overrides})


def tiny_pretrained_model(root, vocab, seed=0, **overrides):
    """vocab.txt, bert_config.json and a bert_model.ckpt (bert/* and cls/*, random weights) of
    a tiny config with `vocab` (a list of entries) in directory `root`, as a released model's:
    {vocab_file, bert_config_file, init_checkpoint} paths."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = tiny_config(vocab_size=len(vocab), **overrides)
    config.to_json_file(str(root / "bert_config.json"))
    tf.random.set_seed(seed)
    checkpoints.save(str(root / "bert_model.ckpt"),
                     checkpoints.named_variables(modeling.BertPretrainer(config)))
    return dict(vocab_file=str(root / "vocab.txt"), bert_config_file=str(root / "bert_config.json"),
                init_checkpoint=str(root / "bert_model.ckpt"))


def inputs(batch=3, seq=7, seed=0):
    rng = np.random.RandomState(seed)
    ids = rng.randint(1, 99, (batch, seq)).astype(np.int32)
    mask = np.ones((batch, seq), np.int32)
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    types = np.zeros((batch, seq), np.int32)
    types[:, 3:] = 1
    return tf.constant(ids), tf.constant(mask), tf.constant(types)


# -- BertConfig -------------------------------------------------------------------------------------

def test_config_defaults_are_the_originals():
    c = modeling.BertConfig(vocab_size=30522)
    assert c.to_dict() == dict(
        vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, max_position_embeddings=512, type_vocab_size=16,
        initializer_range=0.02)


def test_config_json_round_trip_keeps_released_extra_keys(tmp_path):
    released = {  # the layout of the released multilingual config, extra pooler keys included
        "attention_probs_dropout_prob": 0.1, "directionality": "bidi", "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
        "intermediate_size": 3072, "max_position_embeddings": 512, "num_attention_heads": 12,
        "num_hidden_layers": 12, "pooler_fc_size": 768, "pooler_num_attention_heads": 12,
        "pooler_num_fc_layers": 3, "pooler_size_per_head": 128, "pooler_type": "first_token_transform",
        "type_vocab_size": 2, "vocab_size": 119547}
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(released))
    c = modeling.BertConfig.from_json_file(str(path))
    assert c.vocab_size == 119547 and c.type_vocab_size == 2
    assert json.loads(c.to_json_string()) == released
    c.to_json_file(str(tmp_path / "out.json"))
    assert modeling.BertConfig.from_json_file(str(tmp_path / "out.json")) == c


@pytest.mark.parametrize("text, fragment", [
    ('{"vocab_size": 10,\n "hidden_size": }', "line 2"),
    ('[1, 2]', "expected a JSON object"),
    ('{"hidden_size": 128}', "vocab_size"),
    ('{"vocab_size": 10, "hidden_size": "big"}', "hidden_size"),
    ('{"vocab_size": 10, "hidden_size": 100, "num_attention_heads": 12}', "multiple"),
    ('{"vocab_size": 10, "hidden_act": "swish2"}', "hidden_act"),
    ('{"vocab_size": 10, "hidden_dropout_prob": 1.5}', "hidden_dropout_prob"),
])
def test_config_bad_files_name_the_file_and_problem(tmp_path, text, fragment):
    path = tmp_path / "bert_config.json"
    path.write_text(text)
    with pytest.raises(ValueError) as e:
        modeling.BertConfig.from_json_file(str(path))
    assert str(path) in str(e.value) and fragment in str(e.value)


def test_config_missing_file():
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        modeling.BertConfig.from_json_file("/nowhere.json")


# -- BertModel ---------------------------------------------------------------------------------------

def test_output_shapes():
    model = modeling.BertModel(tiny_config())
    out = model(*inputs())
    assert out.sequence_output.shape == (3, 7, 32)
    assert out.pooled_output.shape == (3, 32)
    assert len(out.all_encoder_layers) == 2
    assert all(x.shape == (3, 7, 32) for x in out.all_encoder_layers)
    assert out.embedding_output.shape == (3, 7, 32)
    assert model.get_embedding_table().shape == (99, 32)
    np.testing.assert_array_equal(out.sequence_output, out.all_encoder_layers[-1])


def test_padding_does_not_leak_into_real_positions():
    model = modeling.BertModel(tiny_config())
    ids, mask, types = inputs()
    changed = ids.numpy().copy()
    changed[1, 4:] = 5  # only padded positions of example 1 change
    a = model(ids, mask, types).sequence_output.numpy()
    b = model(tf.constant(changed), mask, types).sequence_output.numpy()
    np.testing.assert_allclose(a[1, :4], b[1, :4], atol=1e-6)
    assert np.abs(a[1, 4:] - b[1, 4:]).max() > 1e-3


def test_default_mask_and_types_mean_all_real_and_segment_zero():
    model = modeling.BertModel(tiny_config())
    ids, _, _ = inputs()
    a = model(ids).sequence_output
    b = model(ids, tf.ones_like(ids), tf.zeros_like(ids)).sequence_output
    np.testing.assert_array_equal(a, b)


def test_dropout_only_in_training():
    model = modeling.BertModel(tiny_config())
    x = inputs()
    np.testing.assert_array_equal(model(*x).sequence_output, model(*x).sequence_output)
    assert not np.allclose(model(*x, training=True).sequence_output, model(*x).sequence_output)
    nodrop = modeling.BertModel(tiny_config(hidden_dropout_prob=0.0,
                                            attention_probs_dropout_prob=0.0))
    np.testing.assert_allclose(nodrop(*x, training=True).sequence_output,
                               nodrop(*x).sequence_output, atol=1e-6)


def test_exact_gelu_and_layer_norm_epsilon():
    gelu = modeling.get_activation("gelu")
    assert float(gelu(tf.constant(1.0))) == pytest.approx(0.8413447, abs=1e-6)
    assert float(modeling.gelu_tanh(tf.constant(1.0))) == pytest.approx(0.8411920, abs=1e-6)
    norm = modeling.LayerNorm("x/LayerNorm", 4)
    # The variance (3e-12) is of the order of epsilon, so the result shows which epsilon is used:
    # 1e-12 gives 1.5 for the last element, a larger epsilon (1e-5, say) almost 0.
    x = np.array([[0.0, 0.0, 0.0, 4e-6]], np.float64)
    y = norm(tf.constant(x, tf.float32)).numpy()
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-12), rtol=1e-3)
    assert modeling.LAYER_NORM_EPSILON == 1e-12


def test_truncated_normal_initialisation():
    model = modeling.BertModel(tiny_config(initializer_range=0.02))
    w = model.embeddings.word_embeddings.numpy()
    assert np.abs(w).max() <= 0.04 + 1e-6  # truncated at two standard deviations
    assert 0.01 < w.std() < 0.02
    assert np.all(model.layers[0].attention_norm.gamma.numpy() == 1.0)
    assert np.all(model.layers[0].attention.query.bias.numpy() == 0.0)


def test_bfloat16_keeps_float32_variables_and_close_outputs():
    tf.random.set_seed(1)
    f32 = modeling.BertModel(tiny_config())
    bf16 = modeling.BertModel(tiny_config(), compute_dtype=tf.bfloat16)
    for v32, v16 in zip(f32.variables, bf16.variables):
        assert v16.dtype == tf.float32
        v16.assign(v32)
    x = inputs()
    a, b = f32(*x), bf16(*x)
    assert b.sequence_output.dtype == tf.bfloat16
    assert b.pooled_output.dtype == tf.float32
    diff = np.abs(a.sequence_output.numpy() - tf.cast(b.sequence_output, tf.float32).numpy())
    assert diff.max() < 0.1 and diff.mean() < 0.02


@pytest.mark.parametrize("bad", [99, -1])
def test_out_of_range_ids_give_a_clear_error(bad):
    model = modeling.BertModel(tiny_config())
    ids = np.ones((1, 4), np.int32)
    ids[0, 2] = bad
    with pytest.raises(tf.errors.InvalidArgumentError, match="input_ids"):
        model(tf.constant(ids))
    traced = tf.function(lambda x: model(x).sequence_output)
    with pytest.raises(tf.errors.InvalidArgumentError, match="input_ids"):
        traced(tf.constant(ids))


def test_token_type_out_of_range_and_too_long_sequences():
    model = modeling.BertModel(tiny_config())
    with pytest.raises(tf.errors.InvalidArgumentError, match="token_type_ids"):
        model(tf.ones((1, 4), tf.int32), token_type_ids=tf.fill((1, 4), 2))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(tf.ones((1, 65), tf.int32))


# -- heads ---------------------------------------------------------------------------------------------

def test_heads_shapes_and_tied_decoder():
    config = tiny_config()
    model = modeling.BertModel(config)
    mlm = modeling.MaskedLMHead(config, model.embedding_table)
    out = model(*inputs())
    positions = tf.constant([[0, 2], [1, 3], [1, 1]])
    logits = mlm(out.sequence_output, positions)
    assert logits.shape == (3, 2, 99) and logits.dtype == tf.float32
    # The decoder is the embedding table itself: no separate variable, and changing it moves logits.
    assert not any("decoder" in n for n in checkpoints.named_variables(mlm))
    model.embedding_table.assign(model.embedding_table * 2.0)
    assert not np.allclose(mlm(out.sequence_output, positions), logits)
    assert modeling.NextSentenceHead(config)(out.pooled_output).shape == (3, 2)
    assert modeling.ClassifierHead(config, 5)(out.pooled_output).shape == (3, 5)
    start, end = modeling.SpanHead(config)(out.sequence_output)
    assert start.shape == (3, 7) and end.shape == (3, 7)


def test_masked_lm_head_matches_a_manual_computation_at_positions():
    config = tiny_config()
    model = modeling.BertModel(config)
    mlm = modeling.MaskedLMHead(config, model.embedding_table)
    seq = model(*inputs()).sequence_output.numpy()
    logits = mlm(tf.constant(seq), tf.constant([[4], [0], [6]])).numpy()
    h = seq[[0, 1, 2], [4, 0, 6]]
    h = kernels.gelu_reference(
        tf.constant(h @ mlm.transform.kernel.numpy() + mlm.transform.bias.numpy())).numpy()
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-12)
    h = h * mlm.layer_norm.gamma.numpy() + mlm.layer_norm.beta.numpy()
    expected = h @ model.embedding_table.numpy().T + mlm.output_bias.numpy()
    np.testing.assert_allclose(logits[:, 0], expected, atol=1e-4)


def test_losses():
    logits = tf.constant([[[0.0, 0.0], [10.0, -10.0]]])
    loss, per = modeling.masked_lm_loss(logits, tf.constant([[1, 0]]), tf.constant([[1.0, 0.0]]))
    assert float(loss) == pytest.approx(np.log(2), rel=1e-4)  # the padded prediction is ignored
    loss, _ = modeling.classification_loss(tf.constant([[0.0, 0.0]]), tf.constant([1]))
    assert float(loss) == pytest.approx(np.log(2), rel=1e-5)


def test_token_classifier_scores_every_token_and_its_loss_only_the_scored_ones():
    config = tiny_config()
    model = modeling.BertTokenClassifier(config, num_labels=4)
    ids, mask, types = inputs()
    features = dict(input_ids=ids, input_mask=mask, segment_ids=types)
    logits = model(features)
    assert logits.shape == (3, 7, 4) and logits.dtype == tf.float32
    # The head is the classifier's output layer applied to each token's last hidden state.
    sequence = model.bert(ids, mask, types).sequence_output.numpy()
    expected = sequence @ model.classifier.output_weights.numpy().T \
        + model.classifier.output_bias.numpy()
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-5)
    names = {n: v.shape.as_list() for n, v in checkpoints.named_variables(model).items()}
    assert names["output_weights"] == [4, 32] and names["output_bias"] == [4]
    assert not [n for n in names if n.startswith("cls/")]
    # Dropout on the sequence output in training only.
    assert not np.allclose(model(features, training=True), logits)
    # The loss: mean cross entropy over the scored tokens; the others change nothing.
    labels = tf.constant(np.random.RandomState(1).randint(0, 4, (3, 7)), tf.int32)
    weights = np.zeros((3, 7), np.float32)
    weights[0, 1], weights[1, 2], weights[2, 1] = 1, 1, 1
    loss, per_token = modeling.token_classification_loss(logits, labels, weights)
    log_p = tf.nn.log_softmax(logits).numpy()
    rows, cols = np.nonzero(weights)
    assert float(loss) == pytest.approx(-np.mean(log_p[rows, cols, labels.numpy()[rows, cols]]),
                                        rel=1e-5)
    assert np.count_nonzero(per_token.numpy()) == 3
    other_labels = tf.where(weights > 0, labels, (labels + 1) % 4)
    assert float(modeling.token_classification_loss(logits, other_labels, weights)[0]) == \
        pytest.approx(float(loss))
    assert float(modeling.token_classification_loss(logits, labels, weights * 0)[0]) == 0.0


# -- names -----------------------------------------------------------------------------------------------

def expected_original_names(num_layers, num_labels=3):
    names = {
        "bert/embeddings/word_embeddings": [99, 32],
        "bert/embeddings/token_type_embeddings": [2, 32],
        "bert/embeddings/position_embeddings": [64, 32],
        "bert/embeddings/LayerNorm/gamma": [32], "bert/embeddings/LayerNorm/beta": [32],
        "bert/pooler/dense/kernel": [32, 32], "bert/pooler/dense/bias": [32],
        "cls/predictions/transform/dense/kernel": [32, 32],
        "cls/predictions/transform/dense/bias": [32],
        "cls/predictions/transform/LayerNorm/gamma": [32],
        "cls/predictions/transform/LayerNorm/beta": [32],
        "cls/predictions/output_bias": [99],
        "cls/seq_relationship/output_weights": [2, 32], "cls/seq_relationship/output_bias": [2],
        "output_weights": [num_labels, 32], "output_bias": [num_labels],
        "cls/squad/output_weights": [2, 32], "cls/squad/output_bias": [2],
    }
    for i in range(num_layers):
        p = f"bert/encoder/layer_{i}"
        for d in ("query", "key", "value"):
            names[f"{p}/attention/self/{d}/kernel"] = [32, 32]
            names[f"{p}/attention/self/{d}/bias"] = [32]
        names.update({
            f"{p}/attention/output/dense/kernel": [32, 32], f"{p}/attention/output/dense/bias": [32],
            f"{p}/attention/output/LayerNorm/gamma": [32], f"{p}/attention/output/LayerNorm/beta": [32],
            f"{p}/intermediate/dense/kernel": [32, 37], f"{p}/intermediate/dense/bias": [37],
            f"{p}/output/dense/kernel": [37, 32], f"{p}/output/dense/bias": [32],
            f"{p}/output/LayerNorm/gamma": [32], f"{p}/output/LayerNorm/beta": [32],
        })
    return names


def test_every_variable_has_its_original_name_and_shape():
    config = tiny_config()
    model = modeling.BertModel(config)
    heads = [modeling.MaskedLMHead(config, model.embedding_table), modeling.NextSentenceHead(config),
             modeling.ClassifierHead(config, 3), modeling.SpanHead(config)]
    got = {n: v.shape.as_list() for n, v in checkpoints.named_variables(model, *heads).items()}
    assert got == expected_original_names(2)
    assert checkpoints.count_parameters(model, *heads) == sum(int(np.prod(s)) for s in got.values())


def test_duplicate_names_are_refused():
    config = tiny_config()
    with pytest.raises(ValueError, match="two variables are named .output_"):
        checkpoints.named_variables(modeling.ClassifierHead(config, 2), modeling.ClassifierHead(config, 2))


def test_pretrainer_loss_and_metrics():
    config = tiny_config()
    model = modeling.BertPretrainer(config)
    ids, mask, types = inputs()
    f = dict(input_ids=ids, input_mask=mask, segment_ids=types,
             masked_lm_positions=tf.constant([[1, 2], [0, 3], [1, 0]]),
             masked_lm_ids=tf.constant([[5, 6], [7, 8], [9, 0]]),
             masked_lm_weights=tf.constant([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]),
             next_sentence_labels=tf.constant([[0], [1], [0]]))
    mlm_logits, nsp_logits = model(f)
    assert mlm_logits.shape == (3, 2, 99) and nsp_logits.shape == (3, 2)
    names = checkpoints.named_variables(model)
    assert "cls/predictions/output_bias" in names and "cls/seq_relationship/output_weights" in names
    loss = float(modeling.pretraining_loss(model, f, False))
    metrics = modeling.pretraining_metrics(model, f)
    total, count = metrics["loss"]
    assert float(total) / float(count) == pytest.approx(loss, rel=1e-5)
    hits, weight = metrics["masked_lm_accuracy"]
    assert float(weight) == 5.0 and 0.0 <= float(hits) <= 5.0
    expected_nsp = np.mean(np.argmax(nsp_logits.numpy(), -1) == np.array([0, 1, 0]))
    assert float(metrics["next_sentence_accuracy"][0]) / 3 == pytest.approx(expected_nsp)
    assert sorted(metrics) == ["loss", "masked_lm_accuracy", "masked_lm_loss",
                               "next_sentence_accuracy", "next_sentence_loss"]
    # The masked-LM loss is a mean over the 5 weighted positions, not over examples.
    per_position = kernels.sparse_softmax_cross_entropy(f["masked_lm_ids"], mlm_logits).numpy()
    total, count = metrics["masked_lm_loss"]
    assert float(count) == 5.0
    assert float(total) == pytest.approx(per_position.sum() - per_position[2, 1], rel=1e-5)
    # A replica can get no examples of a last, smaller batch: every sum must then be 0, not NaN.
    empty = {k: v[:0] for k, v in f.items()}
    for name, (total, count) in modeling.pretraining_metrics(model, empty).items():
        assert float(total) == 0.0 and float(count) == 0.0, name


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_masked_lm_head_loss_equals_the_loss_of_its_logits(dtype):
    # MaskedLMHead.loss folds the output bias into the cross entropy instead of making float32
    # logits first: the same loss and the same gradients for every variable and the input.
    model = modeling.BertPretrainer(tiny_config(), dtype)
    head = model.mlm
    rng = np.random.RandomState(5)
    sequence = tf.cast(tf.constant(rng.randn(3, 7, 32).astype(np.float32)), dtype)
    positions = tf.constant([[1, 2], [0, 3], [6, 0]])
    ids = tf.constant([[5, 6], [7, 98], [9, 0]])
    weights = tf.constant([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    head.output_bias.assign(rng.randn(99).astype(np.float32))
    variables = list(head.trainable_variables) + [model.bert.embedding_table]

    def value_and_grads(loss_fn):
        with tf.GradientTape() as tape:
            tape.watch(sequence)
            loss = loss_fn()
        grads = tape.gradient(loss, [sequence] + variables)
        return [loss] + [tf.convert_to_tensor(g) for g in grads]

    fused = value_and_grads(lambda: head.loss(sequence, positions, ids, weights))
    plain = value_and_grads(
        lambda: modeling.masked_lm_loss(head(sequence, positions), ids, weights)[0])
    for a, b in zip(fused, plain):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(tf.cast(a, tf.float32).numpy(), tf.cast(b, tf.float32).numpy(),
                                   rtol=1e-5, atol=1e-6)


# -- Dropout and XLA in the model ------------------------------------------------------------------

def test_bfloat16_dropout_is_off_unless_training():
    model = modeling.BertModel(tiny_config(), compute_dtype=tf.bfloat16)
    ins = inputs()
    np.testing.assert_array_equal(model(*ins).sequence_output, model(*ins).sequence_output)
    assert not np.array_equal(model(*ins, training=True).sequence_output,
                              model(*ins).sequence_output)


def test_xla_plain_tensorflow_and_standard_ops_give_the_same_values_and_masks():
    def run():
        tf.random.set_seed(5)
        model = modeling.BertModel(tiny_config())
        ids, mask, types = inputs()
        with tf.GradientTape() as tape:
            out = model(ids, mask, types, training=True).sequence_output
            loss = tf.reduce_sum(out * out)
        grads = tape.gradient(loss, model.trainable_variables)
        return [out.numpy()] + [tf.convert_to_tensor(g).numpy() for g in grads if g is not None]

    compiled = run()
    with kernels.compile_with_xla(False):
        plain = run()
    with kernels.standard_ops():   # exported SavedModels (autodiff gradients)
        standard = run()
    for a, b, c in zip(compiled, plain, standard):  # the same masks, or these would differ by O(1)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-4)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_distillation_losses_against_numpy(temperature):
    rng = np.random.default_rng(0)
    student, teacher = rng.normal(size=(4, 3)) * 3, rng.normal(size=(4, 3)) * 3
    t = temperature
    expected = -(_softmax(teacher / t) * np.log(_softmax(student / t))).sum(-1) * t * t
    loss, per_example = modeling.soft_classification_loss(tf.constant(student, tf.float32),
                                                          tf.constant(teacher, tf.float32), t)
    np.testing.assert_allclose(per_example.numpy(), expected, rtol=1e-5)
    assert float(loss) == pytest.approx(expected.mean(), rel=1e-5)
    p, q = 1 / (1 + np.exp(-teacher / t)), 1 / (1 + np.exp(-student / t))
    expected = -(p * np.log(q) + (1 - p) * np.log(1 - q)).mean(-1) * t * t
    loss, per_example = modeling.soft_multi_label_loss(tf.constant(student, tf.float32),
                                                       tf.constant(teacher, tf.float32), t)
    np.testing.assert_allclose(per_example.numpy(), expected, rtol=1e-5)
    assert float(loss) == pytest.approx(expected.mean(), rel=1e-5)


def test_distillation_loss_is_the_hard_loss_for_a_certain_teacher_and_keeps_its_gradient_scale():
    student = tf.constant([[0.3, -1.0, 2.0], [1.0, 0.0, 0.5]])
    certain = tf.constant([[0.0, 0.0, 60.0], [60.0, 0.0, 0.0]])  # one-hot after the softmax
    soft, _ = modeling.soft_classification_loss(student, certain)
    hard, _ = modeling.classification_loss(student, tf.constant([2, 0]))
    assert float(soft) == pytest.approx(float(hard), rel=1e-5)
    # d loss / d logits = T (softmax(s / T) - softmax(t / T)) / B: the T^2 factor keeps it O(1)
    # for the soft targets a large temperature gives.
    teacher = tf.constant([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    for t in (1.0, 4.0):
        with tf.GradientTape() as tape:
            tape.watch(student)
            loss, _ = modeling.soft_classification_loss(student, teacher, t)
        expected = t * (_softmax(student.numpy() / t) - _softmax(teacher.numpy() / t)) / 2
        np.testing.assert_allclose(tape.gradient(loss, student).numpy(), expected, rtol=1e-4,
                                   atol=1e-7)
