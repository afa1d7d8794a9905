"""The virtual camera: linear HDR scene -> (8-bit LDR input, linear HDR target) training pairs.

Pure numpy. A view is cut out of a scene (a rectilinear perspective view of an equirectangular
panorama, or a crop of an ordinary photo), its colours are jittered, it is exposed so that a
chosen fraction of its pixels clips, and it goes through a random camera curve, sensor noise,
8-bit quantisation and optionally JPEG. The target is the exposed linear scene, before clipping.

Every random choice comes from the `numpy.random.Generator` passed in, so a seed fixes a sample.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..colour import LUMINANCE_WEIGHTS
from ..io.ldr import jpeg_round_trip

CURVES = ("sigmoid", "gamma", "mixed")


@dataclass
class CameraSettings:
    """Ranges of the virtual camera; the defaults are the reference recipe's."""

    crop: int = 320  # output side in pixels
    crop_fraction: tuple[float, float] = (0.2, 0.6)  # of a photo's shorter side
    fov: tuple[float, float] = (50.0, 90.0)  # panorama views, degrees (horizontal)
    max_pitch: float = 30.0  # panorama views, degrees up or down
    clip_fraction: tuple[float, float] = (0.05, 0.15)  # of pixels saturated in the input
    # Faint highlights: a share of samples is exposed so that the view's brightest pixel is only
    # `faint_headroom` times white; the network must learn not to boost those (README, stage 3
    # of the default model).
    faint_probability: float = 0.0
    faint_headroom: tuple[float, float] = (1.0, 1.3)
    curve: str = "sigmoid"  # sigmoid | gamma | mixed (half each)
    curve_n: tuple[float, float] = (0.9, 0.1)  # sigmoid exponent: mean, std
    curve_a: tuple[float, float] = (0.6, 0.1)  # sigmoid offset: mean, std
    gamma: tuple[float, float] = (2.2, 0.1)  # gamma curve: mean, std
    hue_std: float = 7.0  # degrees
    saturation_std: float = 0.1
    noise_max: float = 0.01  # noise std drawn in [0, noise_max]
    jpeg_probability: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 100)
    flip: bool = True  # random horizontal mirror

    def __post_init__(self) -> None:
        if self.crop < 8:
            raise ValueError(f"crop must be at least 8 pixels, got {self.crop}")
        lo, hi = self.clip_fraction
        if not 0.0 <= lo <= hi < 1.0:
            raise ValueError(f"clip fraction range must satisfy 0 <= lo <= hi < 1, got {lo}, {hi}")
        lo, hi = self.crop_fraction
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"crop fraction range must satisfy 0 < lo <= hi <= 1, got {lo}, {hi}")
        lo, hi = self.fov
        if not 1.0 <= lo <= hi < 179.0:
            raise ValueError(f"field of view range must lie in [1, 179) degrees, got {lo}, {hi}")
        if not 0.0 <= self.faint_probability <= 1.0:
            raise ValueError(
                f"faint-highlight probability must lie in [0, 1], got {self.faint_probability}"
            )
        lo, hi = self.faint_headroom
        if not 1.0 <= lo <= hi:
            raise ValueError(
                f"faint-highlight headroom range must satisfy 1 <= lo <= hi, got {lo}, {hi}"
            )
        if self.curve not in CURVES:
            raise ValueError(f"unknown camera curve {self.curve!r}; one of {', '.join(CURVES)}")
        if not 0.0 <= self.jpeg_probability <= 1.0:
            raise ValueError(f"JPEG probability must lie in [0, 1], got {self.jpeg_probability}")
        qlo, qhi = self.jpeg_quality
        if not 1 <= qlo <= qhi <= 100:
            raise ValueError(
                f"JPEG quality range must satisfy 1 <= lo <= hi <= 100, got {qlo}, {qhi}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CameraSettings:
        names = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kw)


# -- scenes ---------------------------------------------------------------------------------------
def is_panorama(shape: tuple[int, ...]) -> bool:
    """Equirectangular maps are twice as wide as they are high."""
    h, w = shape[:2]
    return abs(w / h - 2.0) < 0.02


