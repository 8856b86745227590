"""BSRGAN-style random degradation (Zhang et al., ICCV 2021) as an MMagic transform.

Defaults follow the "light" variant of the ITER repository (docs/faithfulness.md#data):
pre-downsampling, then blur x2 / downsample-2 / downsample-3 / noise / JPEG in random order
(downsample-2 always before downsample-3), then a final JPEG. Every random choice comes from
one ``numpy.random.Generator`` per sample, so a seed fixes the output.
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from mmagic.datasets.transforms import MATLABLikeResize
from mmagic.registry import TRANSFORMS

from ...errors import InvalidOptionError
from . import bsrgan_ops as ops

DEFAULT_SEED_KEY = 'degradation_seed'


@TRANSFORMS.register_module()
class BSRGANDegradation(BaseTransform):
    """Replace each image in ``keys`` ((H, W[, C]) in [0, 255], C in {1, 3}) by its
    degraded version, uint8 of size (H / scale, W / scale) (MMagic's in-place convention:
    copy the GT first, e.g. ``CopyValues(src_keys=['gt'], dst_keys=['img'])``).

    Args:
        keys (Sequence[str]): Keys of the images to degrade in place (one generator, in this order).
            Default: ('img', ).
        scale (int): Total down-scaling factor (H and W must be multiples of it). Default: 4.
        pre_down_prob (float): Probability of the initial 1/2 resize (scale 4 only). Default: 0.25.
        blur_width_factor (float): 0.25 = the light variant, 1.0 = the BSRGAN paper's widths and sizes.
            Default: 0.25.
        noise_level (tuple[int, int]): Gaussian noise level range (0..255 units), drawn as an integer.
            Default: (2, 8).
        jpeg_prob (float): Probability of the shuffled JPEG step. Default: 0.9.
        jpeg_quality (tuple[int, int]): Quality range of the shuffled JPEG step (integers, inclusive).
            Default: (80, 95).
        final_jpeg_quality (tuple[int, int]): Quality range of the final JPEG (always applied). Default: (80, 95).
        downsample2_resize_prob (float): Probability that downsample-2 is a cv2 resize by 1/U(1, 2s) (else a
            shifted Gaussian blur and nearest subsampling). Default: 0.75.
        seed_key (str): If ``results[seed_key]`` is set, it seeds the generator (e.g. by ``SeededDegradations``,
            as in ``tools/generate_lq.py``); otherwise a seed is drawn from numpy's global RNG, which MMEngine
            seeds per dataloader worker. Default: the key ``SeededDegradations`` writes.
    """

    def __init__(
        self,
        keys: Sequence[str] = ('img',),
        scale: int = 4,
        pre_down_prob: float = 0.25,
        blur_width_factor: float = 0.25,
        noise_level: Tuple[int, int] = (2, 8),
        jpeg_prob: float = 0.9,
        jpeg_quality: Tuple[int, int] = (80, 95),
        final_jpeg_quality: Tuple[int, int] = (80, 95),
        downsample2_resize_prob: float = 0.75,
        seed_key: str = DEFAULT_SEED_KEY,
    ) -> None:
        if isinstance(keys, str) or not keys:
            raise InvalidOptionError(f'keys must be a non-empty list of keys, got {keys!r}')
        if int(scale) != scale or scale < 1:
            raise InvalidOptionError(f'scale must be a positive integer, got {scale}')
        self.keys = list(keys)
        self.scale = int(scale)
        self.pre_down_prob = pre_down_prob
        self.blur_width_factor = blur_width_factor
        self.noise_level = tuple(noise_level)
        self.jpeg_prob = jpeg_prob
        self.jpeg_quality = tuple(jpeg_quality)
        self.final_jpeg_quality = tuple(final_jpeg_quality)
        self.downsample2_resize_prob = downsample2_resize_prob
        self.seed_key = seed_key

    # ------------------------------------------------------------------ steps
    def _pre_downsample(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape[:2]
        if rng.random() < 0.5:
            return ops.resize(img, (h // 2, w // 2), ops.INTERPOLATIONS[rng.integers(3)])
        out = MATLABLikeResize(keys=[], output_shape=(h // 2, w // 2))._resize(img)
        return np.clip(out, 0, 1).astype(np.float32).reshape(h // 2, w // 2, -1)

    def _downsample2(self, img: np.ndarray, rng: np.random.Generator, sf: int) -> np.ndarray:
        h, w = img.shape[:2]
        if rng.random() < self.downsample2_resize_prob:
            f = rng.uniform(1, 2 * sf)
            size = (max(1, int(h / f)), max(1, int(w / f)))
            out = ops.resize(img, size, ops.INTERPOLATIONS[rng.integers(3)])
        else:
            out = ops.shifted_gaussian_downsample(img, rng.uniform(0.1, 0.6 * sf), sf)
        return np.clip(out, 0, 1)

    def degrade(self, img: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, List[Dict]]:
        """Degrade one image.

        Args:
            img (np.ndarray): Float32 image in [0, 1], shape (H, W, C).
            rng (np.random.Generator): Source of every random draw.

        Returns:
            tuple[np.ndarray, list[dict]]: The LQ image, float32 in [0, 1] of shape (H/s, W/s, C), and the
            applied steps with their drawn parameters, in order.
        """
        h, w = img.shape[:2]
        sf, log = self.scale, []
        if sf == 4 and rng.random() < self.pre_down_prob:
            img = self._pre_downsample(img, rng)
            sf = 2
            log.append(dict(op='pre_downsample'))
        order = list(rng.permutation(6))  # 0,1 blur; 2 down-2; 3 down-3; 4 noise; 5 jpeg
        i2, i3 = order.index(2), order.index(3)
        if i2 > i3:  # downsample-2 must precede downsample-3
            order[i2], order[i3] = 3, 2
        size_before_down2 = img.shape[:2]
        for step in order:
            if step in (0, 1):
                k = ops.random_blur_kernel(rng, sf, self.blur_width_factor)
                img = ops.filter_image(img, k)
                log.append(dict(op='blur', kernel_size=k.shape[0]))
            elif step == 2:
                size_before_down2 = img.shape[:2]
                img = self._downsample2(img, rng, sf)
                log.append(dict(op='downsample2', size=img.shape[:2]))
            elif step == 3:
                size = (size_before_down2[0] // sf, size_before_down2[1] // sf)
                img = np.clip(ops.resize(img, size, ops.INTERPOLATIONS[rng.integers(3)]), 0, 1)
                log.append(dict(op='downsample3', size=size))
            elif step == 4:
                level = int(rng.integers(self.noise_level[0], self.noise_level[1] + 1))
                u = rng.random()
                mode = 'color' if u > 0.6 else 'gray' if u < 0.4 else 'correlated'
                img = np.clip(ops.add_gaussian_noise(img, rng, level, mode), 0, 1)
                log.append(dict(op='noise', level=level, mode=mode))
            elif rng.random() < self.jpeg_prob:
                q = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
                img = ops.jpeg_compress(img, q)
                log.append(dict(op='jpeg', quality=q))
        q = int(rng.integers(self.final_jpeg_quality[0], self.final_jpeg_quality[1] + 1))
        img = ops.jpeg_compress(img, q)
        log.append(dict(op='final_jpeg', quality=q))
        assert img.shape[:2] == (h // self.scale, w // self.scale), img.shape
        return img, log

    # --------------------------------------------------------------- transform
    def _check(self, key: str, img: np.ndarray) -> np.ndarray:
        if not isinstance(img, np.ndarray):
            raise TypeError(f'{key!r} must be a numpy image, got {type(img)}')
        if img.dtype not in (np.uint8, np.float32, np.float64):
            raise TypeError(
                f'{key!r} must be uint8 or float in [0, 255], got {img.dtype} (convert 16-bit images to 8-bit first)'
            )
        if img.ndim == 2:
            img = img[..., None]
        if img.ndim != 3 or img.shape[2] not in (1, 3):
            raise ValueError(f'{key!r} must be (H, W), (H, W, 1) or (H, W, 3), got shape {img.shape}')
        h, w = img.shape[:2]
        if h % self.scale or w % self.scale or h < self.scale or w < self.scale:
            raise ValueError(
                f'{key!r} size {h}x{w} is not a positive multiple of scale {self.scale}; crop it first (e.g. ModCrop)'
            )
        return img

    def transform(self, results: dict) -> dict:
        """Degrade ``results[key]`` for every key.

        Args:
            results (dict): The sample; each key holds an image in [0, 255] of shape (H, W[, C]).

        Returns:
            dict: The sample with each image replaced by its uint8 LQ, shape (H/s, W/s[, C]).
        """
        seed = results.get(self.seed_key)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        rng = np.random.default_rng(seed)
        for key in self.keys:
            src = results[key]
            img = self._check(key, src)
            out, _ = self.degrade(img.astype(np.float32) / 255.0, rng)
            out = np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
            results[key] = out[..., 0] if src.ndim == 2 else out
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(keys={self.keys}, scale={self.scale}, '
            f'pre_down_prob={self.pre_down_prob}, '
            f'blur_width_factor={self.blur_width_factor}, noise_level={self.noise_level}, '
            f'jpeg_prob={self.jpeg_prob}, jpeg_quality={self.jpeg_quality}, '
            f'final_jpeg_quality={self.final_jpeg_quality}, seed_key={self.seed_key!r})'
        )
