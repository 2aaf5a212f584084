"""One error path for every command line (errors.py, common_flags.run): bad input gives one
`ERROR:` line on stderr naming the file, line or flag, exit status 1 and no traceback; a bug keeps
its traceback.

Most tests run a script's main() in this process as its command line does
(common_flags.run_main); one subprocess per script checks the real command line.
"""
import errno
import os
import pickle
import re
import subprocess
import sys
import types

import pytest
import tensorflow as tf
from absl import flags

import checkpoints
import classifier_data
import common_flags
import convert_hf_checkpoint
import create_pretraining_data
import create_vocab
import errors
import file_io
import run_classifier
import run_ner
import run_pretraining
import run_squad
import soft_labels
import squad_data
import tokenization
from script_main import error_line, run_script_command
from test_modeling import tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ("run_pretraining.py", "run_classifier.py", "run_squad.py", "run_ner.py",
           "create_pretraining_data.py", "create_vocab.py", "extract_features.py",
           "convert_hf_checkpoint.py", "demo.py", "export_saved_model.py",
           "run_classifier_with_tfhub.py", "sweep.py")
WORDS = "the a cat dog sat ran on under mat tree and then".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."] + WORDS
MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
GOOD_MRPC_ROW = "1\t1\t2\tthe cat sat on the mat .\ta dog ran under the tree .\n"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """vocab.txt and a bert_config.json trained up to 64 positions (no checkpoint)."""
    root = tmp_path_factory.mktemp("model")
    (root / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tiny_config(vocab_size=len(VOCAB), max_position_embeddings=64).to_json_file(
        str(root / "bert_config.json"))
    return types.SimpleNamespace(vocab_file=str(root / "vocab.txt"),
                                 bert_config_file=str(root / "bert_config.json"))


def model_flags(model, output_dir, **overrides):
    return dict(vocab_file=model.vocab_file, bert_config_file=model.bert_config_file,
                output_dir=output_dir, **overrides)


def command_error(capsys, module, **flag_values):
    """The ERROR line of module.main() run as its command line runs it, checking exit status 1
    and that nothing else was reported as an error or printed a traceback."""
    assert run_script_command(module, **flag_values) == 1
    return error_line(*capsys.readouterr())


def write_mrpc(directory, rows):
    os.makedirs(directory, exist_ok=True)
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(MRPC_HEADER + "".join(rows))
    return str(directory)


def write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


# -- What counts as an expected error ---------------------------------------------------------------

def test_expected_errors_are_one_line_naming_the_file_and_other_errors_are_not(tmp_path):
    message = common_flags.error_message
    assert message(errors.InputError("--x=3: must be at most 2")) == "--x=3: must be at most 2"
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError) as error:
        open(missing, encoding="utf-8")
    assert message(error.value) == f"No such file or directory: {missing}"
    with pytest.raises(IsADirectoryError) as error:
        open(tmp_path, encoding="utf-8")
    assert message(error.value) == f"Is a directory: {tmp_path}"
    with pytest.raises(tf.errors.NotFoundError) as error:
        tf.io.gfile.GFile(missing).read()
    assert missing in message(error.value)
    assert message(flags.IllegalFlagValueError("flag --x=y: not an int")) == \
        "flag --x=y: not an int"
    # Not expected: they keep their traceback.
    for bug in (KeyError("x"), RuntimeError("boom"), ValueError("a programming error"),
                OSError(errno.ENOSPC, "No space left on device"),   # names no file
                tf.errors.InvalidArgumentError(None, None, "shapes differ")):
        assert message(bug) is None, bug


def test_the_project_error_classes_are_input_errors_and_value_errors():
    for cls in (checkpoints.CheckpointError, classifier_data.DataError, squad_data.SquadError,
                soft_labels.SoftLabelsError, file_io.InputFileError, tokenization.VocabLookupError,
                create_vocab.VocabSizeError, convert_hf_checkpoint.ConversionError,
                convert_hf_checkpoint.MissingPackageError):
        assert issubclass(cls, errors.InputError) and issubclass(cls, ValueError), cls
    assert issubclass(tokenization.VocabLookupError, KeyError)
    assert issubclass(convert_hf_checkpoint.MissingPackageError, ImportError)
    assert not issubclass(common_flags.FlagConflictError, errors.InputError)  # a script's bug


