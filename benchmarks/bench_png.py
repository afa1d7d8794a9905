"""16-bit PNG: imagecodecs (libpng) against OpenCV, for correctness and speed.

Prints figures; never pass/fail. Correctness: each library decodes PNGs whose pixels are known
(16-bit grey, grey+alpha, RGB, RGBA with all five row filters, the same Adam7-interlaced, 8-bit
palette with and without transparency) and must give them back exactly, in RGB(A) order.
Speed: best-of-N decode and encode of a 16-bit RGB image, quoted beside numpy's sgemm GFLOP/s
measured in the same run so figures from different machines can be compared as ratios.

    python benchmarks/bench_png.py            # 1536x1024 RGB
    python benchmarks/bench_png.py --size 3000x2000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from pngdata import palette_png, png16  # noqa: E402


def decode_imagecodecs(data: bytes) -> np.ndarray:
    import imagecodecs

    return imagecodecs.png_decode(data)


def decode_opencv(data: bytes) -> np.ndarray:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is not None and arr.ndim == 3:  # BGR(A) -> RGB(A)
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    return arr


def encode_imagecodecs(arr: np.ndarray) -> bytes:
    from napari_hdrcnn.io.ldr import encode_png16  # what write_png does with 16-bit pixels

    return encode_png16(arr)


def encode_opencv(arr: np.ndarray) -> bytes:
    import cv2

    if arr.ndim == 3:
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    return buf.tobytes() if ok else b""


def correctness_cases() -> list[tuple[str, bytes, np.ndarray]]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:37, 0:29]
    cases = []
    for name, c in (("grey", 1), ("grey+alpha", 2), ("RGB", 3), ("RGBA", 4)):
        smooth = (xx * 1700 + yy * 900)[..., None] + np.arange(c) * 5000
        arr = ((smooth + rng.integers(0, 400, smooth.shape)) % 65536).astype(np.uint16)
        arr = arr[..., 0] if c == 1 else arr
        cases.append((f"16-bit {name}", png16(arr), arr))
        cases.append((f"16-bit {name} interlaced", png16(arr, interlaced=True), arr))
    idx = rng.integers(0, 4, (9, 7))
    palette = rng.integers(0, 256, (4, 3))
    cases.append(("palette", palette_png(idx, palette, None), palette[idx].astype(np.uint8)))
    alpha = bytes([255, 0, 128])  # the fourth entry is opaque, as the PNG spec says
    rgba = np.concatenate([palette, [[255], [0], [128], [255]]], axis=1)[idx].astype(np.uint8)
    cases.append(("palette+tRNS", palette_png(idx, palette, alpha), rgba))
    return cases


def check(decode, data: bytes, expected: np.ndarray) -> str:
    try:
        got = decode(data)
    except Exception as err:  # report, do not stop: this is what we are measuring
        return f"error ({type(err).__name__})"
    if got is None:
        return "refused"
    if got.shape != expected.shape:
        return f"shape {got.shape} != {expected.shape}"
    if got.dtype != expected.dtype:
        return f"dtype {got.dtype}"
    return "exact" if np.array_equal(got, expected) else "wrong pixels"


def best_of(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sgemm_gflops() -> float:
    a = np.random.default_rng(0).standard_normal((1024, 1024), np.float32)
    seconds = best_of(lambda: a @ a, 5)
    return 2 * 1024**3 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1536x1024", help="WxH of the speed test image")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    libraries = {
        "imagecodecs": (decode_imagecodecs, encode_imagecodecs),
        "opencv": (decode_opencv, encode_opencv),
    }

    print("correctness (decode must give the written pixels back exactly, RGB(A) order)")
    print(f"  {'case':28s}" + "".join(f"  {name:24s}" for name in libraries))
    for case, data, expected in correctness_cases():
        row = "".join(f"  {check(dec, data, expected):24s}" for dec, _ in libraries.values())
        print(f"  {case:28s}{row}")

    w, h = (int(v) for v in args.size.lower().split("x"))
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(1)
    photo = (xx * 40 + yy * 25)[..., None] + rng.integers(0, 2000, (h, w, 3))
    photo = (photo % 65536).astype(np.uint16)
    gflops = sgemm_gflops()
    print(f"\nspeed, {w}x{h} 16-bit RGB, best of {args.repeats}; sgemm {gflops:.1f} GFLOP/s")
    reference = encode_imagecodecs(photo)
    for name, (decode, encode) in libraries.items():
        data = encode(photo)
        same = np.array_equal(decode_imagecodecs(data), photo)
        t_dec = best_of(lambda decode=decode: decode(reference), args.repeats)
        t_enc = best_of(lambda encode=encode: encode(photo), args.repeats)
        mp = w * h / 1e6
        print(
            f"  {name:12s} decode {t_dec * 1e3:7.1f} ms ({mp / t_dec:6.1f} MP/s, "
            f"{mp / t_dec / gflops:.3f} MP/s per sgemm GFLOP/s)  encode {t_enc * 1e3:7.1f} ms "
            f"({mp / t_enc / gflops:.3f})  {len(data) / 1e6:.2f} MB  round trip "
            f"{'exact' if same else 'WRONG'}"
        )


if __name__ == "__main__":
    main()
