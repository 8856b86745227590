"""Running a command-line tool of ``tools/`` as its user does: ``python tools/<name>.py ...`` in a subprocess.

Tests reach the logic of the tools through the library; this is for what only the command line does (argument
parsing, ``error: ...`` lines, exit statuses, what is printed).
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_tool(name: str, *args, cwd=None, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python tools/<name>.py *args`` with this interpreter, one thread, this checkout's ``iter_mm`` first on the
    path; returns the finished process (``returncode``, ``stdout``, ``stderr`` as text)."""
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
    )
    return subprocess.run(
        [sys.executable, str(ROOT / 'tools' / f'{name}.py'), *map(str, args)],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The tool's refusal: exit status 1 and one ``error: ...`` line as the last line of stderr."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith('error: '), proc.stderr[-3000:]
    return line