def test_input_errors_survive_pickling_whole():
    """As an error raised in a worker process (create_pretraining_data.py) is sent back."""
    vocab_size = create_vocab.VocabSizeError("--vocab_size=10 is too small")
    vocab_size.required = 12
    cases = [
        (file_io.InputFileError("--input_file", "x/*.txt", "matches no file"),
         dict(flag="--input_file", pattern="x/*.txt")),
        (classifier_data.DataError("2 columns, expected 5", "train.tsv", 3),
         dict(path="train.tsv", line=3)),
        (squad_data.SquadError("missing 'id'", "dev.json", where="article 1"),
         dict(path="dev.json", qas_id=None)),
        (vocab_size, dict(required=12)),
        (tokenization.VocabLookupError("'[CLS]' is not in the vocabulary"), {}),
        (checkpoints.CheckpointError("x.ckpt: no checkpoint found"), {}),
        (convert_hf_checkpoint.MissingPackageError("pip install safetensors"), {}),
        (errors.InputError("--layers is empty"), {}),
    ]
    for error, attributes in cases:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error), error
        for name, value in attributes.items():
            assert getattr(copy, name) == value, (error, name)
    assert str(cases[0][0]) == "--input_file: 'x/*.txt' matches no file"


# -- The entry point --------------------------------------------------------------------------------

@pytest.mark.parametrize("bug", [KeyError("x"), RuntimeError("boom"),
                                 ValueError("a programming error"),
                                 OSError(errno.ENOSPC, "No space left on device")])
def test_an_unexpected_exception_propagates_with_its_traceback(bug, capsys):
    def main(argv):
        raise bug

    with pytest.raises(type(bug)) as raised:
        common_flags.run_main(main, ["script.py"])
    assert raised.value is bug
    assert "ERROR:" not in capsys.readouterr().err


def test_main_s_exit_status_is_kept(capsys):
    assert common_flags.run_main(lambda argv: 0, ["demo.py"]) == 0
    assert common_flags.run_main(lambda argv: 1, ["demo.py"]) == 1   # demo.py's comparisons
    assert capsys.readouterr().err == ""


