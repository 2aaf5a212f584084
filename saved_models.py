"""SavedModels for serving and reuse: a fine-tuned classifier, and BERT encoders in TF Hub's format.

export_saved_model.py is the command line; everything it does is here.

Both kinds are traced with kernels.standard_ops(): the graphs hold standard TensorFlow ops only (no
XLA, no custom gradients, no py_function), so TF Serving, `tf.saved_model.load` in a process that
never saw this project, and TensorFlow's converters take them; on CPU, Grappler rewrites their
MatMul + BiasAdd (+ GELU) into oneDNN kernels. The one op from outside core TensorFlow is
tensorflow-text's WordPiece (FastWordpieceTokenizeWithOffsets), in the classifier's raw-text
signature and the preprocessor (tf_tokenization.py): a program loading those runs
`import tensorflow_text` first, which registers it. Variables are float32 and keep their
checkpoint names (`bert/encoder/layer_0/attention/self/query/kernel`, `output_weights`, ...). A
SavedModel is written under a temporary name beside --export_dir and renamed when complete
(file_io.atomic_directory); an existing --export_dir is an error (nothing is overwritten).

Classifier (export_classifier), from a run_classifier.py checkpoint and the task it recorded
(task.json, label_list.txt: read_classifier_task). Signatures, B = batch, S = sequence length:
  serving_default   text_a: string [B] (and text_b: string [B] when the task takes text pairs; an
                    empty text_b makes that row a single text) -> the outputs below, tokenized
                    in the graph by tf_tokenization.Preprocessor (tokenization.py's ids and
                    truncation, the run's casing and --max_seq_length).
  serve_features    input_word_ids, input_mask, input_type_ids: int32 [B, S] -> the same outputs.
Outputs by the task's kind (L = number of classes):
  classification    probabilities float32 [B, L] (softmax), logits [B, L], label string [B]: the
                    most probable class's name.
  multi_label       probabilities [B, L] (sigmoid), logits [B, L], label string [B]: the names of
                    the classes whose probability is at least the run's --multi_label_threshold,
                    joined by the task's label separator ("," by default; "" for none), as in
                    test_predictions.tsv.
  regression        value float32 [B] (what test_results.tsv holds), logits [B, 1].
A batch runs in chunks of CHUNK_ROWS rows of similar length, each cut to its longest row (the last
position input_mask marks): padding to a fixed length costs nothing, and a batch of mixed lengths
little (logits_by_length; benchmarks/serving_speed.py measures it). Attributes: `vocab_file` (an
Asset), `do_lower_case` (bool Variable), `labels` (string Variable [L]; empty for regression).

Encoder (export_encoder): TF Hub's TF2 BERT encoder format, a Reusable SavedModel
(tensorflow.org/hub/reusable_saved_models, .../common_saved_model_apis/text):
  encoder(inputs, training=False) with inputs = dict(input_word_ids, input_mask, input_type_ids),
      int32 [B, S] -> dict(sequence_output [B, S, H], pooled_output [B, H], default (=
      pooled_output), encoder_outputs: a list of [B, S, H], one per layer); training=True
      applies dropout.
  encoder.variables, encoder.trainable_variables (the bert/* variables), encoder.
      regularization_losses (empty): what fine-tuning trains.
  encoder.vocab_file (Asset), encoder.do_lower_case (bool Variable): the tokenization, as TF
      Hub's BERT encoders carry it.
  encoder.mlm(inputs, training=False) with also masked_lm_positions int32 [B, P] -> the outputs
      above and mlm_logits [B, P, V]; its variables add cls/predictions/*. Only when the
      checkpoint has the masked-LM head (released checkpoints do).
  signature serving_default: the three inputs -> sequence_output, pooled_output, default and
      encoder_outputs_<i> (i = 0 .. layers - 1).
Dropout draws its masks from TensorFlow's stateful random generator in the graph: an encoder
exported while a global seed was set (tf.random.set_seed) starts every process with the same
sequence of masks, as a seeded training run would.
"""

import dataclasses
import os
from typing import List, Optional

import tensorflow as tf
from absl import logging

import checkpoints
import classification
import classifier_data
from errors import InputError
import file_io
import kernels
import modeling

ENCODER_INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
CHUNK_ROWS = 8   # the exported classifier runs its batches in chunks of this many rows
MLM_NAMES = ("cls/predictions/",)


