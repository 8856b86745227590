"""Per-sample seeding of the degradation randomness.

MMagic's random degradations draw from numpy's and Python's global RNGs (MMEngine seeds them
per dataloader worker: same seed + same worker layout -> same samples). For outputs that must
not depend on the worker layout (validation pairs, ``tools/generate_lq.py``), the seed of a
sample is derived from (seed, sample name) and both global RNGs are seeded with it.
"""

import copy
import hashlib
import os.path as osp
import random
from typing import List

import numpy as np

from mmagic.registry import TRANSFORMS

from .bsrgan import DEFAULT_SEED_KEY


def sample_seed(seed: int, name: str) -> int:
    """Stable 31-bit seed of (seed, name), identical across processes and runs.

    Args:
        seed (int): The run's seed.
        name (str): A per-sample name, e.g. the file name.

    Returns:
        int: A seed in [0, 2^31).
    """
    digest = hashlib.sha256(f'{int(seed)}:{name}'.encode('utf-8')).digest()
    return int.from_bytes(digest[:4], 'little') & 0x7FFFFFFF


def seed_global_rngs(seed: int) -> None:
    """Seed numpy's and Python's global RNGs (those MMagic's transforms use).

    Args:
        seed (int): The seed.
    """
    np.random.seed(seed)
    random.seed(seed)


@TRANSFORMS.register_module()
class SeededDegradations:
    """Run ``transforms`` with their randomness fixed by (seed, file name of ``results[key]``).

    Writes ``results[seed_key]`` (read by ``BSRGANDegradation``) and seeds numpy's and Python's
    global RNGs (read by MMagic's ``RandomBlur``/``RandomResize``/``RandomNoise``/...), so the sample
    is the same whichever worker or process builds it; the global RNG states are restored afterwards,
    so the randomness of anything else (e.g. training in the same process) is left as it was.

    Args:
        transforms (list[dict]): Configs (or built instances) of the transforms to run.
        seed (int): The run's seed, combined with each file name. Default: 0.
        key (str): Key of the sample's path whose file name seeds it. Default: 'gt_path'.
        seed_key (str): Key the per-sample seed is written to. Default: the key ``BSRGANDegradation`` reads.
    """

    def __init__(
        self, transforms: List[dict], seed: int = 0, key: str = 'gt_path', seed_key: str = DEFAULT_SEED_KEY
    ) -> None:
        self.transforms = [TRANSFORMS.build(copy.deepcopy(t)) if isinstance(t, dict) else t for t in transforms]
        self.seed = int(seed)
        self.key = key
        self.seed_key = seed_key

    def __call__(self, results: dict) -> dict:
        if self.key not in results:
            raise KeyError(f'SeededDegradations needs results[{self.key!r}] (available: {sorted(results)})')
        s = sample_seed(self.seed, osp.basename(str(results[self.key])))
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            results[self.seed_key] = s
            seed_global_rngs(s)
            for t in self.transforms:
                results = t(results)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(seed={self.seed}, key={self.key!r}, transforms={self.transforms})'