def test_the_command_line_keeps_the_traceback_of_a_bug(tmp_path):
    code = ("import common_flags\n"
            "def main(argv):\n"
            "    raise KeyError('a bug')\n"
            "common_flags.run(main)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=600, check=False)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KeyError: 'a bug'" in result.stderr
    assert "ERROR:" not in result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_ends_with_the_one_entry_point(script):
    with open(os.path.join(ROOT, script), encoding="utf-8") as f:
        source = f.read()
    main_block = source[source.index('if __name__ == "__main__":'):]
    # (create_pretraining_data.py passes Beam's options on: common_flags.run(main, ...=True))
    assert re.search(r"common_flags\.run\(main[,)]", main_block), script
    assert "app.run(" not in source and "SystemExit" not in source, script
    assert "apply_script_flags" not in source, script   # run_main applies them


# -- The list, in this process ------------------------------------------------------------

def test_a_glue_row_with_too_few_columns_names_file_and_line(model, tmp_path, capsys):
    data_dir = write_mrpc(tmp_path / "mrpc", [GOOD_MRPC_ROW, "0\t3\n"])
    line = command_error(capsys, run_classifier, task_name="MRPC", do_train="true",
                         data_dir=data_dir, max_seq_length=32,
                         **model_flags(model, tmp_path / "out"))
    assert line.startswith(f"ERROR: {os.path.join(data_dir, 'train.tsv')}:3: 2 columns, "
                           "expected 5"), line


def test_an_unknown_task_is_named(model, tmp_path, capsys):
    line = command_error(capsys, run_classifier, task_name="nope", do_train="true",
                         data_dir=tmp_path, max_seq_length=32,
                         **model_flags(model, tmp_path / "out"))
    assert line.startswith("ERROR: unknown task 'nope'; known tasks: cola, sst-2"), line


def test_a_missing_checkpoint_is_named(model, tmp_path, capsys):
    data_dir = write_mrpc(tmp_path / "mrpc", [GOOD_MRPC_ROW] * 2)
    missing = str(tmp_path / "missing" / "bert_model.ckpt")
    line = command_error(capsys, run_classifier, task_name="MRPC", do_eval="true",
                         data_dir=data_dir, max_seq_length=32, init_checkpoint=missing,
                         **model_flags(model, tmp_path / "out"))
    assert line.startswith(f"ERROR: {missing}: no checkpoint found"), line


def test_max_seq_length_above_max_position_embeddings_names_the_flag_and_config(
        model, tmp_path, capsys):
    predict_file = write_text(tmp_path / "dev.json", '{"version": "v2.0", "data": []}')
    # run_squad.py's own default, 384, whichever script defined --max_seq_length first (here
    # run_classifier.py, 128: run_main applies the script's defaults).
    line = command_error(capsys, run_squad, do_predict="true", predict_file=predict_file,
                         **model_flags(model, tmp_path / "out"))
    assert "--max_seq_length=384; max_position_embeddings in " + model.bert_config_file in line
    assert line.startswith("ERROR: Cannot use sequence length 384 because the BERT model was "
                           "only trained up to sequence length 64"), line


def pretraining_data_flags(tmp_path, **overrides):
    corpus = write_text(tmp_path / "corpus.txt", "the cat sat on the mat .\nthe dog ran .\n\n"
                        "a dog sat under the tree .\nthen the cat ran .\n")
    return dict(dict(input_file=corpus, output_file=str(tmp_path / "out.tfrecord"),
                     vocab_file=write_text(tmp_path / "vocab.txt", "\n".join(VOCAB) + "\n"),
                     max_seq_length=32, max_predictions_per_seq=5, num_workers=1),
                **overrides)


@pytest.mark.parametrize("flag, content, expected", [
    ("vocab_file", "", "Vocabulary file {path} is empty"),
    ("vocab_file", None, "No such file or directory: {path}"),
    ("input_file", "", "no instances: {path} holds no text"),
    ("input_file", None, "--input_file: '{path}' does not exist"),
])
def test_an_empty_or_missing_vocabulary_or_input_is_named(flag, content, expected, tmp_path,
                                                          capsys):
    path = str(tmp_path / f"bad_{flag}.txt")
    if content is not None:
        write_text(path, content)
    line = command_error(capsys, create_pretraining_data,
                         **pretraining_data_flags(tmp_path, **{flag: path}))
    assert line == "ERROR: " + expected.format(path=path)
    assert not os.path.exists(tmp_path / "out.tfrecord")


@pytest.mark.parametrize("case", ["not utf-8", "no file", "unknown runner"])
def test_create_pretraining_data_on_beam_names_the_bad_file_or_flag(case, tmp_path, capsys):
    """--runner: a worker's error reaches the command line as one ERROR line; nothing is left
    under the final name, nor any temporary directory."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the cat sat .\n\nthe \xff dog ran .\n")
    pattern = str(tmp_path / "nothing-*.txt")
    corpus = pretraining_data_flags(tmp_path)["input_file"]
    input_file, runner, expected = {
        "not utf-8": (f"{corpus},{bad}", "DirectRunner",
                      f"{bad} line 3, column 5: not valid UTF-8 (byte 0xff); the input must be "
                      "UTF-8 text"),
        "no file": (pattern, "DirectRunner", f"--input_file: {pattern!r} matches no file"),
        "unknown runner": (corpus, "NoSuchRunner", "--runner=NoSuchRunner: Unexpected pipeline "
                           "runner: NoSuchRunner"),
    }[case]
    line = command_error(capsys, create_pretraining_data, **pretraining_data_flags(
        tmp_path, input_file=input_file, runner=runner))
    assert line.startswith("ERROR: " + expected), line
    assert sorted(os.listdir(tmp_path)) == ["bad.txt", "corpus.txt", "vocab.txt"]


@pytest.mark.parametrize("case", ["misspelt flag", "not utf-8 on beam"])
def test_create_pretraining_data_command_line_with_beam_options(case, tmp_path):
    """The real command line, whose unknown flags are Beam's pipeline options: without --runner
    a misspelt flag is an error (as absl's parsing made it), not silently ignored; with it, a
    worker's error is one ERROR line, without the traceback Beam would log."""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the cat sat .\n\nthe \xff dog ran .\n")
    flag_values, expected = {
        "misspelt flag": (dict(max_seq_lenght=32), "unknown flags or arguments: "
                          "--max_seq_lenght=32 (Beam's pipeline options need --runner)"),
        "not utf-8 on beam": (dict(input_file=bad, runner="DirectRunner",
                                   direct_running_mode="in_memory"),
                              f"{bad} line 3, column 5: not valid UTF-8"),
    }[case]
    flag_values = pretraining_data_flags(tmp_path, **flag_values)
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "create_pretraining_data.py")]
        + [f"--{name}={value}" for name, value in flag_values.items()],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert error_line(result.stdout, result.stderr).startswith("ERROR: " + expected)
    assert sorted(os.listdir(tmp_path)) == ["bad.txt", "corpus.txt", "vocab.txt"]


