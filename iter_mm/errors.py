"""The exceptions iter-mm raises for what its user can fix.

Every refusal of the library (bad input, a wrong option, a missing file, a checkpoint that does not fit) is an
:class:`ITERError`. Messages speak of the library's own arguments (``checkpoint``, ``allow_pickle``, config keys
such as ``model.vqgan_ckpt``), never of a command-line flag: each front end (``tools/*.py``, the Inferencer) turns
them into its own wording; :func:`cli_message` is the tools' form (``error: ...`` plus their flag for the
arguments the refusal names).

Each class also derives from the built-in exception that callers caught before the hierarchy existed
(``ValueError``, ``FileNotFoundError``, ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

__all__ = [
    'ITERError',
    'InvalidInputError',
    'InvalidOptionError',
    'MissingDataError',
    'CheckpointMismatchError',
    'OutputExistsError',
    'cli_message',
]


class ITERError(Exception):
    """Base class of every refusal of iter-mm.

    Args:
        message (str): what is wrong and how to fix it, in the library's terms.
        arguments (Sequence[str], optional): the library arguments or config keys the fix concerns (e.g.
            ``('allow_pickle',)``), for a front end to name its own option for each. Default: ().
    """

    def __init__(self, message: str = '', *, arguments: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.arguments = tuple(arguments)


class InvalidInputError(ITERError, ValueError, TypeError):
    """An image, array or file content the library cannot take (unreadable, wrong dtype or shape, too small).

    A ValueError and a TypeError (a wrong dtype was one).
    """


class InvalidOptionError(ITERError, ValueError, TypeError):
    """An option, argument or config value that is unknown, out of range or contradicts another one.

    A ValueError and a TypeError (an unknown keyword was one, as Python's own).
    """


class MissingDataError(ITERError, FileNotFoundError):
    """A path the caller named (data folder, checkpoint, weights file) does not exist or holds nothing usable."""


class CheckpointMismatchError(ITERError, ValueError):
    """A checkpoint does not hold the weights of the model its config builds (wrong kind, scale or keys)."""


class OutputExistsError(ITERError, FileExistsError):
    """Writing would overwrite something the user owns (an output file, a work dir with checkpoints)."""


def cli_message(err: BaseException, flags: Optional[Mapping[str, str]] = None) -> str:
    """A command line's one-line form of a refusal: ``error: <message>`` plus the front end's options.

    The front end's own option is named for each argument the refusal names (``flags`` maps a library argument to it,
    e.g. ``{'allow_pickle': '--unsafe-load'}``).

    Args:
        err (BaseException): the refusal.
        flags (Mapping[str, str], optional): library argument -> the front end's option. Default: None.

    Returns:
        str: the text to print (without a trailing newline).
    """
    named = [f'{arg}: {flags[arg]}' for arg in getattr(err, 'arguments', ()) if flags and arg in flags]
    return f'error: {err}' + (f' (command line: {"; ".join(named)})' if named else '')
