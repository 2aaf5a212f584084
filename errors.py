"""The one error class for bad input, which every script reports as one line instead of a traceback.

A script's user makes mistakes the code cannot fix: a data file with a row too short, a flag out of
range, a vocabulary without [CLS], a bert_config.json that is not JSON, a checkpoint that is not
there. Those raise `InputError` (or one of the project's subclasses: checkpoints.CheckpointError,
classifier_data.DataError, squad_data.SquadError, file_io.InputFileError, ...), with a message
that names the file and line, or the flag, and says what was expected. The scripts' shared entry
point (common_flags.run) prints such an error as one `ERROR: <message>` line and exits with status
1; any other exception is a bug and keeps its traceback.

An InputError is a ValueError, so code that catches ValueError, as callers did before this class
existed, still catches it. A ValueError that signals a programming error (an argument no command
line can produce) stays a plain ValueError.

This module imports nothing: the tokenizer and the data-preparation scripts, which never load
TensorFlow, use it too.
"""


class InputError(ValueError):
    """Bad input from the user: a data file, a flag value, a vocabulary, a config, a checkpoint.

    The message names the file (and line) or the flag, and what was expected; it is printed as it
    is, after `ERROR: `.
    """

    def __reduce__(self):
        # Subclasses take constructor arguments of their own (file_io.InputFileError takes flag,
        # pattern and problem), so pickling's default, cls(*self.args), would fail or garble the
        # message. Rebuilt without __init__, an error raised in a worker process (as in
        # create_pretraining_data.py) arrives whole: same class, message and attributes.
        return _rebuild, (type(self), self.args), self.__dict__


def _rebuild(cls, args):
    return cls.__new__(cls, *args)
