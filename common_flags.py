"""Command-line flags shared by the scripts, defined once with the original names and defaults.

Each script calls the `define_*` functions it needs at import time, reads FLAGS only in its
`main()`, and ends with `common_flags.run(main)`, the one entry point of every script (see "One
error path" below); library modules never read FLAGS. The helpers at the bottom turn parsed flags
into the runner's arguments.

Several scripts in one process
------------------------------
absl holds one flag per name in a process, yet scripts give some names a default or help of their
own: --max_seq_length is 384 in run_squad.py and 128 elsewhere, --input_file is raw text for
create_pretraining_data.py and TFRecords for run_pretraining.py, --output_dir is a converted model
for convert_hf_checkpoint.py. On the command line a script is alone in its process and absl holds
its own definition. The tests, though, import several scripts into one process, where absl keeps
the first definition of each name; before, a later script then silently ran with another script's
default (run_squad.py with --max_seq_length=128). So:

- each definition here records the defining script's own declaration (default and help) beside
  absl's single flag, and `apply_script_flags(script)` makes every flag that script defined hold
  its declaration again: a value given on the command line (or set with FLAGS.name = value) is
  kept, the others take the script's default. `run_main` calls it before main(), so a script
  runs with its own defaults whatever was imported before it;
- what one process cannot hold per script is an error when the flag is defined
  (FlagConflictError): a type, enum values or bounds other than those of the flag already defined
  under the name (absl parses every --name with one parser), and one script declaring a name
  twice with another default or help (a copy of a shared definition that has drifted from it;
  extract_features.py kept such copies of --distribution_strategy and --precision).

Help that differs between scripts is deliberately not an error: the names above mean different
things in different scripts, and a script's --help shows its own text (it is alone in the process,
and its flags are registered as its key flags so that --help lists them).

One error path
--------------
`run(main)` replaces absl's `app.run(main)` in every script. absl parses the command line (a
malformed or missing flag prints absl's usage message), then `run_main` calls main() with the
script's own defaults. An expected error, which the user can fix and which names what to fix, is
printed as one line, `ERROR: <message>`, on stderr, with exit status 1 and no traceback:
errors.InputError and its subclasses (bad data, flags, vocabularies, configs, checkpoints),
errors.ClusterError (a multi-worker job that lost a worker), the
OSErrors of a named file that is missing or cannot be read (FileNotFoundError,
IsADirectoryError, NotADirectoryError, PermissionError), TensorFlow's NotFoundError and
PermissionDeniedError (a gs:// path), and absl's flag errors raised inside main(). Any other
exception is a bug and propagates with its traceback.
"""

import functools
import sys
from typing import Any, NamedTuple

from absl import app, flags

from errors import ClusterError, InputError

# TensorFlow (and the runner) are imported only by the functions that need them, so that the
# data-preparation scripts, which never touch a model, start in a fraction of a second.

FLAGS = flags.FLAGS


class FlagConflictError(ValueError):
    """A definition one process cannot hold beside an earlier one (see the module docstring): a
    script's code is wrong, not its user's input, so no errors.InputError."""


# {(script, name): the flag as that script declared it: an absl Flag, never registered}
_DECLARED = {}


def _defining_script():
    """The __name__ of the module that called into this one: the script defining a flag."""
    frame = sys._getframe(1)  # pylint: disable=protected-access
    while frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame.f_globals.get("__name__")


def _absl_module_name(script):
    """The module name absl files a script's flags under (the file's path when run as __main__)."""
    return sys.argv[0] if script == "__main__" else script


def _kind(flag):
    """How a flag parses its value, in words ("int (Flag)", "string enum <a|b> (EnumFlag)"):
    what every definition of a name must agree on, since absl parses each --name one way."""
    words = flag.flag_type()
    parser = flag.parser
    if getattr(parser, "enum_values", None):
        words += f" <{'|'.join(parser.enum_values)}>"
    if getattr(parser, "lower_bound", None) is not None:
        words += f" >= {parser.lower_bound}"
    if getattr(parser, "upper_bound", None) is not None:
        words += f" <= {parser.upper_bound}"
    return f"{words} ({type(flag).__name__})"