def downsample2(image: np.ndarray) -> np.ndarray:
    """2x2 box average (odd edges dropped)."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    x = image[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def pyramid(image: np.ndarray, min_side: int) -> list[np.ndarray]:
    """The image and its 2x box-filtered reductions down to about `min_side` pixels, so a view
    can be sampled from a level where neighbouring output pixels are at most ~2 pixels apart."""
    levels = [image]
    while min(levels[-1].shape[:2]) // 2 >= max(min_side, 2):
        levels.append(downsample2(levels[-1]))
    return levels


def bilinear_sample(image: np.ndarray, u: np.ndarray, v: np.ndarray, wrap_u: bool) -> np.ndarray:
    """Sample image (H, W, C) at pixel coordinates u (column) and v (row); pixel centres at
    integers. Columns wrap around for panoramas, rows (and columns otherwise) clamp."""
    h, w = image.shape[:2]
    u0 = np.floor(u)
    v0 = np.floor(v)
    fu = (u - u0).astype(np.float32)[..., None]
    fv = (v - v0).astype(np.float32)[..., None]
    u0 = u0.astype(np.intp)
    v0 = v0.astype(np.intp)
    if wrap_u:
        ua, ub = u0 % w, (u0 + 1) % w
    else:
        ua, ub = np.clip(u0, 0, w - 1), np.clip(u0 + 1, 0, w - 1)
    ra, rb = np.clip(v0, 0, h - 1) * w, np.clip(v0 + 1, 0, h - 1) * w
    flat = image.reshape(h * w, -1)  # one gather per corner on flat indices is the fast path
    top = np.take(flat, ra + ua, axis=0) * (1 - fu) + np.take(flat, ra + ub, axis=0) * fu
    bottom = np.take(flat, rb + ua, axis=0) * (1 - fu) + np.take(flat, rb + ub, axis=0) * fu
    return (top * (1 - fv) + bottom * fv).astype(np.float32, copy=False)


def _level_for_step(levels: list[np.ndarray], step: float) -> tuple[np.ndarray, float]:
    """Pyramid level whose pixel spacing is closest below the sampling step; its scale."""
    k = int(np.clip(math.floor(math.log2(max(step, 1.0))), 0, len(levels) - 1))
    return levels[k], float(2**k)


def perspective_view(
    levels: list[np.ndarray], size: int, yaw: float, pitch: float, fov: float
) -> np.ndarray:
    """A size x size rectilinear view (angles in degrees) of an equirectangular panorama."""
    full_w = levels[0].shape[1]
    f = 0.5 * size / math.tan(math.radians(fov) / 2)  # focal length in output pixels
    # source pixels per output pixel at the view centre (2*pi radians span the panorama's width)
    step = (full_w / (2 * math.pi)) / f
    image, scale = _level_for_step(levels, step)
    h, w = image.shape[:2]
    c = (size - 1) / 2
    # camera frame: x right, y up, z forward; float32 is ample for sub-pixel positions here
    coord = (np.arange(size, dtype=np.float32) - np.float32(c)) / np.float32(f)
    x, y = coord[None, :], -coord[:, None]
    p, t = math.radians(pitch), math.radians(yaw)
    y, z = y * math.cos(p) + math.sin(p), -y * math.sin(p) + math.cos(p)  # z was 1
    x, z = x * math.cos(t) + z * math.sin(t), -x * math.sin(t) + z * math.cos(t)
    y = np.broadcast_to(y, x.shape)
    lon = np.arctan2(x, z)
    lat = np.arctan2(y, np.hypot(x, z))
    u = (lon / (2 * math.pi) + 0.5) * w - 0.5
    v = (0.5 - lat / math.pi) * h - 0.5
    return bilinear_sample(image, u, v, wrap_u=True)


def photo_crop(
    levels: list[np.ndarray], size: int, x0: float, y0: float, side: float
) -> np.ndarray:
    """A square crop (top-left x0, y0 and side in full-resolution pixels) resized to size."""
    step = side / size
    image, scale = _level_for_step(levels, step)
    # sample centres in edge coordinates (pixel k spans [k, k + 1]) -> the level's pixel indices
    centres = (np.arange(size, dtype=np.float64) + 0.5) * step
    u = (x0 + centres) / scale - 0.5
    v = (y0 + centres) / scale - 0.5
    uu, vv = np.meshgrid(u, v)
    return bilinear_sample(image, uu, vv, wrap_u=False)


def random_view(
    levels: list[np.ndarray], panorama: bool, settings: CameraSettings, rng: np.random.Generator
) -> np.ndarray:
    """A random view of a scene, before the camera: linear float32 (crop, crop, 3)."""
    size = settings.crop
    if panorama:
        view = perspective_view(
            levels,
            size,
            yaw=rng.uniform(-180.0, 180.0),
            pitch=rng.uniform(-settings.max_pitch, settings.max_pitch),
            fov=rng.uniform(*settings.fov),
        )
    else:
        h, w = levels[0].shape[:2]
        side = rng.uniform(*settings.crop_fraction) * min(h, w)
        view = photo_crop(
            levels, size, x0=rng.uniform(0, w - side), y0=rng.uniform(0, h - side), side=side
        )
    if settings.flip and rng.random() < 0.5:
        view = view[:, ::-1]
    return np.ascontiguousarray(view)


# -- the camera -----------------------------------------------------------------------------------
def colour_jitter_matrix(hue_degrees: float, saturation_scale: float) -> np.ndarray:
    """3x3 linear-RGB matrix: rotate hue about the grey axis, then scale chroma about luminance."""
    a = math.radians(hue_degrees)
    k = np.ones(3) / math.sqrt(3.0)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) * math.cos(a) + math.sin(a) * kx + (1 - math.cos(a)) * np.outer(k, k)
    sat = saturation_scale * np.eye(3) + (1 - saturation_scale) * np.outer(
        np.ones(3), LUMINANCE_WEIGHTS
    )
    return (sat @ rot).astype(np.float32)


def exposure_for_clip_fraction(scene: np.ndarray, clip_fraction: float) -> float:
    """Gain e such that `clip_fraction` of the pixels have max channel of e * scene >= 1."""
    peak = scene.max(axis=-1)
    level = (
        float(np.quantile(peak, 1.0 - clip_fraction)) if clip_fraction > 0 else float(peak.max())
    )
    if not level > 0:
        level = float(peak.max())
    return 1.0 / level if level > 0 else 1.0


def exposure_for_headroom(scene: np.ndarray, headroom: float) -> float:
    """Gain e such that the brightest pixel's max channel of e * scene is `headroom` (>= 1)."""
    peak = float(scene.max())
    return headroom / peak if peak > 0 else 1.0


