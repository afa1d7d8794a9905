"""Scores for single-image HDR reconstruction, as fixed in docs/evaluation.md (SI-HDR protocol).

The pipeline for one image (`score`):

1. Gain alignment: the reconstruction is relative, so one global gain g with
   `log g = mean(log Y_ref - log Y_pred)` over the unclipped pixels (the LDR input's max channel
   at most 241 of 255) where both luminances exceed 1e-6 (`alignment_gain`).
2. Absolute units: reference and aligned prediction are multiplied by
   `PEAK_LUMINANCE / max(Y_ref)` (4000 cd/m^2) and clamped per channel to [0.005, 10000]
   (`to_absolute`).
3. Metrics on the PU21-encoded images (`pu21_encode`, banding_glare variant): PU21-PSNR over all
   pixels and over the clipped region (max channel >= 242 of 255), PU21-SSIM on PU-encoded
   luminance, log2 luminance RMSE (stops) on the clipped region.
4. The same metrics after the SI-HDR camera-response correction (`crf_correct`), reported with
   the suffix `+CRF`.

Everything is vectorised numpy; a 1920x1280 image scores in a fraction of a second
(benchmarks/bench_metrics.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .colour import LUMINANCE_WEIGHTS

# PU21, banding_glare variant (Mantiuk & Azimi 2021), parameters p1..p7.
PU21_PARAMS = (
    0.353487901,
    0.3734658629,
    8.277049286e-05,
    0.9062562627,
    0.09150303166,
    0.9099517204,
    596.3148142,
)
L_MIN = 0.005  # cd/m^2: PU21's valid range, also the clamp of the absolute images
L_MAX = 10000.0
PU21_PSNR_PEAK = 256.0  # the PU21 value of ~100 cd/m^2, the authors' choice (not 595)
PEAK_LUMINANCE = 4000.0  # cd/m^2 the reference's brightest pixel is mapped to
UNCLIPPED_MAX_CODE = 241  # pixels at or below this 8-bit code take part in the gain
CLIPPED_MIN_CODE = 242  # pixels at or above this 8-bit code form the clipped region
GAIN_MIN_LUMINANCE = 1e-6
SSIM_SIGMA = 1.5
SSIM_WINDOW = 2 * int(3.5 * SSIM_SIGMA + 0.5) + 1  # scikit-image's Gaussian window (truncate 3.5)
LDR_GAMMA = 2.2  # the protocol's camera curve, inverted by the `ldr_linear` baseline
CRF_DEGREE = 3
CRF_CHROMA_LAMBDA = 0.01

METRIC_NAMES = ("pu21_psnr", "pu21_psnr_clipped", "pu21_ssim", "log_rmse_clipped")
CRF_SUFFIX = "+CRF"
ALL_METRIC_NAMES = METRIC_NAMES + tuple(m + CRF_SUFFIX for m in METRIC_NAMES)

# Rec. 709 / sRGB primaries, D65 white: linear RGB -> CIE XYZ (the SI-HDR code's matrix).
RGB_TO_XYZ = np.array(
    [[0.412424, 0.357579, 0.180464], [0.212656, 0.715158, 0.072186], [0.019332, 0.119193, 0.950444]]
)
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
UV_SCALE = 410.0 / 255.0  # SI-HDR scales u'v' by this before the chroma fit

# SMPTE ST 2084 (PQ) constants, exact rationals.
PQ_M1 = 2610.0 / 16384.0
PQ_M2 = 2523.0 / 4096.0 * 128.0
PQ_C1 = 3424.0 / 4096.0
PQ_C2 = 2413.0 / 4096.0 * 32.0
PQ_C3 = 2392.0 / 4096.0 * 32.0


def _as_float(a) -> np.ndarray:
    """float32 arrays stay float32 (images, for speed); anything else becomes float64."""
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


# -- encodings ----------------------------------------------------------------------------------
def pu21_encode(luminance: np.ndarray) -> np.ndarray:
    """PU21 (banding_glare) of absolute values in cd/m^2, clamped to [0.005, 10000] first.

    `V = max(p7 * (((p1 + p2 L^p4) / (1 + p3 L^p4))^p5 - p6), 0)`, elementwise, in the input's
    float precision (float32 images stay float32 for speed; other inputs become float64). Check
    values: 0.01 -> 0.3722, 1 -> 36.5439, 100 -> 256.3839, 1000 -> 420.0969, 10000 -> 595.3939.
    """
    x = _as_float(luminance)
    p1, p2, p3, p4, p5, p6, p7 = (x.dtype.type(p) for p in PU21_PARAMS)
    lp = np.clip(x, L_MIN, L_MAX, dtype=x.dtype)  # a new array: safe to work in place below
    np.power(lp, p4, out=lp)
    v = lp * p2
    v += p1
    lp *= p3
    lp += 1
    v /= lp
    np.power(v, p5, out=v)
    v -= p6
    v *= p7
    return np.maximum(v, 0, out=v)


def pq_encode(luminance: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 inverse EOTF: cd/m^2 (up to 10000) -> [0, 1]."""
    x = _as_float(luminance)
    t = x.dtype.type
    lp = np.power(np.maximum(x, t(0.0)) / t(L_MAX), t(PQ_M1))
    return np.power((t(PQ_C1) + t(PQ_C2) * lp) / (t(1.0) + t(PQ_C3) * lp), t(PQ_M2))