def _first_definer(name):
    """Who defined --name first: a script recorded here, else the module absl names."""
    scripts = [script for script, declared_name in _DECLARED if declared_name == name]
    return scripts[0] if scripts else FLAGS.find_module_defining_flag(name, "another module")


def _check_declaration(script, declared):
    """Raises FlagConflictError if `declared` (script's definition) cannot stand beside the
    definitions already made."""
    name = declared.name
    if name in FLAGS and _kind(FLAGS[name]) != _kind(declared):
        raise FlagConflictError(
            f"{script} defines --{name} as {_kind(declared)}, but {_first_definer(name)} "
            f"defined it as {_kind(FLAGS[name])}: one process parses a flag one way; give one "
            f"of them another name")
    earlier = _DECLARED.get((script, name))
    if earlier is not None and (earlier.default, earlier.help) != (declared.default,
                                                                   declared.help):
        raise FlagConflictError(
            f"{script} defines --{name} twice: default {earlier.default!r}, help "
            f"{earlier.help!r}, then default {declared.default!r}, help {declared.help!r}")


def _per_script(define):
    """`define` (a flags.DEFINE_* function) recording the calling script's declaration; absl gets
    the first definition of each name (see the module docstring)."""
    def define_for_script(name, *args, **kwargs):
        script = _defining_script()
        scratch = flags.FlagValues()  # absl builds the flag (parsed default, help), unregistered
        declared = scratch[define(name, *args, flag_values=scratch, **kwargs).name]
        _check_declaration(script, declared)
        if name not in FLAGS:
            define(name, *args, **kwargs)
        _DECLARED[script, name] = declared
        FLAGS.register_key_flag_for_module(_absl_module_name(script), FLAGS[name])
    return define_for_script


DEFINE_string = _per_script(flags.DEFINE_string)
DEFINE_bool = _per_script(flags.DEFINE_bool)
DEFINE_integer = _per_script(flags.DEFINE_integer)
DEFINE_float = _per_script(flags.DEFINE_float)
DEFINE_enum = _per_script(flags.DEFINE_enum)


def apply_script_flags(script):
    """Makes every flag `script` (a module's __name__) defined hold that script's default and
    help. A flag given on the command line, or set with FLAGS.name = value, keeps its value; the
    others take the script's default. run_main calls it before main() reads FLAGS."""
    for (owner, name), declared in _DECLARED.items():
        if owner == script:
            FLAGS[name].help = declared.help
            FLAGS.set_default(name, declared.default)


# OSErrors a user fixes by naming another file, or by making it readable; reported only when they
# carry the file's name (open() and os functions set it).
_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def error_message(error):
    """The `ERROR:` line's text for an expected error (see the module docstring), else None."""
    if isinstance(error, (InputError, ClusterError, flags.ValidationError,
                          flags.IllegalFlagValueError)):
        return str(error)
    if isinstance(error, _FILE_ERRORS) and error.filename is not None:
        names = str(error.filename) + ("" if error.filename2 is None
                                       else f" -> {error.filename2}")
        return f"{error.strerror or type(error).__name__}: {names}"
    # Only if TensorFlow is loaded already: the data-preparation scripts never import it.
    tf = sys.modules.get("tensorflow")
    tf_errors = getattr(tf, "errors", None)
    if tf_errors is not None and isinstance(
            error, (tf_errors.NotFoundError, tf_errors.PermissionDeniedError)):
        return error.message.strip()
    return None