def encoder_input_specs(extra=()):
    """{name: TensorSpec int32 [None, None]} of the encoder inputs (and of `extra` names)."""
    return {name: tf.TensorSpec([None, None], tf.int32, name=name)
            for name in ENCODER_INPUTS + tuple(extra)}


# -- Writing ---------------------------------------------------------------------------------------

def check_export_dir(export_dir):
    """InputError unless --export_dir is given and does not exist yet."""
    if not export_dir:
        raise InputError("--export_dir is required")
    if tf.io.gfile.exists(export_dir):
        raise InputError(f"--export_dir={export_dir} exists; give a new directory (an export "
                         "never overwrites)")


def save(root, export_dir, signatures):
    """tf.saved_model.save(root) to `export_dir`, which appears whole or not at all."""
    # TensorFlow logs a screenful of INFO lines while saving (renamed captured inputs of the
    # signatures' loops, sharding callbacks, asset paths under the temporary name): kept out.
    verbosity, tf_level = logging.get_verbosity(), tf.get_logger().level
    logging.set_verbosity(min(verbosity, logging.WARNING))  # absl's levels: WARNING < INFO
    tf.get_logger().setLevel(max(tf_level, 30))  # Python's logging.WARNING
    try:
        with file_io.atomic_directory(export_dir) as directory:
            tf.saved_model.save(root, directory, signatures=signatures)
    finally:
        logging.set_verbosity(verbosity)
        tf.get_logger().setLevel(tf_level)
    logging.info("Wrote the SavedModel %s (signatures: %s)", export_dir, ", ".join(signatures))
    return export_dir


# -- Checkpoints -----------------------------------------------------------------------------------

def restore_all(variables, init_checkpoint, what):
    """Loads every variable of {name: variable} from `init_checkpoint`; a missing one is a
    CheckpointError naming it (`what`: the model, for the message)."""
    if not init_checkpoint:
        raise checkpoints.CheckpointError("--init_checkpoint is required")
    _, missing, _ = checkpoints.restore(variables, init_checkpoint, log_each=False)
    if missing:
        raise checkpoints.CheckpointError(
            f"{checkpoints.resolve(init_checkpoint)}: {len(missing)} variable(s) of {what} are "
            "missing (does bert_config.json match the checkpoint?): " + ", ".join(missing[:20])
            + (" ..." if len(missing) > 20 else ""))


def checkpoint_shapes(init_checkpoint):
    """{name: shape} of the checkpoint's tensors."""
    if not init_checkpoint:
        raise checkpoints.CheckpointError("--init_checkpoint is required")
    return dict(checkpoints.list_variables(init_checkpoint))


# -- The encoder in TF Hub's format ----------------------------------------------------------------

def encoder_outputs(bert, inputs, training):
    """The TF Hub encoder's output dict for inputs {input_word_ids, input_mask, input_type_ids}."""
    out = bert(inputs["input_word_ids"], inputs["input_mask"], inputs["input_type_ids"],
               training=training)
    return dict(sequence_output=out.sequence_output, pooled_output=out.pooled_output,
                default=out.pooled_output, encoder_outputs=list(out.all_encoder_layers))


def _reusable(call, variables, input_specs):
    """A Reusable SavedModel object: __call__(inputs, training=False) traced both ways with
    standard ops, and its variables."""
    obj = tf.train.Checkpoint()
    function = tf.function(call)
    with kernels.standard_ops():
        for training in (False, True):
            function.get_concrete_function(input_specs, training=training)
    obj.__call__ = function
    obj.variables = list(variables)
    obj.trainable_variables = [v for v in variables if v.trainable]
    obj.regularization_losses = []
    return obj