def pq_decode(code: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 EOTF: [0, 1] -> cd/m^2."""
    x = _as_float(code)
    t = x.dtype.type
    e = np.power(np.clip(x, t(0.0), t(1.0)), t(1.0 / PQ_M2))
    return t(L_MAX) * np.power(
        np.maximum(e - t(PQ_C1), t(0.0)) / (t(PQ_C2) - t(PQ_C3) * e), t(1.0 / PQ_M1)
    )


def _linear_combination(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """`image[..., :3] @ matrix.T` as explicit sums of planes: tiny matmuls over millions of
    pixels are slow in BLAS (and slower still when its threads compete for the cores)."""
    a = np.asarray(image)
    t = a.dtype.type if a.dtype.kind == "f" else np.float32
    planes = [a[..., c].astype(t, copy=False) for c in range(3)]
    out = []
    for row in np.atleast_2d(matrix):
        acc = planes[0] * t(row[0])
        acc += planes[1] * t(row[1])
        acc += planes[2] * t(row[2])
        out.append(acc)
    return out[0] if np.ndim(matrix) == 1 else np.stack(out, axis=-1)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance `0.2126 R + 0.7152 G + 0.0722 B` of (..., 3) linear RGB, in the
    input's float precision (float32 for other types)."""
    return _linear_combination(rgb, LUMINANCE_WEIGHTS.astype(np.float64))


# -- masks and alignment ------------------------------------------------------------------------
def ldr_max_code(ldr: np.ndarray) -> np.ndarray:
    """The max channel of an LDR input in 8-bit codes (0..255), as float32 (H, W).

    uint8 is taken as is, uint16 is divided by 257, floats in [0, 1] are multiplied by 255.
    """
    a = np.asarray(ldr)
    if a.ndim == 3:  # an elementwise max of planes: a reduce over a length-3 axis is ~5x slower
        a = (
            np.maximum(np.maximum(a[..., 0], a[..., 1]), a[..., 2])
            if a.shape[-1] >= 3
            else a[..., 0]
        )
    if a.dtype == np.uint8:
        return a.astype(np.float32)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 257.0
    if a.dtype.kind == "f":
        return a.astype(np.float32) * 255.0
    raise ValueError(f"unsupported LDR pixel type {a.dtype}; expected uint8, uint16 or float")


def clipped_mask(ldr: np.ndarray) -> np.ndarray:
    """Where the LDR input's max channel is 242 of 255 or more: the region to reconstruct."""
    return ldr_max_code(ldr) >= CLIPPED_MIN_CODE


def unclipped_mask(ldr: np.ndarray) -> np.ndarray:
    """Where the LDR input's max channel is 241 of 255 or less: pixels that fix the gain."""
    return ldr_max_code(ldr) <= UNCLIPPED_MAX_CODE


def alignment_gain(
    prediction: np.ndarray, reference: np.ndarray, ldr: np.ndarray | None = None
) -> float:
    """The global gain g for `g * prediction`: `log g = mean(log Y_ref - log Y_pred)`.

    Averaged over the unclipped pixels of `ldr` (all pixels if `ldr` is None) where both
    luminances exceed 1e-6. If no pixel qualifies, the unclipped condition is dropped; if still
    none, the gain is 1.
    """
    return _gain(
        luminance(prediction),
        luminance(reference),
        unclipped_mask(ldr) if ldr is not None else None,
    )


def _gain(y_pred: np.ndarray, y_ref: np.ndarray, unclipped: np.ndarray | None) -> float:
    valid = (
        (y_ref > GAIN_MIN_LUMINANCE)
        & (y_pred > GAIN_MIN_LUMINANCE)
        & np.isfinite(y_ref)
        & np.isfinite(y_pred)
    )
    usable = valid & unclipped if unclipped is not None else valid
    if not usable.any():
        usable = valid
    if not usable.any():
        return 1.0
    log_ratio = np.log(y_ref[usable]) - np.log(y_pred[usable])
    return float(np.exp(np.mean(log_ratio, dtype=np.float64)))


def absolute_scale(reference: np.ndarray) -> float:
    """The factor that maps the reference's brightest luminance to PEAK_LUMINANCE cd/m^2."""
    peak = float(np.max(luminance(reference)))
    if not peak > 0:
        raise ValueError("the reference image is black (max luminance <= 0); it cannot be scored")
    return PEAK_LUMINANCE / peak


def to_absolute(image: np.ndarray, scale: float) -> np.ndarray:
    """`image * scale` clamped per channel to PU21's range [0.005, 10000] cd/m^2, float32."""
    with np.errstate(over="ignore"):  # a huge value overflows to inf, then clamps to L_MAX
        return np.clip(np.asarray(image, np.float32) * np.float32(scale), L_MIN, L_MAX)


# -- metrics on absolute images -----------------------------------------------------------------
def psnr_from_mse(mse: float, peak: float = PU21_PSNR_PEAK) -> float:
    """10 log10(peak^2 / MSE); infinite for identical images."""
    if mse <= 0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse))


