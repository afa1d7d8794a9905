"""Seconds, peak memory and GMAC/s of the reconstruction on this machine.

Prints figures; never pass/fail. Each case runs in a fresh subprocess so its peak resident
memory (ru_maxrss) is its own.

    python benchmarks/bench_predict.py  # 1024x768 at width 1.0, 24 MP at 0.25 and 1.0
    python benchmarks/bench_predict.py --quick         # 1024x768 only
    python benchmarks/bench_predict.py --case 6000x4000:1.0:4096
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASE_CODE = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import random_tensors
from napari_hdrcnn.architecture import macs_per_pixel
from napari_hdrcnn.reconstruct import Reconstructor, tile_size_for_budget
from napari_hdrcnn.weights import Weights

w, h, width_factor, budget = {w}, {h}, {width_factor}, {budget}
rec = Reconstructor(Weights(random_tensors(width_factor), width_factor, "gamma2.2"), device="cpu")
rng = np.random.default_rng(0)
img = (rng.uniform(0, 1, (h, w, 3)) ** 0.5 * 255).astype(np.uint8)
warm = rec.run(img[:256, :256])  # graph tracing and thread pools, not counted
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
times, tiles = [], []
for _ in range({repeats}):
    t = time.perf_counter()
    rec.run(img, memory_budget_mb=budget, progress=lambda d, n: tiles.append(n))
    times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
padded = ((h + 31) // 32 * 32) * ((w + 31) // 32 * 32)
print(json.dumps(dict(seconds=min(times), peak_mib=peak, rss_before_mib=rss_before,
                      tiles=tiles[-1], tile=tile_size_for_budget(width_factor, budget),
                      gmac=macs_per_pixel(width_factor) * padded / 1e9)))
"""


def run_case(w, h, width_factor, budget, repeats):
    tests = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests")
    code = CASE_CODE.format(
        tests=tests, w=w, h=h, width_factor=width_factor, budget=budget, repeats=repeats
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--case", action="append", help="WxH:width_factor:budget_MiB (repeatable)")
    args = parser.parse_args()
    if args.case:
        cases = []
        for c in args.case:
            size, wf, budget = c.split(":")
            w, h = size.split("x")
            cases.append((int(w), int(h), float(wf), float(budget)))
    else:
        cases = [(1024, 768, 1.0, 4096), (1024, 768, 0.25, 4096)]
        if not args.quick:
            cases += [(6000, 4000, 0.25, 4096), (6000, 4000, 1.0, 4096)]
    print(f"cpu cores: {os.cpu_count()}")
    print(
        f"{'image':>10} {'width':>5} {'budget MiB':>10} {'tile':>5} {'tiles':>5} "
        f"{'seconds':>8} {'GMAC':>7} {'GMAC/s':>7} {'peak MiB':>8}"
    )
    for w, h, wf, budget in cases:
        r = run_case(w, h, wf, budget, 1 if w * h > 4e6 else args.repeats)
        if "error" in r:
            print(f"{w}x{h:<5} {wf:>5} {budget:>10.0f}  error: {r['error']}")
            continue
        print(
            f"{f'{w}x{h}':>10} {wf:>5} {budget:>10.0f} {r['tile']:>5} {r['tiles']:>5} "
            f"{r['seconds']:>8.2f} {r['gmac']:>7.1f} {r['gmac'] / r['seconds']:>7.1f} "
            f"{r['peak_mib']:>8.0f}"
        )


if __name__ == "__main__":
    main()
