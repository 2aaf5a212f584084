"""Converts BERT weights between HuggingFace's layout and the original BERT checkpoint layout.

hf_to_bert (the default) reads a HuggingFace BERT directory (`config.json` plus `model.safetensors`
or `pytorch_model.bin`, sharded `*.index.json` too) and writes the released BERT layout:

  <output_dir>/bert_model.ckpt.index, bert_model.ckpt.data-00000-of-00001, bert_config.json,
  vocab.txt

so that `--init_checkpoint=<output_dir>/bert_model.ckpt --bert_config_file=<output_dir>/
bert_config.json --vocab_file=<output_dir>/vocab.txt` works with the project's scripts.

  python3 convert_hf_checkpoint.py --hf_model_dir=/path/to/hf_bert --output_dir=/tmp/bert

bert_to_hf reads an original-style checkpoint (a prefix, or a directory with a `checkpoint` state
file) plus its bert_config.json and writes `model.safetensors`, a HuggingFace `config.json` and
(with --vocab_file) `vocab.txt` and `tokenizer_config.json`:

  python3 convert_hf_checkpoint.py --direction=bert_to_hf --init_checkpoint=/tmp/bert/bert_model.ckpt
      --bert_config_file=/tmp/bert/bert_config.json --vocab_file=/tmp/bert/vocab.txt
      --output_dir=/tmp/hf_bert

Extra dependencies, imported only when needed (the project itself needs only tensorflow, numpy and
absl-py):
  * reading `.safetensors` and the whole bert_to_hf direction: `pip install safetensors`
  * reading `pytorch_model.bin`: `pip install torch`

Every tensor name is translated by the table `MAPPING` below; nothing is dropped silently: tensors
without a row are reported, missing or misshapen ones stop the conversion with their names.
An existing non-empty --output_dir is refused unless --overwrite is given.
"""

import errno
import json
import logging
import os
import re
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

import checkpoints
import common_flags
from errors import InputError
import file_io
import modeling

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "bert_model.ckpt"
BERT_CONFIG_NAME = "bert_config.json"
VOCAB_NAME = "vocab.txt"
HF_CONFIG_NAME = "config.json"
HF_SAFETENSORS_NAME = "model.safetensors"
HF_TORCH_NAME = "pytorch_model.bin"
HF_TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
HF_TOKENIZER_JSON_NAME = "tokenizer.json"


class ConversionError(InputError):
    """The weights or config cannot be converted; the message names every offending tensor."""


class MissingPackageError(InputError, ImportError):
    """The weights' format needs a package that is not installed; the message says which. An
    InputError, so that the command line reports it in one line, and an ImportError."""


# ---------------------------------------------------------------------------------------------------
# The name mapping: the only place that knows how HF names relate to the original ones.

# Transforms, each an explicit rule:
IDENTITY = "identity"    # the same array both ways (embeddings, biases, LayerNorm weight/bias <->
                         # gamma/beta, and the [L, H] output layers, which both layouts store [L, H])
TRANSPOSE = "transpose"  # torch nn.Linear.weight is [out, in]; the original dense kernel is [in, out]
TIED = "tied"            # an HF-only second name of another tensor (the MLM decoder is tied to the
                         # word embeddings, `decoder.bias` is `cls.predictions.bias`): never written,
                         # checked equal to the tensor of its original name (a warning if not), and
                         # used as that tensor only when its own HF name is absent
IGNORE = "ignore"        # HF buffers that are not weights (`embeddings.position_ids`): dropped


class Row(NamedTuple):
    """One mapping row. `{i}` stands for the layer index in both names.

    group: what the tensor belongs to (see GROUPS); hf: the HF name without the optional `bert.`
    prefix; original: the original checkpoint name; transform: one of the rules above; shape: the
    ORIGINAL layout's shape in config symbols (V vocab_size, H hidden_size, I intermediate_size,
    P max_position_embeddings, T type_vocab_size, L number of labels, found from the weights).
    """
    group: str
    hf: str
    original: str
    transform: str
    shape: tuple


_LAYER_HF = "encoder.layer.{i}."
_LAYER_ORIGINAL = "bert/encoder/layer_{i}/"