def test_truncated_squad_json_names_file_line_and_column(model, tmp_path, capsys):
    truncated = write_text(tmp_path / "dev.json",
                           '{"version": "v2.0",\n "data": [{"title": "x", "paragraphs": [')
    line = command_error(capsys, run_squad, do_predict="true", predict_file=truncated,
                         max_seq_length=64, max_query_length=16, doc_stride=16,
                         **model_flags(model, tmp_path / "out"))
    assert re.fullmatch(f"ERROR: {re.escape(truncated)}: not valid JSON: .*: line 2, column "
                        r"\d+", line), line


def test_an_input_glob_matching_nothing_names_the_flag_and_the_pattern(model, tmp_path, capsys):
    pattern = str(tmp_path / "nothing-*.tfrecord")
    line = command_error(capsys, run_pretraining, input_file=pattern, do_train="true",
                         max_seq_length=32, **model_flags(model, tmp_path / "out"))
    assert line == f"ERROR: --input_file: {pattern!r} matches no file"


@pytest.mark.parametrize("dev, expected", [
    ("the O\ncat B-ANIMAL\n", "{dev}:2: tag 'B-ANIMAL' is not in the tag set of the model (O)"),
    ("", "{dev}: no sentences (the file is empty)"),
])
def test_a_tagging_file_with_a_foreign_tag_or_nothing_in_it_is_named(model, tmp_path, capsys,
                                                                     dev, expected):
    write_text(tmp_path / "train.txt", "the O\ncat O\n")
    path = write_text(tmp_path / "dev.txt", dev)
    line = command_error(capsys, run_ner, do_train="true", do_eval="true", data_dir=tmp_path,
                         max_seq_length=32, **model_flags(model, tmp_path / "out"))
    assert line == "ERROR: " + expected.format(dev=path)


# -- The real command lines: one bad input per script ---------------------------------------------

def corpus_text(num_documents):
    """Documents of a few sentences, separated by blank lines."""
    return "\n".join(f"the cat sat on mat {i} .\nthen the dog ran under the tree .\n"
                     for i in range(num_documents))