def run_main(main, argv):
    """main(argv) as the command line runs it, once absl has parsed the flags: with the script's
    own flag defaults (apply_script_flags of main's module), and an expected error printed as one
    `ERROR: <message>` line on stderr. Returns main's return value (the exit status), or 1 after
    an expected error; any other exception propagates with its traceback.

    --distribution_strategy=multi_worker_mirrored is made here, before main(): TensorFlow accepts
    it only before running any op, which main() would soon do (see strategy_from_flags)."""
    apply_script_flags(main.__module__)
    try:
        if (main.__module__, "distribution_strategy") in _DECLARED and uses_multi_worker(FLAGS):
            strategy_from_flags(FLAGS)  # before main() runs any TensorFlow op (see there)
        return main(argv)
    except Exception as e:  # pylint: disable=broad-except
        message = error_message(e)
        if message is None:
            raise
    sys.stdout.flush()
    print(f"ERROR: {message}", file=sys.stderr, flush=True)
    return 1


def run(main, pass_unknown_flags=False):
    """The entry point of every script, in place of absl's app.run(main): absl parses the
    command line, then run_main(main, argv); exits with its status. With `pass_unknown_flags`,
    flags that no module defined are not an error but stay in main's argv, for main to pass on
    (create_pretraining_data.py gives them to Apache Beam)."""
    app.run(functools.partial(run_main, main),
            flags_parser=_parse_known_flags if pass_unknown_flags else app.parse_flags_with_usage)


def _parse_known_flags(argv):
    """absl's parse_flags_with_usage, leaving the flags it does not know in the argv returned."""
    try:
        return FLAGS(argv, known_only=True)
    except flags.Error as error:
        sys.stderr.write(f"FATAL Flags parsing error: {error}\n"
                         "Pass --helpshort or --helpfull to see help on flags.\n")
        sys.exit(1)


def define_model_flags(max_seq_length=128):
    """--bert_config_file, --vocab_file, --init_checkpoint, --do_lower_case, --max_seq_length."""
    define_checkpoint_flags()
    DEFINE_integer("max_seq_length", max_seq_length,
                   "The maximum total input sequence length after WordPiece tokenization. "
                   "Longer sequences are truncated, shorter ones padded.")


def define_output_dir(
        help_text="The output directory where the model checkpoints will be written."):
    """--output_dir, with a script's own help if it writes something else there."""
    DEFINE_string("output_dir", None, help_text)


def define_checkpoint_flags():
    """--bert_config_file, --vocab_file, --init_checkpoint, --do_lower_case."""
    DEFINE_string("bert_config_file", None,
                  "The config json file corresponding to the pre-trained BERT model. "
                  "This specifies the model architecture.")
    DEFINE_string("vocab_file", None,
                  "The vocabulary file that the BERT model was trained on.")
    DEFINE_string("init_checkpoint", None,
                  "Initial checkpoint (usually from a pre-trained BERT model): a prefix such "
                  "as .../bert_model.ckpt or a directory (its latest checkpoint).")
    DEFINE_bool("do_lower_case", True,
                "Whether to lower case the input text. Should be True for uncased models "
                "and False for cased models.")


def define_tpu_flags():
    """The original TPU flags; --use_tpu selects the TPU strategy."""
    DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU.")
    DEFINE_string("tpu_name", None,
                  "The Cloud TPU to use for training: the name used when creating the "
                  "Cloud TPU, or a grpc://ip.address.of.tpu:8470 url.")
    DEFINE_string("tpu_zone", None,
                  "[Optional] GCE zone where the Cloud TPU is located in. If not specified, "
                  "we will attempt to automatically detect it from metadata.")
    DEFINE_string("gcp_project", None,
                  "[Optional] Project name for the Cloud TPU-enabled project. If not "
                  "specified, we will attempt to automatically detect it from metadata.")
    DEFINE_string("master", None, "[Optional] TensorFlow master URL.")
    DEFINE_integer("num_tpu_cores", 8,
                   "Only used if `use_tpu` is True. Total number of TPU cores to use.")


# Longer than anything only the chief does while the others wait at the next step: saving a
# checkpoint (BERT-Large with its Adam slots is 4 GB), writing the evaluation outputs, building
# the feature caches. (PyTorch's default for NCCL collectives is 10 minutes too.)
DEFAULT_COLLECTIVE_TIMEOUT_SECONDS = 600


