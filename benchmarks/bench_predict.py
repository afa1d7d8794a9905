"""Seconds, GFLOP/s and peak memory of each inference engine, against numpy's sgemm.

Prints figures; never pass/fail. Each (case, engine) runs in a fresh subprocess, so its peak
resident memory (ru_maxrss) is its own; numpy's float32 matrix product (sgemm, 2048^3) is timed
in the same subprocess just before, so the engine's share of what this CPU can do is a ratio
measured under the same load. Engines: tensorflow and openvino (the package's), onnxruntime
(benchmarks/onnx_engine.py, for the choice of engine; skipped when not installed). Times are
the best of --repeats; on a shared machine read the ratios, not the seconds.

    python benchmarks/bench_predict.py             # 1024x768 at widths 0.125 (default) and 1.0
    python benchmarks/bench_predict.py --big       # also 6000x4000 (24 MP) under the 4 GiB budget
    python benchmarks/bench_predict.py --memory    # bytes per pixel per engine (tile sizes)
    python benchmarks/bench_predict.py --case 1024x768:0.125 --engines openvino tensorflow
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINES = ("tensorflow", "openvino", "onnxruntime")

CASE_CODE = r"""
import json, resource, sys, time
import numpy as np
sys.path[:0] = [{tests!r}, {here!r}]
from conftest import random_tensors
from napari_hdrcnn.architecture import macs_per_pixel
from napari_hdrcnn.reconstruct import Reconstructor, as_unit_rgb, tile_size_for_budget
from napari_hdrcnn.weights import Weights

w, h, width_factor, budget, engine = {w}, {h}, {width_factor}, {budget}, {engine!r}
rounds, tile = {repeats}, {tile}

def sgemm_gflops():
    a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(3))
    return 2 * 2048**3 / best / 1e9

def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t

weights = Weights(random_tensors(width_factor), width_factor, "gamma2.2")
if engine == "onnxruntime":
    from onnx_engine import ONNXRuntimeNetwork
    net, rec = ONNXRuntimeNetwork(weights), None
else:
    rec = Reconstructor(weights, device="cpu", engine=engine)
    net = rec.network()
rng = np.random.default_rng(0)
img = (rng.uniform(0, 1, (h, w, 3)) ** 0.5 * 255).astype(np.uint8)
x = as_unit_rgb(img)[0]
padded = ((h + 31) // 32 * 32) * ((w + 31) // 32 * 32)
gflop = 2 * macs_per_pixel(width_factor) * padded / 1e9
whole = padded <= 1024 * 1024  # the bare network on the whole frame
net.predict_log(x[: min(h, 256), : min(w, 256)])  # thread pools and first-call costs
if rec is not None:
    rec.run(img[:256, :256])
sgemm = sgemm_gflops()
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
bare, full, tiles = [], [], []
for _ in range(rounds):
    if whole and h % 32 == 0 and w % 32 == 0:
        bare.append(_timed(lambda: net.predict_log(x)))
    if rec is not None:
        options = dict(memory_budget_mb=budget, tile=tile, progress=lambda d, n: tiles.append(n))
        full.append(_timed(lambda: rec.run(img, **options)))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
tile_used = tile or (tile_size_for_budget(width_factor, budget, engine) if rec else None)
print(json.dumps(dict(
    bare=min(bare) if bare else None, run=min(full) if full else None, gflop=gflop,
    sgemm=sgemm, peak_mib=peak, rss_before_mib=rss_before, tiles=tiles[-1] if tiles else None,
    tile=tile_used, pixels=padded,
)))
"""


def run_case(w, h, width_factor, budget, engine, repeats, tile=None):
    code = CASE_CODE.format(
        tests=os.path.join(HERE, "..", "tests"),
        here=HERE,
        w=w,
        h=h,
        width_factor=width_factor,
        budget=budget,
        engine=engine,
        repeats=repeats,
        tile=tile,
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def available(engine: str) -> bool:
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(engine, "tensorflow")
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


def speed(cases, engines, repeats) -> None:
    print(
        f"{'image':>10} {'width':>5} {'engine':>11} {'network s':>9} {'run s':>7} "
        f"{'run/net':>7} {'GFLOP/s':>7} {'sgemm':>6} {'of sgemm':>8} {'vs TF run':>9} "
        f"{'peak MiB':>8}"
    )
    for w, h, wf, budget in cases:
        rows = {}
        for e in engines:
            rows[e] = run_case(w, h, wf, budget, e, repeats)
        tf_run = rows.get("tensorflow", {}).get("run")
        for e, r in rows.items():
            if "error" in r:
                print(f"{f'{w}x{h}':>10} {wf:>5} {e:>11}  error: {r['error']}")
                continue
            net = r["bare"] or r["run"]
            gflops = r["gflop"] / net
            ratio = f"{r['run'] / r['bare']:.2f}" if r["bare"] and r["run"] else "-"
            versus = f"{tf_run / r['run']:.2f}x" if tf_run and r["run"] else "-"
            print(
                f"{f'{w}x{h}':>10} {wf:>5} {e:>11} {_s(r['bare']):>9} {_s(r['run']):>7} "
                f"{ratio:>7} {gflops:>7.1f} {r['sgemm']:>6.0f} {gflops / r['sgemm']:>8.0%} "
                f"{versus:>9} {r['peak_mib']:>8.0f}"
            )


def _s(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def memory(engines) -> None:
    """Peak working memory per pixel: the slope of peak RSS between two tile sizes."""
    print(f"{'engine':>11} {'width':>5} {'bytes/pixel':>11}  (peak RSS slope, 512^2 -> 1024^2)")
    for e in engines:
        if e == "onnxruntime":
            continue
        for wf in (0.125, 1.0):
            small, big = (run_case(s, s, wf, 4096, e, 1, tile=s) for s in (512, 1024))
            if "error" in small or "error" in big:
                print(f"{e:>11} {wf:>5}  error: {small.get('error') or big.get('error')}")
                continue
            slope = (
                (big["peak_mib"] - small["peak_mib"]) * 2**20 / (big["pixels"] - small["pixels"])
            )
            print(f"{e:>11} {wf:>5} {slope:>11.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big", action="store_true", help="also 6000x4000 at both widths")
    parser.add_argument("--memory", action="store_true", help="bytes per pixel, not speed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--case", action="append", help="WxH:width_factor[:budget_MiB]")
    args = parser.parse_args()
    engines = [e for e in args.engines if available(e)]
    print(f"cpu cores: {os.cpu_count()}; engines: {', '.join(engines)}")
    if args.memory:
        memory(engines)
        return
    if args.case:
        cases = []
        for c in args.case:
            size, wf, *budget = c.split(":")
            w, h = size.split("x")
            cases.append((int(w), int(h), float(wf), float(budget[0]) if budget else 4096.0))
    else:
        cases = [(1024, 768, 0.125, 4096.0), (1024, 768, 1.0, 4096.0)]
        if args.big:
            cases += [(6000, 4000, 0.125, 4096.0), (6000, 4000, 1.0, 4096.0)]
    speed(cases, engines, args.repeats)
    print(
        "network s: the bare network on the whole frame; run s: Reconstructor.run (input, "
        "network, blend); GFLOP/s = 2 x MACs / network s; sgemm: numpy float32 2048^3 GFLOP/s "
        "in the same process; vs TF run: TensorFlow's run s / this engine's"
    )


if __name__ == "__main__":
    main()