def random_exposure(scene: np.ndarray, settings: CameraSettings, rng: np.random.Generator) -> float:
    """A clip-fraction exposure, or with `faint_probability` a faint-highlight one."""
    if settings.faint_probability > 0 and rng.random() < settings.faint_probability:
        return exposure_for_headroom(scene, rng.uniform(*settings.faint_headroom))
    return exposure_for_clip_fraction(scene, rng.uniform(*settings.clip_fraction))


def sigmoid_curve(h: np.ndarray, n: float, a: float) -> np.ndarray:
    """f(H) = (1 + a) H^n / (H^n + a): maps 0 to 0 and 1 to 1."""
    hn = np.power(h, np.float32(n))
    return ((1 + a) * hn / (hn + a)).astype(np.float32)


def gamma_curve(h: np.ndarray, g: float) -> np.ndarray:
    return np.power(h, np.float32(1.0 / g)).astype(np.float32)


def _random_curve(settings: CameraSettings, rng: np.random.Generator):
    kind = settings.curve
    if kind == "mixed":
        kind = "sigmoid" if rng.random() < 0.5 else "gamma"
    if kind == "sigmoid":
        n = float(np.clip(rng.normal(*settings.curve_n), 0.4, 2.0))
        a = float(np.clip(rng.normal(*settings.curve_a), 0.05, 3.0))
        return lambda h: sigmoid_curve(h, n, a)
    g = float(np.clip(rng.normal(*settings.gamma), 1.2, 3.5))
    return lambda h: gamma_curve(h, g)


def capture(
    view: np.ndarray, settings: CameraSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Photograph a linear view: -> (input x float32 on 8-bit levels in [0, 1], target y linear).

    The target is the colour-jittered, exposed scene; the input is what a camera would record of
    it. Pixels saturated in the sensor stay white whatever the noise.
    """
    m = colour_jitter_matrix(
        rng.normal(0.0, settings.hue_std), max(0.0, 1.0 + rng.normal(0.0, settings.saturation_std))
    )
    scene = np.maximum(view @ m.T, 0.0).astype(np.float32)
    e = random_exposure(scene, settings, rng)
    y = (scene * np.float32(e)).astype(np.float32)
    curve = _random_curve(settings, rng)
    x = curve(np.clip(y, 0.0, 1.0))
    sigma = rng.uniform(0.0, settings.noise_max)
    if sigma > 0:
        x = x + rng.normal(0.0, sigma, x.shape).astype(np.float32)
        x = np.where(y >= 1.0, np.float32(1.0), x)
    x8 = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
    if settings.jpeg_probability > 0 and rng.random() < settings.jpeg_probability:
        quality = rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1)
        x8 = jpeg_round_trip(x8, quality)[0]
    return x8.astype(np.float32) / np.float32(255.0), y


def clipped_fraction(x: np.ndarray) -> float:
    """Fraction of pixels of an LDR input whose brightest channel is at white."""
    return float(np.mean(x.max(axis=-1) >= 1.0))