def define_strategy_flags():
    """The original TPU flags, --distribution_strategy and --collective_timeout_seconds: what
    strategy_from_flags reads."""
    define_tpu_flags()
    import training  # pylint: disable=import-outside-toplevel
    DEFINE_enum("distribution_strategy", "auto", training.STRATEGIES,
                "tf.distribute strategy: auto (mirrored if several GPUs, else one device), "
                "one_device, mirrored (GPUs of this machine), multi_worker_mirrored "
                "(cluster from TF_CONFIG), tpu (same as --use_tpu).")
    DEFINE_integer("collective_timeout_seconds", DEFAULT_COLLECTIVE_TIMEOUT_SECONDS,
                   "multi_worker_mirrored: how long a worker waits for the others to join a "
                   "collective (each training step's all-reduce, evaluation) and for the "
                   "chief's feature caches, before it stops with an error; a worker that dies "
                   "is noticed within about 10 s anyway. 0 = wait forever.", lower_bound=0)


def define_precision_flag():
    """--precision: what compute_dtype_from_flags reads."""
    DEFINE_enum("precision", "float32", ["float32", "bfloat16"],
                "float32, or bfloat16 mixed precision (variables, softmax, LayerNorm and "
                "losses stay float32).")


def define_runner_flags(save_checkpoints_steps=1000):
    """Strategy, precision, checkpointing, loop and memory flags of the shared runner; the
    scripts pass --precision and --gradient_checkpointing to the model they build."""
    define_strategy_flags()
    define_precision_flag()
    define_output_dir()
    DEFINE_integer("save_checkpoints_steps", save_checkpoints_steps,
                   "How often to save the model checkpoint.")
    DEFINE_integer("iterations_per_loop", 1000,
                   "How many steps to make in each tf.function call (and between progress "
                   "lines).")
    DEFINE_integer("keep_checkpoint_max", 5, "How many recent checkpoints to keep.")
    DEFINE_integer("gradient_accumulation_steps", 1,
                   "Split each batch of --train_batch_size into this many micro-batches "
                   "and accumulate their gradients: the same update with less memory.")
    DEFINE_bool("gradient_checkpointing", False,
                "Recompute each Transformer layer's activations in the backward pass instead "
                "of keeping them from the forward pass: far less activation memory (long "
                "sequences, large models) for about one more forward pass per step; the same "
                "gradients.")
    DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"],
                "adamw (the original BERT optimizer) or lamb (large-batch pretraining).")
    DEFINE_integer("seed", None,
                   "Seed of the random numbers (new weights, dropout, the order of the training "
                   "examples): the same command with the same seed repeats a run on the same "
                   "machine. Unset, every run draws its own, as the original did.")


def define_train_flags(train_batch_size=32, eval_batch_size=8, learning_rate=5e-5):
    """--do_train, --train_batch_size, --learning_rate and, unless eval_batch_size is None,
    --do_eval and --eval_batch_size (run_squad.py has no evaluation mode of its own)."""
    DEFINE_bool("do_train", False, "Whether to run training.")
    DEFINE_integer("train_batch_size", train_batch_size, "Total batch size for training.")
    DEFINE_float("learning_rate", learning_rate, "The initial learning rate for Adam.")
    if eval_batch_size is not None:
        DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")
        DEFINE_integer("eval_batch_size", eval_batch_size, "Total batch size for eval.")


def define_epoch_flags():
    """--num_train_epochs and --warmup_proportion (fine-tuning scripts)."""
    DEFINE_float("num_train_epochs", 3.0, "Total number of training epochs to perform.")
    DEFINE_float("warmup_proportion", 0.1,
                 "Proportion of training to perform linear learning rate warmup for. "
                 "E.g., 0.1 = 10% of training.")