MAPPING = (
    # group        HF name                                  original name                                   transform  shape
    Row("embeddings", "embeddings.word_embeddings.weight", "bert/embeddings/word_embeddings", IDENTITY, ("V", "H")),
    Row("embeddings", "embeddings.position_embeddings.weight", "bert/embeddings/position_embeddings", IDENTITY, ("P", "H")),
    Row("embeddings", "embeddings.token_type_embeddings.weight", "bert/embeddings/token_type_embeddings", IDENTITY, ("T", "H")),
    Row("embeddings", "embeddings.LayerNorm.weight", "bert/embeddings/LayerNorm/gamma", IDENTITY, ("H",)),
    Row("embeddings", "embeddings.LayerNorm.bias", "bert/embeddings/LayerNorm/beta", IDENTITY, ("H",)),
    Row("embeddings", "embeddings.position_ids", None, IGNORE, None),
    Row("embeddings", "embeddings.token_type_ids", None, IGNORE, None),
    Row("encoder", _LAYER_HF + "attention.self.query.weight", _LAYER_ORIGINAL + "attention/self/query/kernel", TRANSPOSE, ("H", "H")),
    Row("encoder", _LAYER_HF + "attention.self.query.bias", _LAYER_ORIGINAL + "attention/self/query/bias", IDENTITY, ("H",)),
    Row("encoder", _LAYER_HF + "attention.self.key.weight", _LAYER_ORIGINAL + "attention/self/key/kernel", TRANSPOSE, ("H", "H")),
    Row("encoder", _LAYER_HF + "attention.self.key.bias", _LAYER_ORIGINAL + "attention/self/key/bias", IDENTITY, ("H",)),
    Row("encoder", _LAYER_HF + "attention.self.value.weight", _LAYER_ORIGINAL + "attention/self/value/kernel", TRANSPOSE, ("H", "H")),
    Row("encoder", _LAYER_HF + "attention.self.value.bias", _LAYER_ORIGINAL + "attention/self/value/bias", IDENTITY, ("H",)),
    Row("encoder", _LAYER_HF + "attention.output.dense.weight", _LAYER_ORIGINAL + "attention/output/dense/kernel", TRANSPOSE, ("H", "H")),
    Row("encoder", _LAYER_HF + "attention.output.dense.bias", _LAYER_ORIGINAL + "attention/output/dense/bias", IDENTITY, ("H",)),
    Row("encoder", _LAYER_HF + "attention.output.LayerNorm.weight", _LAYER_ORIGINAL + "attention/output/LayerNorm/gamma", IDENTITY, ("H",)),
    Row("encoder", _LAYER_HF + "attention.output.LayerNorm.bias", _LAYER_ORIGINAL + "attention/output/LayerNorm/beta", IDENTITY, ("H",)),
    Row("encoder", _LAYER_HF + "intermediate.dense.weight", _LAYER_ORIGINAL + "intermediate/dense/kernel", TRANSPOSE, ("H", "I")),
    Row("encoder", _LAYER_HF + "intermediate.dense.bias", _LAYER_ORIGINAL + "intermediate/dense/bias", IDENTITY, ("I",)),
    Row("encoder", _LAYER_HF + "output.dense.weight", _LAYER_ORIGINAL + "output/dense/kernel", TRANSPOSE, ("I", "H")),
    Row("encoder", _LAYER_HF + "output.dense.bias", _LAYER_ORIGINAL + "output/dense/bias", IDENTITY, ("H",)),
    Row("encoder", _LAYER_HF + "output.LayerNorm.weight", _LAYER_ORIGINAL + "output/LayerNorm/gamma", IDENTITY, ("H",)),
    Row("encoder", _LAYER_HF + "output.LayerNorm.bias", _LAYER_ORIGINAL + "output/LayerNorm/beta", IDENTITY, ("H",)),
    Row("pooler", "pooler.dense.weight", "bert/pooler/dense/kernel", TRANSPOSE, ("H", "H")),
    Row("pooler", "pooler.dense.bias", "bert/pooler/dense/bias", IDENTITY, ("H",)),
    Row("mlm", "cls.predictions.transform.dense.weight", "cls/predictions/transform/dense/kernel", TRANSPOSE, ("H", "H")),
    Row("mlm", "cls.predictions.transform.dense.bias", "cls/predictions/transform/dense/bias", IDENTITY, ("H",)),
    Row("mlm", "cls.predictions.transform.LayerNorm.weight", "cls/predictions/transform/LayerNorm/gamma", IDENTITY, ("H",)),
    Row("mlm", "cls.predictions.transform.LayerNorm.bias", "cls/predictions/transform/LayerNorm/beta", IDENTITY, ("H",)),
    Row("mlm", "cls.predictions.bias", "cls/predictions/output_bias", IDENTITY, ("V",)),
    Row("mlm", "cls.predictions.decoder.bias", "cls/predictions/output_bias", TIED, ("V",)),
    Row("mlm", "cls.predictions.decoder.weight", "bert/embeddings/word_embeddings", TIED, ("V", "H")),
    Row("nsp", "cls.seq_relationship.weight", "cls/seq_relationship/output_weights", IDENTITY, (2, "H")),
    Row("nsp", "cls.seq_relationship.bias", "cls/seq_relationship/output_bias", IDENTITY, (2,)),
    Row("classifier", "classifier.weight", "output_weights", IDENTITY, ("L", "H")),
    Row("classifier", "classifier.bias", "output_bias", IDENTITY, ("L",)),
    Row("squad", "qa_outputs.weight", "cls/squad/output_weights", IDENTITY, (2, "H")),
    Row("squad", "qa_outputs.bias", "cls/squad/output_bias", IDENTITY, (2,)),
)