def pu21_psnr(
    prediction_pu: np.ndarray, reference_pu: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """PU21-PSNR of PU-encoded (H, W, 3) images over all pixels, or the pixels of `mask`.

    NaN when the mask selects nothing (an image without clipped pixels).
    """
    if mask is not None:
        if not mask.any():
            return float("nan")
        prediction_pu, reference_pu = prediction_pu[mask], reference_pu[mask]
    d = np.subtract(prediction_pu, reference_pu, dtype=np.float64).ravel()
    return psnr_from_mse(float(np.dot(d, d) / d.size))


def pu21_ssim(prediction_pu_y: np.ndarray, reference_pu_y: np.ndarray) -> float:
    """SSIM of PU-encoded luminance (H, W): scikit-image, data range 256, Gaussian sigma 1.5,
    population covariance, as the SI-HDR protocol. NaN for images smaller than the 11-pixel
    Gaussian window."""
    from skimage.metrics import structural_similarity

    if min(prediction_pu_y.shape[:2]) < SSIM_WINDOW:
        return float("nan")

    return float(
        structural_similarity(
            prediction_pu_y.astype(np.float32),
            reference_pu_y.astype(np.float32),
            data_range=PU21_PSNR_PEAK,
            gaussian_weights=True,
            sigma=SSIM_SIGMA,
            use_sample_covariance=False,
        )
    )


def log2_rmse(
    prediction_y: np.ndarray, reference_y: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """RMSE of log2 luminance (stops) of absolute (already clamped) luminances; NaN on an empty
    mask."""
    if mask is not None:
        if not mask.any():
            return float("nan")
        prediction_y, reference_y = prediction_y[mask], reference_y[mask]
    d = (np.log2(prediction_y) - np.log2(reference_y)).astype(np.float64).ravel()
    return float(np.sqrt(np.dot(d, d) / d.size))


# -- SI-HDR camera-response (CRF) correction ----------------------------------------------------
def rgb_to_yuv(rgb: np.ndarray) -> np.ndarray:
    """Linear RGB -> (Y, u' * 410/255, v' * 410/255), float32 (..., 3); XYZ clamped to
    [1e-4, 1e8] so chromaticity is defined everywhere (as the SI-HDR code)."""
    xyz = np.clip(_linear_combination(np.asarray(rgb, np.float32), RGB_TO_XYZ), 1e-4, 1e8)
    x_, y_, z_ = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    d = x_ + 15.0 * y_ + 3.0 * z_  # u' = 4X/d, v' = 9Y/d
    k = np.float32(UV_SCALE)
    return np.stack([y_, (4.0 * k) * x_ / d, (9.0 * k) * y_ / d], axis=-1)


def yuv_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """Inverse of `rgb_to_yuv`; XYZ clamped to [1e-4, 1e8], negative RGB set to 0."""
    big_y = np.clip(yuv[..., 0], 1e-4, 1e8)
    u = yuv[..., 1] / np.float32(UV_SCALE)
    v = np.maximum(yuv[..., 2] / np.float32(UV_SCALE), np.float32(1e-9))
    big_x = np.clip(big_y * 9.0 * u / (4.0 * v), 1e-4, 1e8)
    big_z = np.clip(big_y * (12.0 - 3.0 * u - 20.0 * v) / (4.0 * v), 1e-4, 1e8)
    xyz = np.stack([big_x, big_y, big_z], axis=-1).astype(np.float32)
    return np.maximum(_linear_combination(xyz, XYZ_TO_RGB), 0.0)


def polynomial_features(x: np.ndarray, degree: int = CRF_DEGREE) -> np.ndarray:
    """Design matrix of the SI-HDR fit for (N, C) values, transposed: float64 (K, N) rows
    x_c^d for d = degree..2, then the cross products x_i x_j (i < j), then x_c, then ones.
    (Rows, not columns, so every feature is one contiguous vector.)"""
    x = np.asarray(x, np.float64).T
    c, n = x.shape
    k = (degree - 1) * c + c * (c - 1) // 2 + c + 1
    f = np.empty((k, n))
    row = 0
    for d in range(degree, 1, -1):
        for ch in range(c):
            f[row] = x[ch]
            for _ in range(d - 1):
                f[row] *= x[ch]
            row += 1
    for i in range(c):
        for j in range(i + 1, c):
            np.multiply(x[i], x[j], out=f[row])
            row += 1
    f[row : row + c] = x
    f[-1] = 1.0
    return f


def fit_polynomial(
    x: np.ndarray, y: np.ndarray, lam: float, degree: int = CRF_DEGREE, chunk: int = 1 << 18
) -> np.ndarray:
    """Ridge least squares W (K, C) for `features(x)' W ~ y`, pulled towards the identity map.

    Minimises |X W - Y|^2 + s |W - W0|^2 with s = lam * N / K (K features) and W0 the identity
    on the linear terms, i.e. W = (X'X + s I)^-1 (X'Y + s W0). X'X and X'Y are accumulated in
    float64 over chunks, so memory stays small for large images.
    """
    n, c = x.shape
    k = polynomial_features(x[:1], degree).shape[0]
    xtx = np.zeros((k, k))
    xty = np.zeros((k, c))
    for start in range(0, n, chunk):
        f = polynomial_features(x[start : start + chunk], degree)
        xtx += f @ f.T
        xty += f @ np.asarray(y[start : start + chunk], np.float64)
    w0 = np.zeros((k, c))
    w0[k - 1 - c : k - 1] = np.eye(c)  # the linear terms sit just before the constant
    s = lam * n / k
    # lstsq rather than solve: a flat image makes the unregularised system singular
    return np.linalg.lstsq(xtx + s * np.eye(k), xty + s * w0, rcond=None)[0]


def apply_polynomial(
    x: np.ndarray, w: np.ndarray, degree: int = CRF_DEGREE, chunk: int = 1 << 18
) -> np.ndarray:
    """features(x)' @ w, chunked, as sums of feature rows; float32 (N, C)."""
    out = np.empty((x.shape[0], w.shape[1]), np.float32)
    for start in range(0, x.shape[0], chunk):
        f = polynomial_features(x[start : start + chunk], degree)
        for ch in range(w.shape[1]):
            acc = f[-1] * w[-1, ch]
            for row in range(w.shape[0] - 1):
                acc += f[row] * w[row, ch]
            out[start : start + chunk, ch] = acc
    return out


def crf_correct(prediction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The SI-HDR camera-response correction of an absolute prediction towards its reference.

    What is implemented (after the SI-HDR benchmark's `crf_correction` with its default
    arguments deg=3, lambda=0.01, 'pq', 'luv'):
    - both images are floored at 0.005 cd/m^2 and converted to Y and u'v' (u'v' scaled by
      410/255, as there);
    - luminance: a cubic polynomial (1, x, x^2, x^3) in the PQ domain maps PQ(Y_pred) to
      PQ(Y_ref), fitted by unregularised least squares over all pixels; the result is floored at
      PQ(0.005) and decoded;
    - chroma: a cubic polynomial in (u', v') with the cross term u'v' (8 coefficients per
      output: u^3, v^3, u^2, v^2, uv, u, v, 1) maps the prediction's chroma to the reference's
      in the linear domain, ridge regularised towards the identity map with lambda 0.01
      (penalty s |W - W0|^2, s = lambda * N / 8); the result is floored at 0.005;
    - back to RGB, clamped to [0.005, 10000] cd/m^2.
    PQ uses the exact ST 2084 constants (the SI-HDR code rounds them to four decimals). Normal
    equations are accumulated in float64, pixels are float32.
    Returns float32 (H, W, 3); the inputs are not modified.
    """
    pred = np.maximum(np.asarray(prediction, np.float32), np.float32(L_MIN))
    ref = np.maximum(np.asarray(reference, np.float32), np.float32(L_MIN))
    shape = pred.shape
    p = rgb_to_yuv(pred).reshape(-1, 3)
    r = rgb_to_yuv(ref).reshape(-1, 3)

    x_l, y_l = pq_encode(p[:, :1]), pq_encode(r[:, :1])
    w_l = fit_polynomial(x_l, y_l, lam=0.0)
    lum = pq_decode(np.maximum(apply_polynomial(x_l, w_l), np.float32(pq_encode(L_MIN))))

    w_uv = fit_polynomial(p[:, 1:], r[:, 1:], lam=CRF_CHROMA_LAMBDA)
    uv = np.maximum(apply_polynomial(p[:, 1:], w_uv), np.float32(L_MIN))

    rgb = yuv_to_rgb(np.concatenate([lum, uv], axis=1)).reshape(shape)
    return np.clip(rgb, L_MIN, L_MAX).astype(np.float32)


# -- the whole protocol for one image -----------------------------------------------------------
@dataclass
class ImageScore:
    """The scores of one prediction against one reference (metrics keyed as ALL_METRIC_NAMES)."""

    metrics: dict
    gain: float
    absolute_scale: float
    clipped_fraction: float


def finite_prediction(prediction: np.ndarray) -> np.ndarray:
    """float32 RGB with NaN as 0 and +-Inf as the largest float32 / 0: a diverging network's
    output is scored (badly), never propagated as NaN."""
    return np.nan_to_num(
        np.asarray(prediction, np.float32)[..., :3],
        nan=0.0,
        posinf=np.finfo(np.float32).max,
        neginf=0.0,
    )


class ScoringReference:
    """A reference and its LDR input prepared once (absolute image, PU21 encodings, masks), so
    that several predictions of the same input are scored without redoing that work."""

    def __init__(self, reference: np.ndarray, ldr: np.ndarray):
        ref = np.asarray(reference, np.float32)[..., :3]
        if np.asarray(ldr).shape[:2] != ref.shape[:2]:
            raise ValueError(f"shape mismatch: reference {ref.shape}, LDR input {np.shape(ldr)}")
        self.shape = ref.shape
        self.y_relative = luminance(ref)
        codes = ldr_max_code(ldr)  # once for both masks
        self.unclipped = codes <= UNCLIPPED_MAX_CODE
        self.clipped = codes >= CLIPPED_MIN_CODE
        self.scale = absolute_scale(ref)
        self.absolute = to_absolute(ref, self.scale)
        self.pu = pu21_encode(self.absolute)
        self.y = np.clip(luminance(self.absolute), L_MIN, L_MAX)
        self.pu_y = pu21_encode(self.y)

    def aligned(self, prediction: np.ndarray) -> tuple[np.ndarray, float]:
        """(absolute prediction, gain): the gain alignment, then the reference's scale."""
        gain = _gain(luminance(prediction), self.y_relative, self.unclipped)
        return to_absolute(prediction, gain * self.scale), gain

    def metrics(self, prediction_abs: np.ndarray) -> dict:
        """The four metrics of an absolute prediction."""
        pred_pu = pu21_encode(prediction_abs)
        pred_y = np.clip(luminance(prediction_abs), L_MIN, L_MAX)
        return {
            "pu21_psnr": pu21_psnr(pred_pu, self.pu),
            "pu21_psnr_clipped": pu21_psnr(pred_pu, self.pu, self.clipped),
            "pu21_ssim": pu21_ssim(pu21_encode(pred_y), self.pu_y),
            "log_rmse_clipped": log2_rmse(pred_y, self.y, self.clipped),
        }

    def score(self, prediction: np.ndarray, crf: bool = True) -> ImageScore:
        """See `score`."""
        prediction = finite_prediction(prediction)
        if prediction.shape != self.shape:
            raise ValueError(
                f"shape mismatch: prediction {prediction.shape}, reference {self.shape}"
            )
        pred_abs, gain = self.aligned(prediction)
        result = self.metrics(pred_abs)
        if crf:
            corrected = crf_correct(pred_abs, self.absolute)
            result.update({k + CRF_SUFFIX: v for k, v in self.metrics(corrected).items()})
        else:
            result.update({name + CRF_SUFFIX: float("nan") for name in METRIC_NAMES})
        return ImageScore(
            metrics=result,
            gain=gain,
            absolute_scale=self.scale,
            clipped_fraction=float(self.clipped.mean()),
        )


def score(
    prediction: np.ndarray, reference: np.ndarray, ldr: np.ndarray, crf: bool = True
) -> ImageScore:
    """Align `prediction` to `reference` (gain, then absolute units) and compute every metric.

    prediction, reference: linear (H, W, 3) (relative and absolute scale respectively);
    ldr: the LDR input the prediction was made from (uint8, uint16 or [0, 1] float), which
    defines the unclipped pixels (gain) and the clipped region (clipped metrics). NaN in the
    prediction counts as black and +Inf as the brightest value (both then clamp to PU21's range).
    With crf=True the `+CRF` metrics are added (NaN otherwise). To score several predictions
    of one input, build a `ScoringReference` once and call its `score`.
    """
    return ScoringReference(reference, ldr).score(prediction, crf=crf)


# -- video ---------------------------------------------------------------------------------------
@dataclass
class TemporalStability:
    """Mean |log2 Y_t - log2 Y_{t-1}| of the outputs and of the comparison sequence (stops per
    frame), and their ratio: 1 is as stable as the comparison, > 1 flickers more."""

    output_change: float
    comparison_change: float
    ratio: float


def ldr_linear(ldr: np.ndarray) -> np.ndarray:
    """The `ldr_linear` baseline: an 8/16-bit input linearised as `x ** 2.2` (float32)."""
    a = np.asarray(ldr)
    x = a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    return np.power(x, np.float32(LDR_GAMMA))


def _as_linear(a) -> np.ndarray:
    """float32 linear values; 8/16-bit LDR input is linearised as the `ldr_linear` baseline."""
    a = np.asarray(a)
    return ldr_linear(a) if a.dtype.kind in "ui" else np.asarray(a, np.float32)


def _change_ratio(out: float, ref: float) -> float:
    return out / ref if ref > 0 else (1.0 if out == 0 else float("inf"))


def temporal_stability(
    outputs: np.ndarray, comparison: np.ndarray, floor_fraction: float = 1e-3
) -> TemporalStability:
    """Temporal stability of a reconstructed sequence (docs/evaluation.md, section 9).

    outputs:    (T, H, W, 3) linear reconstructions of consecutive frames.
    comparison: the reference HDR sequence, or the input sequence (uint8/uint16 LDR frames are
                linearised as x^2.2), (T, H, W, 3) or (T, H, W).
    Luminance is floored at `floor_fraction` times the sequence's median luminance (10 stops
    below it by default) so noise in black regions does not dominate; the measure is
    scale-invariant, so relative outputs and absolute references compare directly.
    The whole sequences at hand, this is `TemporalStabilityAccumulator` with those floors.
    """
    floors = (
        _sequence_floor(outputs, floor_fraction),
        _sequence_floor(comparison, floor_fraction),
    )
    accumulator = TemporalStabilityAccumulator(floor_fraction, floors=floors)
    for output_frame, comparison_frame in zip(outputs, comparison):
        accumulator.add(output_frame, comparison_frame)
    return accumulator.result()


def _sequence_floor(frames: np.ndarray, floor_fraction: float) -> float:
    """`floor_fraction` times the median luminance of a whole (T, H, W[, 3]) sequence."""
    a = _as_linear(frames)
    y = luminance(a) if a.ndim == 4 else a
    if y.ndim != 3 or y.shape[0] < 2:
        raise ValueError(f"a sequence needs shape (T, H, W[, 3]) with T >= 2, got {a.shape}")
    return max(float(np.median(y)) * floor_fraction, 1e-12)


class _LogLuminanceChange:
    """Running sum of |log2 Y_t - log2 Y_{t-1}| over the pixels of one frame sequence."""

    def __init__(self, floor_fraction: float, what: str, floor: float | None = None):
        self.floor_fraction = floor_fraction
        self.what = what
        self.floor = floor  # None: floor_fraction times the first frame's median
        self.previous: np.ndarray | None = None
        self.total = 0.0  # float64: thousands of frames of millions of pixels
        self.values = 0

    def log_luminance(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """(log2 of the floored luminance, the floor); changes nothing."""
        a = _as_linear(frame)
        if a.ndim == 3 and a.shape[2] >= 3:
            y = luminance(a[..., :3])
        elif a.ndim == 2:
            y = a
        else:
            raise ValueError(f"{self.what} frame: need shape (H, W[, 3]), got {a.shape}")
        if self.previous is not None and y.shape != self.previous.shape:
            raise ValueError(
                f"{self.what} frame {y.shape} differs from the previous {self.previous.shape}"
            )
        floor = self.floor
        if floor is None:
            floor = max(float(np.median(y)) * self.floor_fraction, 1e-12)
        return np.log2(np.maximum(y, np.float32(floor))), floor

    def add(self, log_y: np.ndarray, floor: float) -> None:
        self.floor = floor
        if self.previous is not None:
            self.total += float(np.sum(np.abs(log_y - self.previous), dtype=np.float64))
            self.values += log_y.size
        self.previous = log_y

    def mean(self) -> float:
        return self.total / self.values if self.values else 0.0


class TemporalStabilityAccumulator:
    """Temporal stability of frames that arrive one at a time (a video being processed):
    memory holds one previous frame per sequence, never the sequence.

    Call `add(output_frame, input_frame)` once per frame, in order; `result()` gives the
    `TemporalStability`: mean |delta log2 Y| between consecutive frames for the outputs (linear
    (H, W, 3), or (H, W) luminance) and for the comparison frames (the inputs: uint8/uint16
    linearised as x^2.2 like `ldr_linear`, or a linear reference), and their ratio.

    The luminance floor: `floors` (output, comparison) when given (`temporal_stability` passes
    `floor_fraction` times each whole sequence's median); a stream cannot know that median in
    advance, so without them each sequence is floored at `floor_fraction` times the median of
    its FIRST frame. The two agree exactly when the first frame's median is the sequence's
    (e.g. all frames share one median) and differ little otherwise: the floor only touches
    pixels ~10 stops below the median.
    """

    def __init__(self, floor_fraction: float = 1e-3, floors: tuple[float, float] | None = None):
        output_floor, comparison_floor = floors if floors is not None else (None, None)
        self.output = _LogLuminanceChange(floor_fraction, "output", output_floor)
        self.comparison = _LogLuminanceChange(floor_fraction, "comparison", comparison_floor)
        self.frames = 0

    def add(self, output_frame: np.ndarray, input_frame: np.ndarray) -> None:
        out = self.output.log_luminance(output_frame)
        ref = self.comparison.log_luminance(input_frame)  # both checked before either counts
        self.output.add(*out)
        self.comparison.add(*ref)
        self.frames += 1

    def result(self) -> TemporalStability:
        if self.frames < 2:
            raise ValueError(f"temporal stability needs at least 2 frames, got {self.frames}")
        out, ref = self.output.mean(), self.comparison.mean()
        return TemporalStability(
            output_change=out, comparison_change=ref, ratio=_change_ratio(out, ref)
        )