def define_classifier_flags():
    """run_classifier.py's flags (also run_classifier_with_tfhub.py's): the original ones with
    their defaults, the generic task's, evaluation during training and distillation.
    classifier_settings_from_flags reads them."""
    import classifier_data  # pylint: disable=import-outside-toplevel  (no TensorFlow)
    # The original flags, with their defaults.
    DEFINE_string("data_dir", None,
                  "The input data dir. Should contain the .tsv files (or other data "
                  "files) for the task.")
    DEFINE_string("task_name", None,
                  "The name of the task to train: " + ", ".join(classifier_data.TASK_NAMES)
                  + " (case-insensitive).")
    define_model_flags(max_seq_length=128)
    define_runner_flags(save_checkpoints_steps=1000)
    define_train_flags(train_batch_size=32, eval_batch_size=8, learning_rate=5e-5)
    define_epoch_flags()
    DEFINE_bool("do_predict", False,
                "Whether to run the model in inference mode on the test set.")
    DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")
    _define_generic_task_flags()
    DEFINE_string("xnli_language", None, "xnli: the language (default zh, as the "
                  "original).")
    # New: evaluation during training.
    DEFINE_integer("eval_every_steps", 0,
                   "With --do_train: evaluate on the dev set every this many steps (and "
                   "at the end) and keep the best checkpoint by the task's main metric "
                   "in <output_dir>/best/. 0 = off.")
    _define_distillation_flags()


def _define_generic_task_flags():
    """The generic task's (classifier_data.GenericTask); None = the task's default."""
    import classifier_data  # pylint: disable=import-outside-toplevel  (no TensorFlow)
    DEFINE_string("text_a_column", None,
                  "generic: column of the first text: a header name / JSON key, or a "
                  "0-based position.")
    DEFINE_string("text_b_column", None, "generic: column of the second text, if any.")
    DEFINE_string("label_column", None, "generic: column of the label.")
    DEFINE_string("index_column", None,
                  "generic: column of the test file whose values name the rows of the "
                  "submission file (default: 0, 1, ...).")
    DEFINE_enum("file_format", None, list(classifier_data.FILE_FORMATS),
                "generic: format of train/dev/test files (default: from the extension).")
    DEFINE_bool("has_header", None, "generic: whether TSV/CSV files have a header line "
                "(default true).")
    DEFINE_string("labels", None,
                  "generic: the class names, comma-separated, in output order (default: "
                  "those of the training file, sorted; saved as label_list.txt).")
    DEFINE_bool("multi_label", None,
                "generic: each example has a set of labels (sigmoid outputs).")
    DEFINE_string("label_separator", None,
                  "generic, multi-label: separator between the labels of a cell "
                  "(default ',').")
    DEFINE_bool("regression", None, "generic: the label is a number (one output, MSE).")
    DEFINE_float("multi_label_threshold", 0.5,
                 "Multi-label: a label is predicted when its probability is at least "
                 "this.")


def _define_distillation_flags():
    """Distillation's (see "Distillation" in run_classifier.py's docstring)."""
    DEFINE_bool("do_label_transfer", False,
                "Teacher pass: predict the examples of --transfer_file with the model "
                "(the newest checkpoint in --output_dir, else --init_checkpoint) and write "
                "their logits to <output_dir>/soft_labels.jsonl.")
    DEFINE_string("transfer_file", None,
                  "With --do_label_transfer: the transfer set, one or more "
                  "comma-separated files laid out as the task's training file; labels "
                  "are optional (kept as gold labels where present).")
    DEFINE_string("teacher_soft_labels", None,
                  "Student pass: with --do_train, train on the examples of this "
                  "soft_labels.jsonl (a teacher's --do_label_transfer) against the "
                  "teacher's outputs, instead of on the training file.")
    DEFINE_float("distill_temperature", 1.0,
                 "Student pass: temperature of the teacher's and the student's softmax "
                 "(sigmoid); the loss is scaled by its square. 1 = plain cross entropy.")
    DEFINE_float("gold_label_weight", 0.0,
                 "Student pass: on transfer examples with a gold label the loss is (1 - w)"
                 " x distillation loss + w x the task's loss on the gold label. 0 = "
                 "distil only.")