# Groups whose HF names may carry the `bert.` prefix (present in BertForPreTraining and the other
# task models, absent in BertModel / sentence-transformers files).
PREFIXED_GROUPS = ("embeddings", "encoder", "pooler")
HF_PREFIX = "bert."
# Without these the encoder cannot run: their absence is an error. The other groups are all or
# nothing: a head with some of its tensors is an error, a head with none is simply absent.
REQUIRED_GROUPS = ("embeddings", "encoder")
HEAD_GROUPS = ("mlm", "nsp", "classifier", "squad")

# HF `architectures` written for the heads present (first match wins).
ARCHITECTURES = (
    ({"mlm", "nsp"}, "BertForPreTraining"),
    ({"mlm"}, "BertForMaskedLM"),
    ({"nsp"}, "BertForNextSentencePrediction"),
    ({"classifier"}, "BertForSequenceClassification"),
    ({"squad"}, "BertForQuestionAnswering"),
    (set(), "BertModel"),
)

# HF hidden_act -> bert_config.json hidden_act. HF "gelu" is the exact erf GELU, which is modeling's
# "gelu"; HF's tanh approximations are modeling's "gelu_new".
HF_TO_BERT_ACTIVATION = {
    "gelu": "gelu",
    "gelu_new": "gelu_new",
    "gelu_pytorch_tanh": "gelu_new",
    "gelu_fast": "gelu_new",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}
BERT_TO_HF_ACTIVATION = {
    "gelu": "gelu",
    "gelu_new": "gelu_new",
    "gelu_tanh": "gelu_new",
    "relu": "relu",
    "tanh": "tanh",
    "linear": "linear",
}

BERT_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size", "hidden_act", "hidden_dropout_prob",
                    "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
                    "initializer_range")
BERT_LIKE_MODEL_TYPES = ("bert",)


def _pattern(name):
    return re.compile("^" + re.escape(name).replace(re.escape("{i}"), r"(\d+)") + "$")


_HF_PATTERNS = [(_pattern(row.hf), row) for row in MAPPING]
_ORIGINAL_PATTERNS = [(_pattern(row.original), row) for row in MAPPING
                      if row.transform in (IDENTITY, TRANSPOSE)]


def _fill(name, layer):
    return name if layer is None else name.replace("{i}", str(layer))


def _match(patterns, name):
    """(row, layer index or None) for `name`, or (None, None)."""
    for pattern, row in patterns:
        m = pattern.match(name)
        if m:
            return row, (int(m.group(1)) if m.groups() else None)
    return None, None


def _expected_shape(row, config, labels=None):
    """The row's shape in the ORIGINAL layout, with config symbols replaced by sizes."""
    sizes = {"V": config.vocab_size, "H": config.hidden_size, "I": config.intermediate_size,
             "P": config.max_position_embeddings, "T": config.type_vocab_size, "L": labels}
    return tuple(sizes[s] if isinstance(s, str) else s for s in row.shape)


def _apply(row, array):
    """The row's transform, either way (a transpose is its own inverse)."""
    return np.ascontiguousarray(array.T) if row.transform == TRANSPOSE else array


def _required_names(config):
    """{original name: HF name} of every tensor of the required groups for `config`."""
    names = {}
    for row in MAPPING:
        if row.group in REQUIRED_GROUPS and row.transform in (IDENTITY, TRANSPOSE):
            layers = range(config.num_hidden_layers) if "{i}" in row.original else [None]
            names.update({_fill(row.original, i): "[bert.]" + _fill(row.hf, i) for i in layers})
    return names


def _group_names(group):
    """{original name: HF name} of a group without layers (the pooler and the heads)."""
    prefix = "[bert.]" if group in PREFIXED_GROUPS else ""
    return {row.original: prefix + row.hf for row in MAPPING
            if row.group == group and row.transform in (IDENTITY, TRANSPOSE)}


class Report:
    """What a conversion did: names converted, dropped, checked, unknown; warnings given."""

    def __init__(self):
        self.converted = []   # (source name, destination name)
        self.ignored = []     # source names dropped on purpose (buffers, optimizer slots)
        self.tied = []        # (HF name, original name) checked against the converted tensor
        self.unknown = []     # source names without a mapping row, reported and not converted
        self.warnings = []
        self.groups = set()   # groups present besides the embeddings and the encoder
        self.architecture = None
        self.do_lower_case = None

    def warn(self, message):
        self.warnings.append(message)
        logger.warning("%s", message)


def _layer_errors(name, layer, config):
    if layer is not None and layer >= config.num_hidden_layers:
        return [f"{name}: layer {layer} does not exist (num_hidden_layers is "
                f"{config.num_hidden_layers}; does the config belong to these weights?)"]
    return []


def _check_groups(present, config, errors, side):
    """Appends errors for missing required tensors and for partly present heads.

    `present`: the original names found. Returns the optional groups present.
    """
    def listing(names):
        return "".join(f"\n    {o}  (HF: {h})" for o, h in names.items())

    missing = {o: h for o, h in _required_names(config).items() if o not in present}
    if missing:
        errors.append(f"{len(missing)} required encoder weight(s) missing from the {side} "
                      "weights:" + listing(missing))
    groups = set()
    for group in ("pooler",) + HEAD_GROUPS:
        names = _group_names(group)
        absent = {o: h for o, h in names.items() if o not in present}
        if len(absent) < len(names):
            groups.add(group)
            if absent:
                errors.append(f"the {group} weights are incomplete in the {side} weights; "
                              "missing:" + listing(absent))
    return groups


