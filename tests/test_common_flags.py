"""common_flags: each script's defaults hold in a process that imported several scripts, and the
definitions one process cannot hold are errors when they are made."""
import os
import re
import subprocess
import sys

import pytest
from absl import flags
from absl.testing import flagsaver

import common_flags
import run_classifier
import run_squad
from script_main import run_script_main
from test_modeling import tiny_config

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def define_in(script, source):
    """Runs `source` as the module `script` runs its definitions at import time."""
    exec(compile(source, f"{script}.py", "exec"), {"__name__": script})  # pylint: disable=exec-used


def parse(*args):
    FLAGS.unparse_flags()
    FLAGS(["prog", *args])


# -- Each script's defaults -----------------------------------------------------------------------

def sequence_length_seen_by(module, tmp_path, **flag_values):
    """The --max_seq_length module.main() runs with: its check against a model trained up to 64
    positions fails and names it."""
    config = tmp_path / "bert_config.json"
    tiny_config(max_position_embeddings=64).to_json_file(str(config))
    with pytest.raises(ValueError, match="Cannot use sequence length") as error:
        run_script_main(module, vocab_file=tmp_path / "vocab.txt", bert_config_file=config,
                        output_dir=tmp_path / module.__name__, **flag_values)
    return int(re.search(r"sequence length (\d+) because", str(error.value)).group(1))


def test_squad_and_classifier_each_run_with_their_own_default_in_one_process(tmp_path):
    squad = dict(do_predict="true", predict_file=tmp_path / "dev.json")
    classifier = dict(task_name="sst-2", do_train="true", data_dir=tmp_path)
    # Both scripts are imported here; absl holds the first definition of --max_seq_length.
    assert sequence_length_seen_by(run_squad, tmp_path, **squad) == 384
    assert sequence_length_seen_by(run_classifier, tmp_path, **classifier) == 128
    assert sequence_length_seen_by(run_squad, tmp_path, **squad) == 384
    assert sequence_length_seen_by(run_squad, tmp_path, max_seq_length=100, **squad) == 100
    assert sequence_length_seen_by(run_classifier, tmp_path, max_seq_length=96,
                                   **classifier) == 96


def test_run_squad_help_shows_its_flags_with_its_default():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "run_squad.py"), "--help"],
                            capture_output=True, text=True, check=False, cwd=ROOT)  # absl: exit 1
    assert re.search(r"--max_seq_length: The maximum total input sequence length[^-]*"
                     r"\(default: '384'\)", result.stdout), result.stdout[-2000:]
    assert "--doc_stride" in result.stdout and "--predict_file" in result.stdout


def test_a_script_gets_its_default_and_help_back_and_given_values_are_kept():
    define_in("script_a", "import common_flags\n"
                          "common_flags.DEFINE_integer('cf_width', 3, 'The width of a.')")
    define_in("script_b", "import common_flags\n"
                          "common_flags.DEFINE_integer('cf_width', 7, 'The width of b.')")
    with flagsaver.flagsaver():
        parse()
        assert FLAGS.cf_width == 3  # absl holds the first definition
        common_flags.apply_script_flags("script_b")
        assert (FLAGS.cf_width, FLAGS["cf_width"].help) == (7, "The width of b.")
        common_flags.apply_script_flags("script_a")
        assert (FLAGS.cf_width, FLAGS["cf_width"].help) == (3, "The width of a.")
        parse("--cf_width=5")
        common_flags.apply_script_flags("script_b")
        assert FLAGS.cf_width == 5  # given on the command line
        FLAGS.cf_width = 9
        common_flags.apply_script_flags("script_a")
        assert FLAGS.cf_width == 9  # set in code


# -- Definitions one process cannot hold ----------------------------------------------------------

def test_another_type_for_a_defined_name_is_an_error_and_defines_nothing():
    help_text = FLAGS["max_seq_length"].help
    with pytest.raises(common_flags.FlagConflictError, match=r"script_c defines --max_seq_length"):
        define_in("script_c", "import common_flags\n"
                              f"common_flags.DEFINE_string('max_seq_length', '128', {help_text!r})")
    with pytest.raises(common_flags.FlagConflictError, match=r"--precision"):
        define_in("script_c", "import common_flags\n"
                              "common_flags.DEFINE_enum('precision', 'float32', "
                              "['float32', 'float16'], 'Precision.')")
    with flagsaver.flagsaver():
        parse()
        common_flags.apply_script_flags("script_c")  # nothing of script_c was recorded
        assert FLAGS.max_seq_length == FLAGS["max_seq_length"].default
        assert isinstance(FLAGS.max_seq_length, int)
        assert FLAGS["precision"].parser.enum_values == ["float32", "bfloat16"]


def test_a_script_defining_a_name_twice_differently_is_an_error():
    define = "import common_flags\ncommon_flags.DEFINE_integer('cf_depth', {}, {!r})\n"
    define_in("script_d", define.format(1, "The depth.") * 2)  # the same twice is fine
    with pytest.raises(common_flags.FlagConflictError, match="script_d defines --cf_depth twice"):
        define_in("script_d", define.format(1, "The depth of d."))
    with pytest.raises(common_flags.FlagConflictError, match="script_d defines --cf_depth twice"):
        define_in("script_d", define.format(2, "The depth."))
    # A copy of a shared definition whose help has drifted (extract_features.py had one).
    with pytest.raises(common_flags.FlagConflictError,
                       match="script_e defines --distribution_strategy twice"):
        define_in("script_e", "import common_flags, training\n"
                              "common_flags.define_runner_flags()\n"
                              "common_flags.DEFINE_enum('distribution_strategy', 'auto', "
                              "training.STRATEGIES, 'tf.distribute strategy.')")