def classifier_settings_from_flags(f, is_chief=True):
    """classification.Settings from the flags of define_classifier_flags; `is_chief`: whether
    this process writes the outputs (training.is_chief of the strategy)."""
    import classification  # pylint: disable=import-outside-toplevel
    generic = {name: f[name].value for name in classification.GENERIC_OPTIONS
               if f[name].value is not None}
    return classification.Settings(
        classification.Modes(f.do_train, f.do_eval, f.do_predict, f.do_label_transfer,
                             f.eval_every_steps),
        classification.Distillation(f.teacher_soft_labels, f.distill_temperature,
                                    f.gold_label_weight),
        classification.TaskFlags(f.task_name, f.xnli_language, generic),
        f.output_dir, f.data_dir, f.transfer_file, f.init_checkpoint, f.eval_batch_size,
        f.predict_batch_size, f.multi_label_threshold, is_chief,
        cache_wait_from_flags(f, is_chief))


def check_classifier_flags(f, required):
    """classification.check_flags on the flags of define_classifier_flags; `required`: {flag
    name: value} of the files and directories the script needs."""
    import classification  # pylint: disable=import-outside-toplevel
    settings = classifier_settings_from_flags(f)
    classification.check_flags(settings.modes, settings.distillation, settings.task, required,
                               f.transfer_file)


def run_classification(f, strategy, build_model, vocab_file, do_lower_case):
    """classification.run with the flags of define_classifier_flags: the model is
    build_model(num_labels) on `strategy` in --output_dir, its features tokenized with
    `vocab_file` / `do_lower_case` (run_classifier.py and run_classifier_with_tfhub.py differ
    there only)."""
    import classification  # pylint: disable=import-outside-toplevel
    import classifier_features  # pylint: disable=import-outside-toplevel
    import training  # pylint: disable=import-outside-toplevel

    def make_runner(num_labels):
        return training.Runner(strategy, lambda: build_model(num_labels), f.output_dir)

    classification.run(
        classifier_settings_from_flags(f, training.is_chief(strategy)),
        classifier_features.FeatureSettings(vocab_file, do_lower_case, f.max_seq_length),
        make_runner, lambda num_examples: fine_tuning_from_flags(f, num_examples))

def warn_if_case_mismatch(f):
    """The original's check of --do_lower_case against a released checkpoint's name, as a
    warning: a checkpoint can be renamed, and the run is still meaningful."""
    import tokenization  # pylint: disable=import-outside-toplevel
    from absl import logging  # pylint: disable=import-outside-toplevel
    try:
        tokenization.validate_case_matches_checkpoint(f.do_lower_case, f.init_checkpoint)
    except ValueError as e:
        logging.warning("%s", e)


def fine_tuning_steps(num_examples, train_batch_size, num_train_epochs, warmup_proportion):
    """(num_train_steps, num_warmup_steps) from the epoch flags, as the original computed them."""
    num_train_steps = int(num_examples / train_batch_size * num_train_epochs)
    if num_train_steps < 1:
        raise InputError(f"{num_examples} training examples / --train_batch_size="
                         f"{train_batch_size} x --num_train_epochs={num_train_epochs} is less "
                         f"than one step")
    return num_train_steps, int(num_train_steps * warmup_proportion)


class FineTuning(NamedTuple):
    """How a fine-tuning script trains (fine_tuning_from_flags)."""
    config: Any               # training.TrainConfig
    optimizer: Any            # optimization.create_optimizer's
    num_warmup_steps: int


def fine_tuning_from_flags(f, num_examples):
    """FineTuning on `num_examples` training examples for --num_train_epochs epochs of
    --train_batch_size (fine_tuning_steps), with --learning_rate and --optimizer."""
    import optimization  # pylint: disable=import-outside-toplevel
    num_train_steps, num_warmup_steps = fine_tuning_steps(
        num_examples, f.train_batch_size, f.num_train_epochs, f.warmup_proportion)
    return FineTuning(train_config_from_flags(f, num_train_steps),
                      optimization.create_optimizer(f.learning_rate, num_train_steps,
                                                    num_warmup_steps, f.optimizer),
                      num_warmup_steps)