def hf_to_original(hf_tensors, config, hf_config=None):
    """Maps {HF name: array} to {original name: array} for `config` (a modeling.BertConfig).

    Returns (original tensors, Report). Raises ConversionError naming every missing required
    tensor, every shape that does not fit the config and every incomplete head. HF names without a
    row in MAPPING are reported (warning) and not converted.
    """
    report = Report()
    errors = []
    matched, tied = _match_hf_names(hf_tensors, config, report, errors)
    _stand_in_for_absent_originals(matched, tied)
    original_tensors = _convert_matched(matched, config, report, errors)
    if not matched:
        raise ConversionError(
            f"no tensor name of the HF weights is a BERT weight name; is this a BERT model? "
            f"{len(hf_tensors)} names, e.g.: " + ", ".join(sorted(hf_tensors)[:10]))
    report.groups = _check_groups(matched, config, errors, "HF")
    if errors:
        raise ConversionError("cannot convert the HF weights:\n  " + "\n  ".join(errors))
    _check_tied_copies(matched, tied, report, hf_config or {})
    if report.unknown:
        report.warn(f"{len(report.unknown)} HF tensor(s) have no mapping and are NOT converted: "
                    + ", ".join(report.unknown))
    if "pooler" not in report.groups:
        report.warn("the HF weights have no pooler (pooler.dense.*): the checkpoint lacks "
                    "bert/pooler/dense/*, which models built from it initialise fresh")
    return original_tensors, report


def _match_hf_names(hf_tensors, config, report, errors):
    """Step 1 of hf_to_original: every HF name to its MAPPING row, without the optional `bert.`.

    Returns (matched, tied): {original name: (HF name, row, array)} for IDENTITY / TRANSPOSE rows,
    and [(HF name, row, layer, array)] for TIED rows. Names without a row and IGNORE rows go to
    `report`; two names for one tensor and layers the config lacks go to `errors`.
    """
    matched, tied = {}, []
    for hf_name in sorted(hf_tensors):
        array = hf_tensors[hf_name]
        name = hf_name
        if name.startswith(HF_PREFIX):
            row, _ = _match(_HF_PATTERNS, name[len(HF_PREFIX):])
            if row is not None and row.group in PREFIXED_GROUPS:
                name = name[len(HF_PREFIX):]
        row, layer = _match(_HF_PATTERNS, name)
        if row is None:
            report.unknown.append(hf_name)
            continue
        errors += _layer_errors(hf_name, layer, config)
        if row.transform == IGNORE:
            report.ignored.append(hf_name)
        elif row.transform == TIED:
            tied.append((hf_name, row, layer, array))
        else:
            original = _fill(row.original, layer)
            if original in matched:
                errors.append(f"{hf_name} and {matched[original][0]} both map to {original}")
                continue
            matched[original] = (hf_name, row, array)
    return matched, tied


def _stand_in_for_absent_originals(matched, tied):
    """Step 2: a tied name stands in for its original tensor only when that tensor's own name is
    absent; adds it to `matched` under the row of the tensor it stands in for."""
    for hf_name, row, layer, array in tied:
        original = _fill(row.original, layer)
        if original not in matched:
            logger.info("%s: %s is absent, using its tied copy %s", original, row.original, hf_name)
            primary = next(r for r in MAPPING
                           if r.original == row.original and r.transform in (IDENTITY, TRANSPOSE))
            matched[original] = (hf_name, primary, array)


def _convert_matched(matched, config, report, errors):
    """Step 3: {original name: float32 array in the original layout} of the matched tensors whose
    shapes (in the HF layout) fit the config; the others go to `errors`."""
    labels = None
    if "output_weights" in matched and np.ndim(matched["output_weights"][2]) == 2:
        labels = int(np.shape(matched["output_weights"][2])[0])
    original_tensors = {}
    for original, (hf_name, row, array) in sorted(matched.items()):
        expected = _expected_shape(row, config, labels)
        hf_expected = expected[::-1] if row.transform == TRANSPOSE else expected
        if tuple(array.shape) != hf_expected:
            errors.append(f"{hf_name}: shape {list(array.shape)}, expected {list(hf_expected)} "
                          f"for {original} from the config")
            continue
        original_tensors[original] = _apply(row, _float32(hf_name, array))
        report.converted.append((hf_name, original))
    return original_tensors


