"""Single steps of the BSRGAN degradation (Zhang et al., ICCV 2021), cv2/numpy only.

Images are float32 (H, W, C) RGB in [0, 1] with C in {1, 3}. Every function that draws
randomness takes an explicit ``numpy.random.Generator``; the deterministic functions
(kernels, blur, resize, JPEG) take their parameters explicitly so tests can check each one.
"""

from typing import Tuple

import cv2
import numpy as np

# cv2 interpolations BSRGAN draws from (bilinear, bicubic, area).
INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA)


def isotropic_gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Normalised isotropic Gaussian centred on the middle pixel.

    Args:
        size (int): Side of the kernel.
        sigma (float): Standard deviation in pixels.

    Returns:
        np.ndarray: Float32 kernel of shape (size, size), summing to 1.
    """
    if size < 1:
        raise ValueError(f'kernel size must be >= 1, got {size}')
    sigma = max(float(sigma), 1e-3)  # sigma -> 0 is a delta kernel
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(r**2 - np.min(r**2)) / (2 * sigma**2))  # shifted so the peak is 1: no 0/0 for tiny sigma
    k = np.outer(g, g)
    return (k / k.sum()).astype(np.float32)


def anisotropic_gaussian_kernel(size: int, theta: float, l1: float, l2: float) -> np.ndarray:
    """Normalised Gaussian with covariance R diag(l1, l2) R^T, R a rotation by ``theta``.

    Args:
        size (int): Side of the kernel.
        theta (float): Rotation in radians.
        l1 (float): First eigenvalue of the covariance.
        l2 (float): Second eigenvalue of the covariance.

    Returns:
        np.ndarray: Float32 kernel of shape (size, size), summing to 1.
    """
    if size < 1:
        raise ValueError(f'kernel size must be >= 1, got {size}')
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cov = rot @ np.diag([max(l1, 1e-3), max(l2, 1e-3)]) @ rot.T
    inv = np.linalg.inv(cov)
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(r, r)
    pos = np.stack([xx, yy], -1)  # (size, size, 2) as (x, y)
    q = -0.5 * np.einsum('...i,ij,...j->...', pos, inv, pos)
    k = np.exp(q - q.max())  # shifted so the peak is 1: no 0/0 for narrow kernels of even size
    return (k / k.sum()).astype(np.float32)


def filter_image(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate every channel with ``kernel`` (reflect-101 borders).

    Args:
        img (np.ndarray): Image of shape (H, W, C).
        kernel (np.ndarray): 2-D kernel.

    Returns:
        np.ndarray: The filtered image, same shape.
    """
    out = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(img.shape)


def random_blur_kernel(rng: np.random.Generator, scale: int, width_factor: float = 0.25) -> np.ndarray:
    """BSRGAN blur kernel: anisotropic (p=0.5) or isotropic Gaussian.

    Args:
        rng (np.random.Generator): Source of the draws.
        scale (int): Scale factor s of the degradation.
        width_factor (float): Scales the widths: 1.0 is the BSRGAN paper (anisotropic axes up to 4 + s, isotropic
            sigma up to 2 + 0.2 s, sizes 7..25), 0.25 the "light" variant of the authors' repository
            (docs/faithfulness.md#data: anisotropic sizes 5..14, isotropic sizes 5..7). Default: 0.25.

    Returns:
        np.ndarray: Float32 kernel, summing to 1.
    """
    light = width_factor < 1.0
    if rng.random() < 0.5:
        size = int(rng.integers(2, 12)) + 3 if light else 2 * int(rng.integers(2, 12)) + 3
        l1 = (4.0 + scale) * width_factor * rng.random()
        l2 = (4.0 + scale) * width_factor * rng.random()
        return anisotropic_gaussian_kernel(size, np.pi * rng.random(), l1, l2)
    size = int(rng.integers(2, 5)) + 3 if light else 2 * int(rng.integers(2, 12)) + 3
    sigma = (2.0 + 0.2 * scale) * width_factor * rng.random()
    return isotropic_gaussian_kernel(size, sigma)