# The multi-worker strategy of this process: TensorFlow configures collective ops once.
_MULTI_WORKER_STRATEGY = []


def uses_multi_worker(f):
    """Whether the flags ask for multi_worker_mirrored (--use_tpu wins, as in make_strategy)."""
    return not f.use_tpu and f.distribution_strategy == "multi_worker_mirrored"


def strategy_from_flags(f):
    """training.make_strategy of the flags.

    multi_worker_mirrored can be made only before TensorFlow runs its first op, and once per
    process: run_main makes it before main() whenever a script defines --distribution_strategy,
    and this returns that one (so main() may ask for it anywhere). The other strategies are made
    on each call.
    """
    import training  # pylint: disable=import-outside-toplevel
    if uses_multi_worker(f) and _MULTI_WORKER_STRATEGY:
        return _MULTI_WORKER_STRATEGY[0]
    strategy = training.make_strategy(f.distribution_strategy, f.use_tpu, f.tpu_name, f.tpu_zone,
                                      f.gcp_project, f.master, f.num_tpu_cores,
                                      f.collective_timeout_seconds or None)
    if uses_multi_worker(f):
        _MULTI_WORKER_STRATEGY.append(strategy)
    return strategy


def seed_from_flags(f):
    """Seeds Python's, NumPy's and TensorFlow's random numbers with --seed, if given. Called
    before the model is built: TensorFlow derives every random op's seed from it (weights,
    dropout keys, tf.data shuffles), in the order the ops are made."""
    if f.seed is None:
        return
    import random  # pylint: disable=import-outside-toplevel
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    random.seed(f.seed)
    np.random.seed(f.seed % 2**32)
    tf.random.set_seed(f.seed)


def cache_wait_from_flags(f, is_chief):
    """How a worker gets the feature caches (input_pipeline.cached_tfrecord's wait_seconds): the
    chief builds them (None); the other workers of a multi-worker job wait for the chief's, at
    most --collective_timeout_seconds (0: for ever)."""
    return None if is_chief else float(f.collective_timeout_seconds or "inf")


def bert_config_from_flags(f):
    """The BertConfig of --bert_config_file, checked against --max_seq_length."""
    import modeling  # pylint: disable=import-outside-toplevel
    config = modeling.BertConfig.from_json_file(f.bert_config_file)
    if f.max_seq_length > config.max_position_embeddings:
        raise InputError(f"Cannot use sequence length {f.max_seq_length} because the BERT model "
                         f"was only trained up to sequence length "
                         f"{config.max_position_embeddings} (--max_seq_length={f.max_seq_length}; "
                         f"max_position_embeddings in {f.bert_config_file})")
    return config


def start_fine_tuning(f, is_chief=True):
    """What a fine-tuning script does once its flags are checked: warns about a --do_lower_case
    that contradicts the checkpoint's name, creates --output_dir (the chief: the other workers of
    a multi-worker job write nothing there), and returns the BertConfig."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    warn_if_case_mismatch(f)
    config = bert_config_from_flags(f)
    if is_chief:
        tf.io.gfile.makedirs(f.output_dir)
    return config


def compute_dtype_from_flags(f):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.bfloat16 if f.precision == "bfloat16" else tf.float32


def train_config_from_flags(f, num_train_steps):
    import training  # pylint: disable=import-outside-toplevel
    return training.TrainConfig(
        num_train_steps=num_train_steps,
        train_batch_size=f.train_batch_size,
        iterations_per_loop=f.iterations_per_loop,
        save_checkpoints_steps=f.save_checkpoints_steps,
        keep_checkpoint_max=f.keep_checkpoint_max,
        gradient_accumulation_steps=f.gradient_accumulation_steps,
        init_checkpoint=f.init_checkpoint)