def _check_tied_copies(matched, tied, report, hf_config):
    """Step 4: tied copies must equal what was converted; one that does not is a warning (and is
    not converted)."""
    for hf_name, row, layer, array in tied:
        original = _fill(row.original, layer)
        report.tied.append((hf_name, original))
        if matched[original][0] == hf_name:
            continue
        converted = matched[original][2]
        if tuple(array.shape) != tuple(converted.shape) or not np.array_equal(array, converted):
            detail = ""
            if row.original == "bert/embeddings/word_embeddings":
                detail = (" (tie_word_embeddings is "
                          f"{hf_config.get('tie_word_embeddings', True)!r}); the original "
                          "MaskedLMHead always uses the word embeddings, so its logits will "
                          "differ from this HF model's")
            report.warn(f"{hf_name} is not equal to {matched[original][0]}, which it is tied to"
                        f"{detail}; {hf_name} is not converted")


def _float32(name, array):
    if array.dtype == np.float32:
        return array
    if np.issubdtype(array.dtype, np.floating) or array.dtype.name == "bfloat16":
        logger.info("%s: converting %s to float32", name, array.dtype)
        return array.astype(np.float32)
    raise ConversionError(f"{name}: dtype {array.dtype} is not a floating type")


def original_to_hf(original_tensors, config):
    """Maps {original name: array} to {HF name: array}.

    The `bert.` prefix is used when a head is present (the HF task models), left off otherwise
    (HF BertModel's own layout). Optimizer slots and global_step are dropped, unknown names are
    reported. Returns (HF tensors, Report); raises ConversionError as `hf_to_original` does.
    """
    report = Report()
    errors = []
    matched = {}  # original name -> (row, layer, array)
    for name in sorted(original_tensors):
        if any(p.match(name) for p in checkpoints.IGNORED_WHEN_INITIALIZING):
            report.ignored.append(name)
            continue
        row, layer = _match(_ORIGINAL_PATTERNS, name)
        if row is None:
            report.unknown.append(name)
            continue
        errors += _layer_errors(name, layer, config)
        matched[name] = (row, layer, original_tensors[name])
    labels = None
    if "output_weights" in matched and np.ndim(matched["output_weights"][2]) == 2:
        labels = int(np.shape(matched["output_weights"][2])[0])
    for name, (row, layer, array) in matched.items():
        expected = _expected_shape(row, config, labels)
        if tuple(array.shape) != expected:
            errors.append(f"{name}: shape {list(array.shape)}, expected {list(expected)} from the "
                          "config")
    if not matched:
        raise ConversionError(
            f"no tensor name of the checkpoint is an original BERT weight name; "
            f"{len(original_tensors)} names, e.g.: " + ", ".join(sorted(original_tensors)[:10]))
    report.groups = _check_groups(matched, config, errors, "original")
    if errors:
        raise ConversionError("cannot convert the original checkpoint:\n  " + "\n  ".join(errors))
    heads = report.groups & set(HEAD_GROUPS)
    prefix = HF_PREFIX if heads else ""
    hf_tensors = {}
    for name, (row, layer, array) in sorted(matched.items()):
        hf_name = (prefix if row.group in PREFIXED_GROUPS else "") + _fill(row.hf, layer)
        hf_tensors[hf_name] = _apply(row, np.asarray(array))
        report.converted.append((name, hf_name))
    report.architecture = next(arch for needed, arch in ARCHITECTURES if needed <= heads)
    covered = next(needed for needed, arch in ARCHITECTURES if needed <= heads)
    if heads - covered:
        report.warn(f"heads {sorted(heads - covered)} are written too, but {report.architecture} "
                    "does not load them")
    if report.unknown:
        report.warn(f"{len(report.unknown)} checkpoint tensor(s) have no mapping and are NOT "
                    "converted: " + ", ".join(report.unknown))
    if report.ignored:
        logger.info("dropped optimizer state / step: %s", ", ".join(report.ignored))
    return hf_tensors, report


# ---------------------------------------------------------------------------------------------------
# Configs


def bert_config_from_hf(hf_config, source="config.json"):
    """A modeling.BertConfig (the 11 original keys only) from an HF BERT config dict."""
    model_type = hf_config.get("model_type")
    architectures = hf_config.get("architectures") or []
    if model_type is None:
        if not architectures or not all(str(a).startswith("Bert") for a in architectures):
            raise ConversionError(f"{source}: no model_type and architectures {architectures} are "
                                  "not BERT ones; is this a BERT config?")
    elif model_type not in BERT_LIKE_MODEL_TYPES:
        raise ConversionError(f"{source}: model_type {model_type!r} is not BERT (expected one of "
                              f"{list(BERT_LIKE_MODEL_TYPES)}); other architectures name or lay "
                              "out their weights differently")
    position_type = hf_config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ConversionError(f"{source}: position_embedding_type {position_type!r} is not "
                              "supported; the original BERT has only absolute position embeddings")
    for key in ("is_decoder", "add_cross_attention"):
        if hf_config.get(key):
            raise ConversionError(f"{source}: {key} is true; only the bidirectional encoder "
                                  "without cross-attention can be converted")
    eps = hf_config.get("layer_norm_eps", modeling.LAYER_NORM_EPSILON)
    if not isinstance(eps, (int, float)) or not np.isclose(eps, modeling.LAYER_NORM_EPSILON,
                                                           rtol=1e-3, atol=0):
        raise ConversionError(f"{source}: layer_norm_eps {eps!r} differs from the original BERT's "
                              f"{modeling.LAYER_NORM_EPSILON}, which modeling.py always uses; the "
                              "converted model would compute different outputs")
    missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                           "intermediate_size") if k not in hf_config]
    if missing:
        raise ConversionError(f"{source}: missing key(s) {missing}")
    act = hf_config.get("hidden_act", "gelu")
    if not isinstance(act, str) or act not in HF_TO_BERT_ACTIVATION:
        raise ConversionError(f"{source}: hidden_act {act!r} has no equivalent in modeling.py "
                              f"(supported: {sorted(HF_TO_BERT_ACTIVATION)})")
    values = {key: hf_config.get(key, default) for key, default in
              {"vocab_size": None, **modeling.BertConfig._DEFAULTS}.items()}
    values["hidden_act"] = HF_TO_BERT_ACTIVATION[act]
    # HF writes type_vocab_size 2 by default, but an old config may leave it out: its default is 2.
    values["type_vocab_size"] = hf_config.get("type_vocab_size", 2)
    try:
        return modeling.BertConfig(**{k: values[k] for k in BERT_CONFIG_KEYS})
    except ValueError as e:
        raise ConversionError(f"{source}: {e}") from None