def encoder_object(bert, vocab_file, do_lower_case, mlm=None):
    """The TF Hub encoder (see the module docstring) of BertModel `bert`, with `mlm` (a
    MaskedLMHead) as its mlm sub-object if given. Returns (object, signatures)."""
    root = _reusable(lambda inputs, training=False: encoder_outputs(bert, inputs, training),
                     checkpoints.named_variables(bert).values(), encoder_input_specs())
    root.vocab_file = tf.saved_model.Asset(vocab_file)
    root.do_lower_case = tf.Variable(bool(do_lower_case), trainable=False, name="do_lower_case")
    if mlm is not None:
        def mlm_call(inputs, training=False):
            outputs = encoder_outputs(bert, inputs, training)
            outputs["mlm_logits"] = mlm(outputs["sequence_output"], inputs["masked_lm_positions"])
            return outputs

        root.mlm = _reusable(mlm_call, checkpoints.named_variables(bert, mlm).values(),
                             encoder_input_specs(["masked_lm_positions"]))

    @tf.function(input_signature=list(encoder_input_specs().values()))
    def serving(input_word_ids, input_mask, input_type_ids):
        outputs = encoder_outputs(bert, dict(input_word_ids=input_word_ids, input_mask=input_mask,
                                             input_type_ids=input_type_ids), False)
        flat = {name: outputs[name] for name in ("sequence_output", "pooled_output", "default")}
        flat.update({f"encoder_outputs_{i}": layer
                     for i, layer in enumerate(outputs["encoder_outputs"])})
        return flat

    with kernels.standard_ops():
        signatures = {"serving_default": serving.get_concrete_function()}
    return root, signatures


def export_encoder(export_dir, config, init_checkpoint, vocab_file, do_lower_case):
    """Writes the TF Hub encoder of a checkpoint in the original layout (bert/*, and cls/* for
    the mlm sub-object when it has them)."""
    check_export_dir(export_dir)
    shapes = checkpoint_shapes(init_checkpoint)
    pretrainer = modeling.BertPretrainer(config)
    restore_all(checkpoints.named_variables(pretrainer.bert), init_checkpoint, "the encoder")
    mlm = None
    if any(name.startswith(MLM_NAMES) for name in shapes):
        restore_all(checkpoints.named_variables(pretrainer.mlm), init_checkpoint,
                    "the masked-LM head")
        mlm = pretrainer.mlm
    else:
        logging.warning("%s has no masked-LM head (cls/predictions/*): the export has no `mlm`",
                        init_checkpoint)
    root, signatures = encoder_object(pretrainer.bert, vocab_file, do_lower_case, mlm)
    return save(root, export_dir, signatures)


# -- The classifier -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ClassifierTask:
    """What a fine-tuned classifier outputs and was trained with (classification.task_info)."""
    kind: str
    labels: Optional[List[str]]
    text_pairs: bool = True
    multi_label_threshold: float = 0.5
    label_separator: str = ","
    do_lower_case: Optional[bool] = None      # None: not recorded
    max_seq_length: Optional[int] = None

    @property
    def num_outputs(self):
        return 1 if self.kind == classifier_data.REGRESSION else len(self.labels)


def read_classifier_task(directory, num_outputs):
    """The ClassifierTask of the run_classifier.py run in `directory`, whose checkpoint has
    `num_outputs` outputs.

    From task.json; for a run from before that file: label_list.txt makes it single-label
    classification (a multi-label model cannot be told apart; it would get softmax outputs, with
    a warning), no label_list.txt and one output regression. Raises InputError when neither
    says what the outputs are, or when they disagree with the checkpoint.
    """
    info = classification.read_task_file(directory)
    if info is not None:
        fields = {field.name for field in dataclasses.fields(ClassifierTask)}
        task = ClassifierTask(**{k: v for k, v in info.items() if k in fields})
        source = os.path.join(directory, classification.TASK_FILE)
    else:
        labels = classification.read_label_list(directory)
        source = os.path.join(directory, classification.LABEL_LIST_FILE)
        if labels is not None:
            logging.warning("%s has no %s (a run before it existed): exporting a single-label "
                            "classifier over %s", directory, classification.TASK_FILE, labels)
            task = ClassifierTask(classifier_data.CLASSIFICATION, labels)
        elif num_outputs == 1:
            logging.warning("%s has neither %s nor %s and one output: exporting a regression "
                            "model", directory, classification.TASK_FILE,
                            classification.LABEL_LIST_FILE)
            task = ClassifierTask(classifier_data.REGRESSION, None)
        else:
            raise InputError(f"{source} is missing: the class names of the classifier in "
                             f"{directory} are not known (run_classifier.py writes "
                             f"{classification.LABEL_LIST_FILE} beside its checkpoints)")
    if task.num_outputs != num_outputs:
        raise InputError(f"{source}: {task.num_outputs} output(s), but the checkpoint's "
                         f"output_weights has {num_outputs}")
    return task


