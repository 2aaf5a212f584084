"""Name-based checkpoints with the original BERT variable names, both ways.

The original code wrote TF1 `Saver` checkpoints: a `<prefix>.index` table and
`<prefix>.data-00000-of-00001` keyed by plain variable names (`bert/embeddings/word_embeddings`,
`bert/encoder/layer_0/attention/self/query/kernel/adam_m`, `global_step`). TF2's object-based
`tf.train.Checkpoint` would key them by object paths instead, which tools made for the released
checkpoints cannot read. So this module writes the same V2 bundle format keyed by the original names
with the `SaveV2` kernel, and reads any such bundle with `tf.train.load_checkpoint`.

All names live in one place: every model variable carries its original name (see modeling.py), the
optimizer names its slots `<variable>/adam_m` and `<variable>/adam_v`, and the step is `global_step`.
The only rules here are which names fine-tuning ignores (`IGNORED_WHEN_INITIALIZING`).
"""

import logging
import os
import re
import uuid

import numpy as np
import tensorflow as tf

from errors import InputError
import file_io

logger = logging.getLogger(__name__)

# Names in a checkpoint that `--init_checkpoint` never loads: optimizer state and the step belong
# to the run that wrote the checkpoint, not to a new one.
IGNORED_WHEN_INITIALIZING = (
    re.compile(r".*/adam_[mv]$"),
    re.compile(r"^global_step$"),
    re.compile(r"^_CHECKPOINTABLE_OBJECT_GRAPH$"),
)

STATE_FILE = "checkpoint"


class CheckpointError(InputError):
    """A checkpoint that cannot be used as asked; the message names the path and the variables."""


def named_variables(*modules):
    """{original checkpoint name: variable} for every variable of `modules` (tf.Modules whose
    variables carry their full original names, as modeling.py's do).

    A module may name its variables itself: one with a `named_variables()` method returning
    {name: variable} is asked instead (hub_encoders.HubClassifier, whose encoder's variables
    carry whatever names a SavedModel's exporter gave them, not always distinct ones).

    Raises if two variables share a name (two heads built twice, say), which would make a
    checkpoint ambiguous.
    """
    named = {}
    for module in modules:
        own = getattr(module, "named_variables", None)
        pairs = own().items() if callable(own) else (
            (variable.name.split(":")[0], variable) for variable in module.variables)
        for name, variable in pairs:
            if name in named and named[name] is not variable:
                raise ValueError(f"two variables are named {name!r}")
            named[name] = variable
    return dict(sorted(named.items()))


def count_parameters(*modules):
    """The number of values in the named variables of `modules`."""
    return int(sum(np.prod(v.shape) for v in named_variables(*modules).values()))


def resolve(path):
    """Returns the checkpoint prefix for `path`: a prefix itself, or a directory's latest.

    Accepts `.../bert_model.ckpt`, `.../model.ckpt-1000`, a path to one of the bundle's files
    (`.index`, `.data-*`), a legacy V1 checkpoint file, and a directory holding a `checkpoint`
    state file; local or any filesystem `tf.io.gfile` reads (gs://).
    """
    path = str(path)
    path = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", path)
    if tf.io.gfile.exists(path + ".index"):
        return path
    if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        return path  # the legacy V1 format: one file, no .index
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest and tf.io.gfile.exists(latest + ".index"):
            return latest
        raise CheckpointError(f"{path}: directory holds no checkpoint (no `checkpoint` state file "
                              "naming an existing .index); pass a checkpoint prefix such as "
                              f"{os.path.join(path, 'bert_model.ckpt')}")
    raise CheckpointError(f"{path}: no checkpoint found (expected {path}.index, or a directory "
                          "with a `checkpoint` state file)")


def directory_of(path):
    """The directory of a checkpoint given as a prefix, one of its files or a directory (where a
    fine-tuned model keeps the files its outputs follow, such as its label list); None for None."""
    if not path:
        return None
    return str(path) if tf.io.gfile.isdir(path) else os.path.dirname(str(path))


def list_variables(path):
    """[(name, shape)] of the checkpoint at `path` (prefix or directory), sorted by name."""
    return sorted(tf.train.list_variables(resolve(path)))


def save(prefix, named_values):
    """Writes {name: variable or array} to the bundle `prefix` atomically.

    The bundle is written under a temporary prefix in the same directory and its files renamed
    once complete, so an interrupted save never leaves a half-written `prefix`.
    """
    directory = os.path.dirname(prefix) or "."
    tf.io.gfile.makedirs(directory)
    names = sorted(named_values)
    tensors = [tf.convert_to_tensor(_value(named_values[n])) for n in names]
    # A hidden name in the same directory, so the renames below stay on one filesystem.
    tmp_prefix = os.path.join(directory, f".tmp-{uuid.uuid4().hex}-{os.path.basename(prefix)}")
    try:
        tf.raw_ops.SaveV2(prefix=tmp_prefix, tensor_names=names,
                          shape_and_slices=[""] * len(names), tensors=tensors)
        # The index goes last: a bundle counts as present once its .index exists.
        suffixes = [s[len(tmp_prefix):] for s in tf.io.gfile.glob(tmp_prefix + ".*")]
        for suffix in sorted(suffixes, key=lambda s: s == ".index"):
            tf.io.gfile.rename(tmp_prefix + suffix, prefix + suffix, overwrite=True)
    finally:
        for leftover in tf.io.gfile.glob(tmp_prefix + "*"):
            tf.io.gfile.remove(leftover)
    return prefix