def bad_inputs(model, tmp_path):
    """{script: (flags, what the ERROR line must contain)}: inputs that fail before any model
    is built."""
    mrpc = write_mrpc(tmp_path / "mrpc", [GOOD_MRPC_ROW, "0\t3\n"])
    conll = tmp_path / "conll"
    conll.mkdir()
    write_text(conll / "train.txt", "-DOCSTART- -X- -X- O\n\nthe DT B-NP O\ncat NN I-NP\n")
    good = write_text(tmp_path / "good.txt", corpus_text(300))   # ~15 KB: several blocks
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"the cat sat .\n\nthe \xff dog ran .\n")
    nothing = str(tmp_path / "nothing-*.txt")
    missing_dev = str(tmp_path / "missing-dev.json")
    missing_checkpoint = str(tmp_path / "nothing.ckpt")
    missing_hf = str(tmp_path / "no-hf-model")
    missing_corpus = str(tmp_path / "no-corpus.txt")
    missing_hub = str(tmp_path / "no-encoder")
    model_files = dict(vocab_file=model.vocab_file, bert_config_file=model.bert_config_file)
    return {
        "run_pretraining.py": (dict(input_file=good, output_dir=tmp_path / "pretraining",
                                    do_train="true", max_seq_length=128,
                                    bert_config_file=model.bert_config_file),
                               ["--max_seq_length=128", model.bert_config_file]),
        "run_classifier.py": (dict(task_name="MRPC", do_train="true", data_dir=mrpc,
                                   output_dir=tmp_path / "classifier", max_seq_length=32,
                                   **model_files),
                              [os.path.join(mrpc, "train.tsv") + ":3: 2 columns"]),
        "run_ner.py": (dict(do_train="true", data_dir=conll, output_dir=tmp_path / "ner",
                            max_seq_length=32, **model_files),
                       [os.path.join(conll, "train.txt") + ":4: 3 columns, expected 4 (as on "
                        "line 3)"]),
        "run_squad.py": (dict(do_predict="true", predict_file=missing_dev, max_seq_length=64,
                              max_query_length=16, output_dir=tmp_path / "squad", **model_files),
                         [f"No such file or directory: {missing_dev}"]),
        "create_pretraining_data.py": (dict(input_file=f"{good},{bad}",
                                            output_file=tmp_path / "records" / "out.tfrecord",
                                            vocab_file=model.vocab_file, max_seq_length=32,
                                            max_predictions_per_seq=5, num_workers=2,
                                            block_size_mb=0.002),
                                       [f"{bad} line 3, column 5: not valid UTF-8"]),
        "create_vocab.py": (dict(input_file=nothing, output_file=tmp_path / "vocab.txt"),
                            [f"--input_file: {nothing!r} matches no file"]),
        "extract_features.py": (dict(input_file=good, output_file=tmp_path / "features.jsonl",
                                     init_checkpoint=missing_checkpoint, **model_files),
                                [f"{missing_checkpoint}: no checkpoint found"]),
        "convert_hf_checkpoint.py": (dict(hf_model_dir=missing_hf,
                                          output_dir=tmp_path / "converted"),
                                     [f"HF model directory not found: {missing_hf}"]),
        "demo.py": (dict(corpus=missing_corpus, output_dir=tmp_path / "demo"),
                    [f"No such file or directory: {missing_corpus}"]),
        "export_saved_model.py": (dict(export_type="classifier", init_checkpoint=missing_checkpoint,
                                       export_dir=tmp_path / "export", **model_files),
                                  [f"{missing_checkpoint}: no checkpoint found"]),
        "run_classifier_with_tfhub.py": (dict(task_name="MRPC", do_train="true", data_dir=mrpc,
                                              output_dir=tmp_path / "tfhub",
                                              bert_hub_module_handle=missing_hub),
                                         [f"--bert_hub_module_handle={missing_hub}: no "
                                          "saved_model.pb there"]),
        "sweep.py": (dict(script="run_nothing.py", output_dir=tmp_path / "sweep"),
                     ["--script='run_nothing.py': the sweep runs one of run_classifier.py"]),
    }


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_command_line_prints_one_error_line_for_bad_input(script, model, tmp_path):
    flag_values, expected = bad_inputs(model, tmp_path)[script]
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, script)]
        + [f"--{name}={value}" for name, value in flag_values.items()],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 1, result.stderr[-3000:]
    line = error_line(result.stdout, result.stderr)
    for part in expected:
        assert part in line, line
    if script == "create_pretraining_data.py":
        # The first block's records were written (its examples are logged as they are) under a
        # temporary name before bad.txt failed in a worker: nothing is left under the final name,
        # nor any temporary file.
        assert "*** Example ***" in result.stderr
        assert os.listdir(tmp_path / "records") == []