def classifier_outputs(task, logits):
    """The classifier's outputs (see the module docstring) for logits float32 [B, L]."""
    if task.kind == classifier_data.REGRESSION:
        return {"value": logits[:, 0], "logits": logits}
    labels = tf.constant(task.labels)
    if task.kind == classifier_data.MULTI_LABEL:
        probabilities = tf.sigmoid(logits)
        names = tf.ragged.boolean_mask(tf.broadcast_to(labels, tf.shape(logits)),
                                       probabilities >= task.multi_label_threshold)
        label = tf.strings.reduce_join(names, axis=-1, separator=task.label_separator)
    else:
        probabilities = tf.nn.softmax(logits, axis=-1)
        label = tf.gather(labels, tf.argmax(logits, axis=-1, output_type=tf.int32))
    return {"probabilities": probabilities, "logits": logits, "label": label}


def real_lengths(mask):
    """int32 [B]: one past the last position each row's input_mask [B, S] marks."""
    positions = tf.range(1, tf.shape(mask)[1] + 1)[tf.newaxis, :]             # [1, S]
    return tf.reduce_max(tf.where(mask > 0, positions, 0), axis=1)


def trim_padding(features):
    """The int32 [B, S] features cut to [B, W], W the longest real_lengths (at least 1): the
    encoder's results on real tokens do not depend on padding after them."""
    width = tf.maximum(tf.reduce_max(real_lengths(features["input_mask"])), 1)
    return {name: value[:, :width] for name, value in features.items()}


def logits_by_length(model_fn, features, num_outputs, rows=CHUNK_ROWS):
    """model_fn's logits float32 [B, num_outputs] for features int32 [B, S], computed on chunks of
    `rows` rows of similar length, each cut to its longest (trim_padding), in the batch's order.

    Performance: a batch of texts of mixed lengths padded to its longest is mostly padding (real
    sentences of 6 to 60 words: about half); sorted chunks of 8 rows waste a few percent. Values
    as for the whole batch up to float round-off."""
    order = tf.argsort(real_lengths(features["input_mask"]), stable=True)     # [B]
    batch = tf.shape(order)[0]

    def chunk(i, results):
        rows_i = order[i * rows:tf.minimum((i + 1) * rows, batch)]
        part = trim_padding({name: tf.gather(value, rows_i) for name, value in features.items()})
        return i + 1, results.write(i, model_fn(part))

    count = (batch + rows - 1) // rows
    _, results = tf.while_loop(
        lambda i, _: i < count, chunk,
        (0, tf.TensorArray(tf.float32, size=count, infer_shape=False,
                           element_shape=tf.TensorShape([None, num_outputs]))))
    return tf.gather(results.concat(), tf.argsort(order))                     # [B, L]


def text_features(preprocessor, text_a, text_b, seq_length):
    """The encoder inputs int32 [B, seq_length] of text_a (and text_b) string [B], by a
    tf_tokenization.Preprocessor: `[CLS] A [SEP]`, or `[CLS] A [SEP] B [SEP]` where text_b is not
    empty (the original's `if example.text_b`), truncated as the original."""
    segment_a = preprocessor.tokenize(text_a)
    single = preprocessor.bert_pack_inputs([segment_a], seq_length=seq_length)
    if text_b is None:
        return single
    pair = preprocessor.bert_pack_inputs([segment_a, preprocessor.tokenize(text_b)],
                                         seq_length=seq_length)
    has_b = (tf.strings.length(text_b) > 0)[:, tf.newaxis]
    return {name: tf.where(has_b, pair[name], single[name]) for name in ENCODER_INPUTS}


def classifier_object(classifier, task, vocab_file, do_lower_case, max_seq_length, preprocessor):
    """The exported classifier (see the module docstring) of BertClassifier `classifier`, its
    raw-text serving_default tokenized by `preprocessor` (a tf_tokenization.Preprocessor).
    Returns (object, signatures)."""
    root = tf.train.Checkpoint()
    root.model = classifier   # (the preprocessor's tables are constants of the graph)
    root.vocab_file = tf.saved_model.Asset(vocab_file)
    root.do_lower_case = tf.Variable(bool(do_lower_case), trainable=False, name="do_lower_case")
    root.labels = tf.Variable(task.labels or [], dtype=tf.string, trainable=False, name="labels")

    def logits(features):
        return classifier({"input_ids": features["input_word_ids"],
                           "input_mask": features["input_mask"],
                           "segment_ids": features["input_type_ids"]}, training=False)

    def outputs(features):
        return classifier_outputs(task, logits_by_length(logits, features, task.num_outputs))

    serve_features = tf.function(lambda input_word_ids, input_mask, input_type_ids: outputs(
        dict(input_word_ids=input_word_ids, input_mask=input_mask, input_type_ids=input_type_ids)),
        input_signature=list(encoder_input_specs().values()))
    texts = [tf.TensorSpec([None], tf.string, name="text_a")]
    if task.text_pairs:
        texts.append(tf.TensorSpec([None], tf.string, name="text_b"))

    @tf.function(input_signature=texts)
    def serve_text(text_a, text_b=None):
        return outputs(text_features(preprocessor, text_a, text_b, max_seq_length))

    with kernels.standard_ops():
        return root, {"serving_default": serve_text.get_concrete_function(),
                      "serve_features": serve_features.get_concrete_function()}