def _value(v):
    if isinstance(v, tf.Variable) or hasattr(v, "read_value"):
        return v.read_value()
    return v


def _reader(prefix):
    """tf.train.load_checkpoint(prefix); a file that is not a checkpoint is a CheckpointError."""
    try:
        return tf.train.load_checkpoint(prefix)
    except tf.errors.OpError as e:  # DataLossError, or NotFoundError for a missing shard
        raise CheckpointError(
            f"{prefix}: not a readable checkpoint ({e.message.strip()})") from None


def read(path):
    """{name: numpy array} of every tensor in the checkpoint at `path`."""
    reader = _reader(resolve(path))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def _ignored(name, ignore):
    return any(p.match(name) for p in ignore)


def restore(variables, path, ignore=IGNORED_WHEN_INITIALIZING, strict_missing=False,
            log_each=True):
    """Assigns checkpoint tensors to the variables of the same name.

    Args:
      variables: {original name: tf.Variable}.
      path: checkpoint prefix or directory.
      ignore: name patterns in the checkpoint that are never loaded.
      strict_missing: raise if a variable has no tensor in the checkpoint (resuming needs every
        variable; fine-tuning expects new heads to be missing).
    Returns:
      (loaded names, variables not in the checkpoint, checkpoint names not used).
    Raises:
      CheckpointError when there is no checkpoint at `path` or it is not readable, on a shape
      mismatch, when nothing matches, or (strict) when a variable is missing; the message lists
      the names involved.
    """
    prefix = resolve(path)
    reader = _reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    candidates = {n: s for n, s in shapes.items() if not _ignored(n, ignore)}
    mismatched = [f"{n}: checkpoint {shapes[n]} vs model {variables[n].shape.as_list()}"
                  for n in sorted(variables)
                  if n in candidates and list(shapes[n]) != variables[n].shape.as_list()]
    if mismatched:
        raise CheckpointError(f"{prefix}: shapes differ for {len(mismatched)} variable(s) (does "
                              "bert_config.json match the checkpoint?):\n  "
                              + "\n  ".join(mismatched))
    loaded = sorted(n for n in variables if n in candidates)
    missing = sorted(n for n in variables if n not in candidates)
    unused = sorted(n for n in candidates if n not in variables)
    if not loaded:
        raise CheckpointError(
            f"{prefix}: no variable name matches the model.\n  checkpoint has: "
            + ", ".join(sorted(shapes)[:20]) + ("..." if len(shapes) > 20 else "")
            + "\n  model expects: " + ", ".join(sorted(variables)[:20]))
    if strict_missing and missing:
        raise CheckpointError(f"{prefix}: {len(missing)} variable(s) missing from the checkpoint: "
                              + ", ".join(missing))
    for name in loaded:
        variable = variables[name]
        value = reader.get_tensor(name)
        variable.assign(tf.cast(value, variable.dtype) if dtypes[name] != variable.dtype else value)
        if log_each:
            logger.info("  name = %s, shape = %s, *INIT_FROM_CKPT*", name, list(shapes[name]))
    if missing:
        logger.info("%d variable(s) not in %s (initialised fresh): %s", len(missing), prefix,
                    ", ".join(missing))
    if unused:
        logger.info("%d checkpoint tensor(s) not used by this model: %s", len(unused),
                    ", ".join(unused))
    return loaded, missing, unused


class CheckpointManager:
    """Saves `<directory>/model.ckpt-<step>` bundles, keeps the newest `max_to_keep`.

    The `checkpoint` state file is the same text format TF1 wrote, so `tf.train.latest_checkpoint`
    and the original tools find the newest bundle. It is rewritten atomically after each save.
    """

    def __init__(self, directory, variables, max_to_keep=5, checkpoint_name="model.ckpt"):
        self.directory = str(directory)
        self.variables = variables
        self.max_to_keep = max_to_keep
        self.checkpoint_name = checkpoint_name
        self._kept = self._read_state()

    def _read_state(self):
        state = tf.train.get_checkpoint_state(self.directory)
        if not state:
            return []
        return [os.path.join(self.directory, os.path.basename(p))
                for p in state.all_model_checkpoint_paths]

    @property
    def latest(self):
        return tf.train.latest_checkpoint(self.directory)

    def save(self, step):
        prefix = os.path.join(self.directory, f"{self.checkpoint_name}-{int(step)}")
        save(prefix, self.variables)
        self._kept = [p for p in self._kept if p != prefix] + [prefix]
        while len(self._kept) > self.max_to_keep:
            self._delete(self._kept.pop(0))
        self._write_state()
        return prefix

    def _delete(self, prefix):
        for f in tf.io.gfile.glob(prefix + ".*"):
            tf.io.gfile.remove(f)

    def _write_state(self):
        lines = [f'model_checkpoint_path: "{os.path.basename(self._kept[-1])}"']
        lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in self._kept]
        file_io.write_text_atomically(os.path.join(self.directory, STATE_FILE),
                                      "\n".join(lines) + "\n")

    def restore_latest(self):
        """Restores every variable from the newest bundle; returns its prefix or None."""
        latest = self.latest
        if latest is None:
            return None
        restore(self.variables, latest, ignore=(), strict_missing=True, log_each=False)
        return latest


def step_of(prefix):
    """The global step stored in a checkpoint, or None."""
    reader = tf.train.load_checkpoint(prefix)
    if reader.has_tensor("global_step"):
        return int(np.asarray(reader.get_tensor("global_step")))
    return None
