"""Files on a local disk or on any filesystem TensorFlow reads (gs://, hdfs://, ...), one way.

Local paths use Python's own file functions; paths with a scheme ("gs://bucket/x") go through
`tf.io.gfile`, imported only then. That keeps TensorFlow (seconds to import) out of the processes
that only prepare data: the tokenizer, create_pretraining_data.py's workers, the classifier and
SQuAD readers.
"""
import contextlib
import glob as _glob
import os
import shutil
import uuid

from errors import InputError


def is_remote(path) -> bool:
    """Whether `path` names a file only `tf.io.gfile` can reach (it has a scheme: "gs://...")."""
    return "://" in str(path)


def _gfile():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.io.gfile


def open_file(path, mode="rb"):
    """`open(path, mode)` for local paths, `tf.io.gfile.GFile(path, mode)` for the others."""
    if is_remote(path):
        return _gfile().GFile(path, mode)
    return open(path, mode)  # pylint: disable=unspecified-encoding


def isfile(path) -> bool:
    if is_remote(path):
        gfile = _gfile()
        return gfile.exists(path) and not gfile.isdir(path)
    return os.path.isfile(path)


def isdir(path) -> bool:
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def glob(pattern):
    """The paths matching `pattern`, sorted."""
    if is_remote(pattern):
        gfile = _gfile()
        try:
            return sorted(gfile.glob(pattern))
        except Exception:  # pylint: disable=broad-except  (tf.errors.NotFoundError: no match)
            return []
    return sorted(_glob.glob(pattern))


class InputFileError(InputError):
    """A file pattern of a flag that names no file to read.

    The message starts with the flag and quotes the pattern, e.g.
    `--input_file: 'corpus/*.txt' matches no file`; `flag` and `pattern` are kept as attributes.
    """

    def __init__(self, flag, pattern, problem):
        self.flag, self.pattern = flag, pattern
        super().__init__(f"{flag} {problem}" if pattern is None
                         else f"{flag}: {pattern!r} {problem}")


def expand_patterns(patterns, *, flag):
    """The files named by `patterns`: comma-separated globs or plain paths, local or remote.

    Files come in the order of the patterns, sorted within each glob. A file named more than once
    (twice in the list, or by two overlapping globs) is listed once: read twice, its examples
    would silently count double. Local globs match regular files only; remote globs are taken as
    the filesystem lists them (checking each match would cost a request per file).

    Args:
      patterns: a comma-separated string, or a list of patterns; blank items are ignored.
      flag: where the patterns came from, e.g. "--input_file", quoted in errors.
    Returns:
      The list of paths, each once.
    Raises:
      InputFileError (a ValueError) naming the flag and the pattern when a glob matches no file,
      a plain path does not exist or is a directory, or there is no pattern at all.
    """
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    patterns = [p.strip() for p in patterns or () if p and p.strip()]
    if not patterns:
        raise InputFileError(flag, None, "names no file")
    files = []
    for pattern in patterns:
        files.extend(_expand_pattern(pattern, flag))
    return list(dict.fromkeys(files))


def _expand_pattern(pattern, flag):
    """The sorted files of one glob, or [pattern] for a plain path that is a file."""
    if _glob.has_magic(pattern):
        matches = [p for p in glob(pattern) if is_remote(p) or os.path.isfile(p)]
        if not matches:
            raise InputFileError(flag, pattern, "matches no file")
        return matches
    if isfile(pattern):
        return [pattern]
    if isdir(pattern):
        raise InputFileError(flag, pattern, "is a directory, not a file")
    if not is_remote(pattern) and os.path.exists(pattern):
        raise InputFileError(flag, pattern, "is not a regular file")
    raise InputFileError(flag, pattern, "does not exist")


def size(path) -> int:
    return _gfile().stat(path).length if is_remote(path) else os.path.getsize(path)


def rename(src, dst):
    """Moves `src` over `dst` (replacing it)."""
    if is_remote(dst):
        _gfile().rename(src, dst, overwrite=True)
    else:
        os.replace(src, dst)


def remove_quietly(path):
    """Removes `path` if it exists; errors (already gone, no permission) are ignored."""
    try:
        if is_remote(path):
            _gfile().remove(path)
        else:
            os.remove(path)
    except Exception:  # pylint: disable=broad-except
        pass


def temp_name(path):
    """A hidden name next to `path`, unique to this write, for writing before a rename."""
    head, tail = os.path.split(str(path))
    return os.path.join(head, f".{tail}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")


@contextlib.contextmanager
def atomic_open(path, mode="w"):
    """A file opened for writing ("w": UTF-8 text with "\\n" line ends; "wb": bytes) under a
    temporary name next to `path`, renamed over `path` when the block ends without an exception
    (removed if it raises): readers see the old file or the complete new one, never half of one.
    Creates the directory of a local `path`."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    if not is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temp = temp_name(path)
    try:
        if mode == "w" and not is_remote(path):
            f = open(temp, "w", encoding="utf-8", newline="\n")
        else:
            f = open_file(temp, mode)
        with f:
            yield f
        rename(temp, path)
    finally:
        remove_quietly(temp)


def write_text_atomically(path, text):
    """Writes `text` to `path` through atomic_open."""
    with atomic_open(path, "wb") as f:
        f.write(text.encode("utf-8"))


def _remove_tree_quietly(path):
    """Removes `path` (a directory and what it holds, or a file) if it exists; errors are
    ignored."""
    try:
        if is_remote(path):
            if _gfile().exists(path):
                _gfile().rmtree(path)
        elif os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    except Exception:  # pylint: disable=broad-except
        pass


def _rename_directory(src, dst):
    """Moves the directory `src` to `dst` (which must not exist): one rename locally; file by file
    on other filesystems, whose renames move single objects (gs://) or names (ram://)."""
    if not is_remote(dst):
        os.rename(src, dst)
        return
    gfile = _gfile()
    for folder, _, files in gfile.walk(src):
        target = dst + folder[len(src):]
        gfile.makedirs(target)
        for name in files:
            gfile.rename(f"{folder}/{name}", f"{target}/{name}")
    gfile.rmtree(src)


@contextlib.contextmanager
def atomic_directory(path, overwrite=False):
    """A temporary directory name next to `path` to write a directory into (a SavedModel, ...),
    renamed to `path` when the block ends without an exception (removed if it raises): readers
    see no directory or a complete one, never half of one.

    An existing `path` is an InputError unless `overwrite`; then the old directory is moved aside
    and removed once the new one is in place. A local rename is atomic; on other filesystems
    (gs://) files are moved one by one, so there it only keeps a failed write from leaving
    anything at `path`.
    Creates the parent of a local `path`.
    """
    exists = _gfile().exists(path) if is_remote(path) else os.path.lexists(path)
    if exists and not overwrite:
        raise InputError(f"{path} already exists (remove it, or choose another directory)")
    if not is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temp, old = temp_name(path), temp_name(path)
    try:
        yield temp
        if exists:
            _rename_directory(path, old)
            try:
                _rename_directory(temp, path)
            except BaseException:
                _rename_directory(old, path)  # put the old one back
                raise
        else:
            _rename_directory(temp, path)
    finally:
        _remove_tree_quietly(temp)
        _remove_tree_quietly(old)
