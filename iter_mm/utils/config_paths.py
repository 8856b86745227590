"""Where iter-mm's configs are: in the source tree (``configs/``) or, in an installed wheel, inside the package
(``iter_mm/.mim/configs``, as MMagic ships ``mmagic/.mim/configs``).

A config may be named by a path, by ``iter_mm::<path under configs/>`` (``iter::`` for short), or by the
repository-relative ``configs/<path>`` that the README's commands use, which then also works from an installed
package outside the repository.
"""

import os.path as osp
from typing import Optional

from ..errors import MissingDataError

_PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))
PREFIXES = ('iter_mm::', 'iter::')


def configs_root() -> Optional[str]:
    """The folder holding ``iter/``, ``_base_/``: the package's ``.mim/configs`` or the source tree's ``configs``.

    Returns:
        str, optional: the folder, or None when neither exists.
    """
    for root in (osp.join(_PACKAGE, '.mim', 'configs'), osp.join(osp.dirname(_PACKAGE), 'configs')):
        if osp.isdir(osp.join(root, 'iter')):
            return root
    return None


def resolve_config_path(path: str) -> str:
    """A config file path for ``path`` (see the module docstring); other ``::`` names are returned unchanged.

    Args:
        path (str): a file, ``iter_mm::`` / ``iter::`` name, ``configs/...`` path or another scope's name.

    Returns:
        str: the config's path (or the scoped name).

    Raises:
        MissingDataError: naming the places that were looked at (a FileNotFoundError).
    """
    for prefix in PREFIXES:
        if path.startswith(prefix):
            return _packaged(path[len(prefix) :], path)
    if '::' in path or osp.isfile(path):
        return path
    norm = osp.normpath(path).replace('\\', '/')
    if norm.startswith('configs/'):
        return _packaged(norm[len('configs/') :], path)
    raise MissingDataError(f'config file not found: {path}')


def _packaged(rel: str, asked: str) -> str:
    root = configs_root()
    candidate = osp.join(root, rel) if root else None
    if candidate and osp.isfile(candidate):
        return candidate
    raise MissingDataError(
        f'config file not found: {asked} (looked in the current folder and in '
        f'{root or "the package: it ships no configs"})'
    )
