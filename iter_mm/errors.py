"""The exceptions iter-mm raises for what its user can fix.

Every refusal of the library (bad input, a wrong option, a missing file, a checkpoint that does not fit) is an
:class:`ITERError`. Messages speak of the library's own arguments (``checkpoint``, ``stage1_checkpoint``, ...),
never of a command-line flag: each front end (``tools/*.py``, the Inferencer) turns them into its own wording.

Each class also derives from the built-in exception that callers caught before the hierarchy existed
(``ValueError``, ``FileNotFoundError``, ...), so ``except ValueError`` keeps working.
"""
from __future__ import annotations

__all__ = [
    'ITERError', 'InvalidInputError', 'InvalidOptionError', 'MissingDataError', 'CheckpointMismatchError',
    'OutputExistsError'
]


class ITERError(Exception):
    """Base class of every refusal of iter-mm."""


class InvalidInputError(ITERError, ValueError):
    """An image, array or file content the library cannot take (unreadable, wrong dtype or shape, too small)."""


class InvalidOptionError(ITERError, ValueError):
    """An option, argument or config value that is unknown, out of range or contradicts another one."""


class MissingDataError(ITERError, FileNotFoundError):
    """A path the caller named (data folder, checkpoint, weights file) does not exist or holds nothing usable."""


class CheckpointMismatchError(ITERError, ValueError):
    """A checkpoint does not hold the weights of the model its config builds (wrong kind, scale or keys)."""


class OutputExistsError(ITERError, FileExistsError):
    """Writing would overwrite something the user owns (an output file, a work dir with checkpoints)."""
