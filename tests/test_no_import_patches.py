"""``import iter_mm`` and ``iter_mm.register_all_modules()`` change nothing of MMEngine or MMagic: MMEngine's
``FormatCode``, its loader of local checkpoint paths and MMagic's ``Inferencers.__init__`` are the objects they
were before (the suite's conftest installs the config-formatting reuse, so each check runs in a fresh
interpreter). Importing ``iter_mm.apis``' Inferencer leaves MMagic's classes alone too; its ``MMagicInferencer``
is a subclass that knows 'iter'."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import mmengine.config.config as config_module
from mmengine.runner.checkpoint import CheckpointLoader
from mmagic.apis.inferencers import Inferencers
from mmagic.apis.mmagic_inferencer import MMagicInferencer as MMagics
before = dict(format_code=config_module.FormatCode, local_loader=CheckpointLoader._schemes[''],
              inferencers_init=Inferencers.__init__, mmagic_init=MMagics.__init__,
              mmagic_models=list(MMagics.inference_supported_models))
import iter_mm
iter_mm.register_all_modules()
from mmagic.registry import MODELS, RUNNERS
assert MODELS.get('ITERModel') is not None and RUNNERS.get('ITERRunner') is not None  # registered, all of it
from iter_mm.apis import MMagicInferencer  # the Inferencer stack too
after = dict(format_code=config_module.FormatCode, local_loader=CheckpointLoader._schemes[''],
             inferencers_init=Inferencers.__init__, mmagic_init=MMagics.__init__,
             mmagic_models=list(MMagics.inference_supported_models))
changed = [k for k in before if after[k] is not before[k] and after[k] != before[k]]
assert not changed, changed
assert 'iter' in MMagicInferencer.inference_supported_models and 'iter' not in MMagics.inference_supported_models
assert issubclass(MMagicInferencer, MMagics)
print('unchanged')
"""


def test_import_and_registration_patch_nothing():
    proc = subprocess.run([sys.executable, '-c', CHECK], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == 'unchanged'
