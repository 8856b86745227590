"""Two thin additions to MMagic's random degradations for the Real-ESRGAN pipeline.

* ``RandomOrderDegradations``: MMagic's ``DegradationsWithShuffle`` shuffles its own list in
  place, so the order it applies depends on every earlier call, not only on the RNG state (a
  fixed seed does not reproduce a sample); it also mutates its config list when built. This
  subclass draws a fresh permutation per call and accepts any registered transform.
* ``RelativeRandomResize``: MMagic's ``RandomResize`` scales relative to the current image;
  Real-ESRGAN sizes its second resize relative to GT / scale (and the final one to exactly
  GT / scale), which this subclass does for any GT size.
"""

import copy
from typing import List, Sequence, Union

import numpy as np

from mmagic.datasets.transforms import DegradationsWithShuffle, RandomResize
from mmagic.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomOrderDegradations(DegradationsWithShuffle):
    """Apply ``degradations`` (dicts, or lists of dicts kept in order as a group) in an
    order drawn from numpy's global RNG at each call.

    Args:
        degradations (list[dict | list[dict]]): Transform configs (any registered transform, e.g. MMagic's
            ``RandomJPEGCompression`` with ``bgr2rgb``); each gets ``keys`` unless it sets its own.
        keys (Sequence[str]): Keys the degradations modify.
        shuffle_idx (Sequence[int], optional): Indices of the entries that are shuffled. Default: None (all).
    """

    def __init__(
        self, degradations: List[Union[dict, list]], keys: Sequence[str], shuffle_idx: Union[Sequence[int], None] = None
    ) -> None:
        super().__init__(copy.deepcopy(list(degradations)), list(keys), shuffle_idx)

    def _build_degradations(self, degradations: list) -> list:
        built = []
        for cfg in degradations:
            if isinstance(cfg, (list, tuple)):
                built.append(self._build_degradations(list(cfg)))
            else:
                cfg = dict(cfg)
                cfg.setdefault('keys', self.keys)
                built.append(TRANSFORMS.build(cfg))
        return built

    def __call__(self, results: dict) -> dict:
        order = list(range(len(self.degradations)))
        perm = np.random.permutation(len(self.shuffle_idx))
        for slot, j in zip(self.shuffle_idx, perm):
            order[slot] = self.shuffle_idx[j]
        for i in order:
            group = self.degradations[i]
            for t in group if isinstance(group, list) else [group]:
                results = t(results)
        return results


@TRANSFORMS.register_module()
class RelativeRandomResize(RandomResize):
    """``RandomResize`` to ``floor(size(ref_key) / ref_scale * f)``.

    Args:
        params (dict): As MMagic's ``RandomResize`` (``resize_opt``, ``resize_prob``, ``prob``), plus
            ``ref_key`` (default 'gt'), ``ref_scale`` (e.g. 4; when absent, the sample's ``scale`` set by
            ``SetValues``, so one degradation list serves every scale) and, for a random factor f,
            ``resize_mode_prob`` (up, down, keep) with ``resize_scale`` [low, high]; without ``resize_mode_prob``
            f = 1, i.e. exactly GT / ref_scale.
        keys (list[str]): Keys of the images to resize.
    """

    def _draw_factor(self) -> float:
        mode_prob = self.params.get('resize_mode_prob')
        if mode_prob is None:
            return 1.0
        mode = np.random.choice(['up', 'down', 'keep'], p=mode_prob)
        low, high = self.params['resize_scale']
        if mode == 'up':
            return np.random.uniform(1, high)
        if mode == 'down':
            return np.random.uniform(low, 1)
        return 1.0

    def __call__(self, results: dict) -> dict:
        if np.random.uniform() > self.params.get('prob', 1):
            return results
        ref = results[self.params.get('ref_key', 'gt')]
        ref_scale = self.params.get('ref_scale', results.get('scale'))
        if not ref_scale:
            raise KeyError(
                'RelativeRandomResize needs params.ref_scale or a `scale` in the sample '
                "(add dict(type='SetValues', dictionary=dict(scale=...)) before it)"
            )
        f = self._draw_factor()
        size = (max(1, int(ref.shape[0] / ref_scale * f)), max(1, int(ref.shape[1] / ref_scale * f)))
        base_params = self.params
        self.params = dict(base_params, target_size=size)
        try:
            for key in self.keys:
                results[key] = self._random_resize(results[key])
        finally:
            self.params = base_params
        return results