def hf_config_from_bert(config, architecture="BertModel", num_labels=None):
    """An HF config.json dict for `config` (a modeling.BertConfig)."""
    if config.hidden_act not in BERT_TO_HF_ACTIVATION:
        raise ConversionError(f"hidden_act {config.hidden_act!r} has no HF equivalent")
    if config.extra:
        logger.warning("bert_config.json keys not carried to config.json: %s",
                       ", ".join(sorted(config.extra)))
    hf = {
        "architectures": [architecture],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "hidden_act": BERT_TO_HF_ACTIVATION[config.hidden_act],
        "hidden_dropout_prob": config.hidden_dropout_prob,
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "max_position_embeddings": config.max_position_embeddings,
        "type_vocab_size": config.type_vocab_size,
        "initializer_range": config.initializer_range,
        "layer_norm_eps": modeling.LAYER_NORM_EPSILON,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
        "tie_word_embeddings": True,
    }
    if num_labels:
        hf["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
        hf["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    return hf


# ---------------------------------------------------------------------------------------------------
# Files


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ConversionError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None


def _import_safetensors_numpy():
    try:
        import safetensors.numpy  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise MissingPackageError("reading or writing .safetensors needs the safetensors "
                                  "package: pip install safetensors") from None
    return safetensors.numpy


def _load_safetensors(path):
    st = _import_safetensors_numpy()
    try:
        return dict(st.load_file(path))
    except (TypeError, KeyError, ValueError) as e:
        # numpy has no bfloat16; read such files through torch when it is there.
        try:
            import safetensors  # pylint: disable=import-outside-toplevel
            import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        except ImportError:
            raise ConversionError(f"{path}: cannot read with numpy ({e}); bfloat16 files need "
                                  "torch: pip install torch") from None
        with safetensors.safe_open(path, framework="pt") as f:
            return {k: _torch_to_numpy(f.get_tensor(k)) for k in f.keys()}


def _torch_to_numpy(t):
    import torch  # pylint: disable=import-outside-toplevel
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()


def _load_torch(path):
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise MissingPackageError(f"reading {os.path.basename(path)} needs PyTorch: pip install "
                                  "torch (or convert the model to model.safetensors)") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ConversionError(f"{path}: expected a state_dict (name -> tensor), got "
                              f"{type(state).__name__}")
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {k: _torch_to_numpy(v) for k, v in state.items() if hasattr(v, "detach")}


def load_hf_weights(path):
    """{name: numpy array} of an HF weights file: .safetensors, .bin/.pt, or a sharded .index.json."""
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, "HF weights file not found", path)
    if path.endswith(".index.json"):
        weight_map = _read_json(path).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ConversionError(f"{path}: no weight_map")
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(load_hf_weights(os.path.join(os.path.dirname(path), shard)))
        return tensors
    if path.endswith(".safetensors"):
        return _load_safetensors(path)
    if path.endswith((".bin", ".pt", ".pth")):
        return _load_torch(path)
    raise ConversionError(f"{path}: unknown weights format (expected .safetensors, .bin or a "
                          "sharded .index.json)")


def find_hf_weights(hf_model_dir):
    """The weights file of an HF model directory, safetensors preferred."""
    for name in (HF_SAFETENSORS_NAME, HF_SAFETENSORS_NAME + ".index.json", HF_TORCH_NAME,
                 HF_TORCH_NAME + ".index.json"):
        path = os.path.join(hf_model_dir, name)
        if os.path.isfile(path):
            return path
    if not os.path.isdir(hf_model_dir):
        raise FileNotFoundError(errno.ENOENT, "HF model directory not found", hf_model_dir)
    raise ConversionError(f"{hf_model_dir}: no {HF_SAFETENSORS_NAME} or {HF_TORCH_NAME} (found: "
                          f"{sorted(os.listdir(hf_model_dir))}); pass --hf_weights_file")


def _vocab_from_tokenizer_json(path):
    """The WordPiece vocabulary of an HF tokenizer.json, as lines ordered by id, or None."""
    model = _read_json(path).get("model") or {}
    vocab = model.get("vocab")
    if model.get("type") != "WordPiece" or not isinstance(vocab, dict):
        return None
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ConversionError(f"{path}: WordPiece ids are not 0..{len(by_id) - 1}")
    return "".join(token + "\n" for token, _ in by_id)


def _read_bytes(path):
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def _check_output_dir(output_dir, overwrite):
    """Refuses a non-empty `output_dir` unless `overwrite`; checked before any work is done."""
    if tf.io.gfile.exists(output_dir):
        if not tf.io.gfile.isdir(output_dir):
            raise ConversionError(f"--output_dir {output_dir} exists and is not a directory")
        if tf.io.gfile.listdir(output_dir) and not overwrite:
            raise ConversionError(f"--output_dir {output_dir} is not empty; pass --overwrite to "
                                  "replace the files this conversion writes")


def _vocab_size_check(vocab_text, config, report, source):
    lines = vocab_text.count("\n") + (0 if vocab_text.endswith("\n") or not vocab_text else 1)
    if lines != config.vocab_size:
        report.warn(f"{source} has {lines} entries but vocab_size is {config.vocab_size}")


def convert_hf_to_bert(output_dir, hf_model_dir=None, hf_weights_file=None, hf_config_file=None,
                       vocab_file=None, overwrite=False):
    """HF BERT -> `output_dir/{bert_model.ckpt.*, bert_config.json, vocab.txt}`. Returns a Report.

    Either `hf_model_dir`, or `hf_weights_file` with `hf_config_file` (a directory's files are the
    defaults for the other two). The vocabulary is `vocab_file`, else the HF directory's vocab.txt,
    else the WordPiece vocabulary of its tokenizer.json.
    """
    if hf_weights_file is None and hf_model_dir is None:
        raise ConversionError("pass --hf_model_dir, or --hf_weights_file with --hf_config_file")
    _check_output_dir(output_dir, overwrite)
    source_dir = hf_model_dir or os.path.dirname(hf_weights_file)
    weights_file = hf_weights_file or find_hf_weights(hf_model_dir)
    config_file = hf_config_file or os.path.join(source_dir, HF_CONFIG_NAME)
    if not os.path.isfile(config_file):
        raise FileNotFoundError(errno.ENOENT, "HF config not found (pass --hf_config_file)",
                                config_file)
    hf_config = _read_json(config_file)
    config = bert_config_from_hf(hf_config, source=config_file)

    vocab_text, vocab_source = None, None
    if vocab_file:
        vocab_text, vocab_source = _read_bytes(vocab_file).decode("utf-8"), vocab_file
    elif os.path.isfile(os.path.join(source_dir, VOCAB_NAME)):
        vocab_source = os.path.join(source_dir, VOCAB_NAME)
        vocab_text = _read_bytes(vocab_source).decode("utf-8")
    elif os.path.isfile(os.path.join(source_dir, HF_TOKENIZER_JSON_NAME)):
        vocab_source = os.path.join(source_dir, HF_TOKENIZER_JSON_NAME)
        vocab_text = _vocab_from_tokenizer_json(vocab_source)
    if vocab_text is None:
        raise ConversionError(f"no vocabulary: {source_dir} has no {VOCAB_NAME} (or WordPiece "
                              f"{HF_TOKENIZER_JSON_NAME}); pass --vocab_file")

    logger.info("reading %s", weights_file)
    original, report = hf_to_original(load_hf_weights(weights_file), config, hf_config)
    _vocab_size_check(vocab_text, config, report, vocab_source)
    tokenizer_config = os.path.join(source_dir, HF_TOKENIZER_CONFIG_NAME)
    if os.path.isfile(tokenizer_config):
        report.do_lower_case = _read_json(tokenizer_config).get("do_lower_case")

    _check_output_dir(output_dir, overwrite)
    tf.io.gfile.makedirs(output_dir)
    checkpoints.save(os.path.join(output_dir, CHECKPOINT_NAME), original)
    config.to_json_file(os.path.join(output_dir, BERT_CONFIG_NAME))
    file_io.write_text_atomically(os.path.join(output_dir, VOCAB_NAME), vocab_text)
    logger.info("wrote %d tensors (%s) to %s", len(original),
                ", ".join(["embeddings", "encoder"] + sorted(report.groups)), output_dir)
    if report.do_lower_case is not None:
        logger.info("the HF tokenizer has do_lower_case=%s: pass --do_lower_case=%s to the "
                    "scripts", report.do_lower_case, report.do_lower_case)
    return report


def convert_bert_to_hf(init_checkpoint, bert_config_file, output_dir, vocab_file=None,
                       do_lower_case=True, overwrite=False):
    """Original checkpoint -> `output_dir/{model.safetensors, config.json[, vocab.txt,
    tokenizer_config.json]}`. Returns a Report."""
    st = _import_safetensors_numpy()
    _check_output_dir(output_dir, overwrite)
    config = modeling.BertConfig.from_json_file(bert_config_file)
    original = checkpoints.read(init_checkpoint)
    hf_tensors, report = original_to_hf(original, config)
    labels = None
    if "classifier" in report.groups:
        labels = int(original["output_weights"].shape[0])
    hf_config = hf_config_from_bert(config, report.architecture, labels)
    vocab_text = _read_bytes(vocab_file).decode("utf-8") if vocab_file else None
    if vocab_text is not None:
        _vocab_size_check(vocab_text, config, report, vocab_file)

    _check_output_dir(output_dir, overwrite)
    tf.io.gfile.makedirs(output_dir)
    with file_io.atomic_open(os.path.join(output_dir, HF_SAFETENSORS_NAME), "wb") as f:
        f.write(st.save(hf_tensors, metadata={"format": "pt"}))
    file_io.write_text_atomically(os.path.join(output_dir, HF_CONFIG_NAME),
                                  json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
    if vocab_text is not None:
        file_io.write_text_atomically(os.path.join(output_dir, VOCAB_NAME), vocab_text)
        tokenizer = {"tokenizer_class": "BertTokenizer", "do_lower_case": bool(do_lower_case),
                     "model_max_length": config.max_position_embeddings}
        file_io.write_text_atomically(os.path.join(output_dir, HF_TOKENIZER_CONFIG_NAME),
                                      json.dumps(tokenizer, indent=2, sort_keys=True) + "\n")
    else:
        logger.warning("no --vocab_file: %s has no vocab.txt", output_dir)
    logger.info("wrote %d tensors as %s to %s", len(hf_tensors), report.architecture, output_dir)
    return report


# ---------------------------------------------------------------------------------------------------
# Command line

FLAGS = flags.FLAGS


flags.DEFINE_enum("direction", "hf_to_bert", ["hf_to_bert", "bert_to_hf"],
                  "hf_to_bert: HuggingFace directory -> original checkpoint, bert_config.json, "
                  "vocab.txt. bert_to_hf: the reverse (needs `pip install safetensors`).")
flags.DEFINE_string("hf_model_dir", None,
                    "hf_to_bert: HuggingFace BERT directory with config.json and model.safetensors "
                    "(needs `pip install safetensors`) or pytorch_model.bin (needs torch).")
flags.DEFINE_string("hf_weights_file", None,
                    "hf_to_bert: one HF weights file (.safetensors, .bin, or a sharded "
                    ".index.json) instead of --hf_model_dir.")
flags.DEFINE_string("hf_config_file", None,
                    "hf_to_bert: the HF config.json (default: beside the weights).")
flags.DEFINE_bool("overwrite", False, "Write into a non-empty --output_dir, replacing the files "
                  "this conversion writes.")
common_flags.define_output_dir("Directory to write the converted model to.")
# bert_to_hf reads --init_checkpoint and --bert_config_file; --vocab_file is copied either way
# (hf_to_bert default: the HF directory's vocab.txt, else its tokenizer.json); --do_lower_case goes
# into tokenizer_config.json with --vocab_file.
common_flags.define_checkpoint_flags()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    report = _run()
    for warning in report.warnings:
        print(f"WARNING: {warning}")
    return 0


def _run():
    if FLAGS.direction == "hf_to_bert":
        if not FLAGS.hf_model_dir and not FLAGS.hf_weights_file:
            raise app.UsageError("hf_to_bert needs --hf_model_dir or --hf_weights_file")
        report = convert_hf_to_bert(FLAGS.output_dir, hf_model_dir=FLAGS.hf_model_dir,
                                    hf_weights_file=FLAGS.hf_weights_file,
                                    hf_config_file=FLAGS.hf_config_file,
                                    vocab_file=FLAGS.vocab_file, overwrite=FLAGS.overwrite)
        print(f"Wrote {os.path.join(FLAGS.output_dir, CHECKPOINT_NAME)} ({len(report.converted)} "
              f"tensors), {BERT_CONFIG_NAME} and {VOCAB_NAME} to {FLAGS.output_dir}")
    else:
        if not FLAGS.init_checkpoint or not FLAGS.bert_config_file:
            raise app.UsageError("bert_to_hf needs --init_checkpoint and --bert_config_file")
        report = convert_bert_to_hf(FLAGS.init_checkpoint, FLAGS.bert_config_file,
                                    FLAGS.output_dir, vocab_file=FLAGS.vocab_file,
                                    do_lower_case=FLAGS.do_lower_case, overwrite=FLAGS.overwrite)
        print(f"Wrote {HF_SAFETENSORS_NAME} ({len(report.converted)} tensors, "
              f"{report.architecture}) and {HF_CONFIG_NAME} to {FLAGS.output_dir}")
    return report


if __name__ == "__main__":
    common_flags.run(main)