def _tf_tokenization():
    """The tf_tokenization module; an InputError saying what to install when tensorflow-text,
    which it needs, is missing (the rest of the project runs without it)."""
    try:
        import tf_tokenization  # pylint: disable=import-outside-toplevel
    except ModuleNotFoundError as e:
        if e.name != "tensorflow_text":
            raise
        raise InputError("exporting a classifier or a preprocessor needs tensorflow-text, the "
                         "in-graph tokenizer's WordPiece: pip install -r "
                         "requirements-export.txt") from None
    return tf_tokenization


def _settle_tokenization(task, do_lower_case, max_seq_length, source, default_length):
    """(do_lower_case, max_seq_length) of the export: the flags' when given (not None), else what
    the run recorded, else the defaults (True, `default_length`); a --do_lower_case that
    contradicts the recorded one is an error (the model would see other word pieces than in
    training)."""
    if do_lower_case is not None and task.do_lower_case is not None \
            and do_lower_case != task.do_lower_case:
        raise InputError(f"--do_lower_case={do_lower_case}, but the classifier was trained with "
                         f"do_lower_case={task.do_lower_case} ({source})")
    if do_lower_case is None:
        do_lower_case = True if task.do_lower_case is None else task.do_lower_case
    if max_seq_length is None:
        max_seq_length = task.max_seq_length or default_length
    return do_lower_case, max_seq_length


def export_classifier(export_dir, config, init_checkpoint, vocab_file, do_lower_case=None,
                      max_seq_length=None):
    """Writes the serving SavedModel of a run_classifier.py classifier: `init_checkpoint` is its
    --output_dir (newest checkpoint), best/, or a checkpoint prefix there; the task comes from
    the files beside it (read_classifier_task). do_lower_case / max_seq_length None: as
    recorded (_settle_tokenization)."""
    check_export_dir(export_dir)
    tf_tokenization = _tf_tokenization()
    shapes = checkpoint_shapes(init_checkpoint)
    if "output_weights" not in shapes:
        raise InputError(f"{checkpoints.resolve(init_checkpoint)} is not a classifier (no "
                         "output_weights): export a run_classifier.py checkpoint, or use "
                         "--export_type=encoder")
    directory = checkpoints.directory_of(init_checkpoint)
    task = read_classifier_task(directory, shapes["output_weights"][0])
    do_lower_case, max_seq_length = _settle_tokenization(
        task, do_lower_case, max_seq_length, directory, min(128, config.max_position_embeddings))
    if max_seq_length > config.max_position_embeddings:
        raise InputError(f"--max_seq_length={max_seq_length} is above max_position_embeddings "
                         f"({config.max_position_embeddings}) of the BERT config")
    classifier = modeling.BertClassifier(config, task.num_outputs)
    restore_all(checkpoints.named_variables(classifier), init_checkpoint, "the classifier")
    preprocessor = tf_tokenization.Preprocessor(vocab_file, do_lower_case,
                                                seq_length=max_seq_length)
    root, signatures = classifier_object(classifier, task, vocab_file, do_lower_case,
                                         max_seq_length, preprocessor)
    return save(root, export_dir, signatures)


def export_preprocessor(export_dir, vocab_file, do_lower_case, max_seq_length):
    """tf_tokenization.save_preprocessor: TF Hub's preprocessor for the vocabulary, written
    whole or not at all."""
    check_export_dir(export_dir)
    _tf_tokenization().save_preprocessor(vocab_file, do_lower_case, export_dir,
                                         seq_length=max_seq_length)
    logging.info("Wrote the preprocessor %s", export_dir)
    return export_dir
