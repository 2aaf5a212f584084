"""file_io.py: the one pattern expander (local files and, through tf.io.gfile, remote ones),
atomic writes, and that neither imports TensorFlow for local paths."""
import os
import subprocess
import sys

import pytest

import file_io

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write(path, text="text\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def expand(patterns, flag="--input_file"):
    return file_io.expand_patterns(patterns, flag=flag)


# -- expand_patterns ------------------------------------------------------------------------------

def test_pattern_order_sorted_within_a_glob_each_file_once(tmp_path):
    b = _write(tmp_path / "b.txt")
    a = _write(tmp_path / "a.txt")
    _write(tmp_path / "c.md")
    pattern = str(tmp_path / "*.txt")
    assert expand(pattern) == [a, b]  # sorted, other extensions left out
    # Blank items and spaces around commas are ignored; a file already listed is not again.
    assert expand(f" {b} ,{pattern},") == [b, a]
    assert expand(f"{b}, {pattern},{a}") == [b, a]
    assert expand([b, a, b]) == [b, a]  # a list; a file named twice is read once
    assert expand([pattern, str(tmp_path / "a*")]) == [a, b]  # overlapping globs


def test_a_glob_matches_regular_files_only(tmp_path):
    a = _write(tmp_path / "a.txt")
    (tmp_path / "dir.txt").mkdir()
    assert expand(str(tmp_path / "*.txt")) == [a]
    with pytest.raises(file_io.InputFileError, match="matches no file"):
        expand(str(tmp_path / "dir*"))


def test_errors_name_the_flag_and_the_pattern(tmp_path):
    a = _write(tmp_path / "a.txt")
    nothing = str(tmp_path / "*.csv")
    with pytest.raises(file_io.InputFileError) as err:
        expand(f"{a},{nothing}")
    assert str(err.value) == f"--input_file: {nothing!r} matches no file"
    assert (err.value.flag, err.value.pattern) == ("--input_file", nothing)
    assert isinstance(err.value, ValueError)

    missing = str(tmp_path / "missing.txt")
    with pytest.raises(file_io.InputFileError) as err:
        expand(f"{a},{missing}", flag="--train_file")
    assert str(err.value) == f"--train_file: {missing!r} does not exist"

    with pytest.raises(file_io.InputFileError, match="is a directory, not a file"):
        expand(str(tmp_path))
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    with pytest.raises(file_io.InputFileError, match="is not a regular file"):
        expand(fifo)
    for empty in (" , ", "", None, []):
        with pytest.raises(file_io.InputFileError, match="^--input_file names no file$"):
            expand(empty)


def test_remote_paths_go_through_gfile():
    tf = pytest.importorskip("tensorflow")
    root = "ram://expand_patterns"
    tf.io.gfile.makedirs(root + "/dir")
    for name in ("b.txt", "a.txt", "c.md"):
        with tf.io.gfile.GFile(f"{root}/{name}", "w") as f:
            f.write("text\n")
    a, b = f"{root}/a.txt", f"{root}/b.txt"
    assert expand(f"{b},{root}/*.txt") == [b, a]
    with pytest.raises(file_io.InputFileError, match="matches no file"):
        expand(f"{root}/*.csv")
    with pytest.raises(file_io.InputFileError, match="does not exist"):
        expand(f"{root}/missing.txt")
    with pytest.raises(file_io.InputFileError, match="is a directory"):
        expand(f"{root}/dir")


# -- atomic writes --------------------------------------------------------------------------------

def test_atomic_open_replaces_whole_or_not_at_all(tmp_path):
    path = str(tmp_path / "out" / "file.txt")  # the directory is created
    with file_io.atomic_open(path) as f:
        f.write("first\n")
    with pytest.raises(RuntimeError):
        with file_io.atomic_open(path) as f:
            f.write("half of the sec")
            raise RuntimeError("interrupted")
    assert open(path).read() == "first\n"
    assert os.listdir(tmp_path / "out") == ["file.txt"]  # no temporary file left
    file_io.write_text_atomically(path, "second\n")
    assert open(path).read() == "second\n"


def test_atomic_open_on_a_remote_filesystem():
    tf = pytest.importorskip("tensorflow")
    path = "ram://atomic_open/file.bin"
    with file_io.atomic_open(path, "wb") as f:
        f.write(b"first")
    with pytest.raises(RuntimeError):
        with file_io.atomic_open(path, "wb") as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    with tf.io.gfile.GFile(path, "rb") as f:
        assert f.read() == b"first"
    assert tf.io.gfile.listdir("ram://atomic_open") == ["file.bin"]


def _write_tree(root, text):
    os.makedirs(os.path.join(root, "variables"))
    for name in ("saved_model.pb", os.path.join("variables", "data")):
        with open(os.path.join(root, name), "w") as f:
            f.write(text)


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    path = str(tmp_path / "out" / "export")  # the parent is created
    with file_io.atomic_directory(path) as temp:
        assert temp != path and not os.path.exists(path)
        _write_tree(temp, "first")
    assert open(os.path.join(path, "variables", "data")).read() == "first"
    with pytest.raises(file_io.InputError, match="export already exists"):
        with file_io.atomic_directory(path):
            pass
    with pytest.raises(RuntimeError):
        with file_io.atomic_directory(path, overwrite=True) as temp:
            _write_tree(temp, "half")
            raise RuntimeError("interrupted")
    assert open(os.path.join(path, "saved_model.pb")).read() == "first"
    with file_io.atomic_directory(path, overwrite=True) as temp:
        _write_tree(temp, "second")
    assert open(os.path.join(path, "saved_model.pb")).read() == "second"
    assert os.listdir(tmp_path / "out") == ["export"]  # no temporary or old directory left


def test_atomic_directory_on_a_remote_filesystem():
    tf = pytest.importorskip("tensorflow")
    path = "ram://atomic_directory/export"
    for text in ("first", "second"):
        with file_io.atomic_directory(path, overwrite=True) as temp:
            tf.io.gfile.makedirs(temp + "/variables")
            with tf.io.gfile.GFile(temp + "/variables/data", "w") as f:
                f.write(text)
        with tf.io.gfile.GFile(path + "/variables/data") as f:
            assert f.read() == text
    with pytest.raises(file_io.InputError, match="already exists"):
        with file_io.atomic_directory(path):
            pass
    assert tf.io.gfile.listdir("ram://atomic_directory") == ["export"]


def test_local_paths_do_not_import_tensorflow(tmp_path):
    a = _write(tmp_path / "a.txt")
    code = ("import sys, file_io; "
            f"print(file_io.expand_patterns({str(tmp_path / '*.txt')!r}, flag='--f')); "
            f"file_io.write_text_atomically({str(tmp_path / 'b.txt')!r}, 'b'); "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=_ROOT, timeout=60, check=True)
    assert result.stdout.split("\n")[:2] == [repr([a]), "False"]