def resize(img: np.ndarray, size_hw: Tuple[int, int], interpolation: int) -> np.ndarray:
    """cv2 resize, keeping a channel axis.

    Args:
        img (np.ndarray): Image of shape (H, W, C).
        size_hw (tuple[int, int]): Target (h, w).
        interpolation (int): cv2 interpolation flag.

    Returns:
        np.ndarray: Image of shape (h, w, C).
    """
    h, w = size_hw
    if h < 1 or w < 1:
        raise ValueError(f'resize target {size_hw} is empty')
    out = cv2.resize(img, (w, h), interpolation=interpolation)
    return out.reshape(h, w, img.shape[2])


def shifted_gaussian_downsample(img: np.ndarray, sigma: float, scale: int) -> np.ndarray:
    """BSRGAN's "blur + nearest" branch: a Gaussian blur centred on the middle of each s x s block, then pixel
    (s i, s j) is kept.

    Args:
        img (np.ndarray): Image of shape (H, W, C).
        sigma (float): Standard deviation of the blur.
        scale (int): Subsampling factor s.

    Returns:
        np.ndarray: Image of shape (ceil(H/s), ceil(W/s), C).
    """
    size = 25
    c = (size - 1) / 2 + (scale - 1) / 2  # correlation centre shifted by (s-1)/2
    r = np.arange(size, dtype=np.float64) - c
    g = np.exp(-(r**2) / (2 * max(sigma, 1e-3) ** 2))
    k = np.outer(g, g)
    k = (k / k.sum()).astype(np.float32)
    return filter_image(img, k)[0::scale, 0::scale]


def add_gaussian_noise(img: np.ndarray, rng: np.random.Generator, level: float, mode: str) -> np.ndarray:
    """Add N(0, (level/255)^2) noise, not clipped.

    Args:
        img (np.ndarray): Image in [0, 1] of shape (H, W, C).
        rng (np.random.Generator): Source of the draws.
        level (float): Noise level in 0..255 units.
        mode (str): 'color' (independent per channel), 'gray' (one draw for all channels) or 'correlated'
            (3-channel covariance, see :func:`noise_covariance`).

    Returns:
        np.ndarray: Float32 noisy image, same shape.
    """
    h, w, c = img.shape
    sigma = level / 255.0
    if mode == 'color':
        noise = rng.normal(0.0, sigma, (h, w, c))
    elif mode == 'gray':
        noise = rng.normal(0.0, sigma, (h, w, 1))
    elif mode == 'correlated' and c == 3:
        cov = noise_covariance(rng, level)
        noise = rng.multivariate_normal(np.zeros(3), cov, (h, w))
    elif mode == 'correlated':
        noise = rng.normal(0.0, sigma, (h, w, c))
    else:
        raise ValueError(f'unknown noise mode {mode!r}')
    return (img + noise).astype(np.float32)


def noise_covariance(rng: np.random.Generator, level: float) -> np.ndarray:
    """BSRGAN's channel-correlated noise covariance (level/255)^2 U^T D U, with U a random orthogonal matrix and D
    a diagonal of uniform draws.

    Args:
        rng (np.random.Generator): Source of the draws.
        level (float): Noise level in 0..255 units.

    Returns:
        np.ndarray: Covariance of shape (3, 3).
    """
    d = np.diag(rng.random(3))
    u, _ = np.linalg.qr(rng.random((3, 3)))
    return (level / 255.0) ** 2 * (u.T @ d @ u)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode as JPEG after rounding to uint8.

    Args:
        img (np.ndarray): RGB or grey image in [0, 1], shape (H, W, C).
        quality (int): JPEG quality in [1, 100].

    Returns:
        np.ndarray: Float32 image in [0, 1], same shape.
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f'JPEG quality must be in [1, 100], got {quality}')
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if u8.shape[2] == 3:
        u8 = cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.jpg', u8, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError('cv2.imencode failed to encode a JPEG')
    if u8.shape[2] == 3:
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    else:
        out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)[..., None]
    return out.astype(np.float32) / 255.0
