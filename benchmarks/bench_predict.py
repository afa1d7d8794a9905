"""Seconds, GFLOP/s and memory of each inference engine, against numpy's sgemm.

Prints figures; never pass/fail. On a shared machine read the ratios, not the seconds.

Speed (the default, and --widths): every engine of a case is built in one subprocess and the
engines take turns, round after round (the order reversed every other round, and the order of
an engine's bare network and whole run too, and a pause before each: one engine's threads
still spinning after its work slowed the other's next frame), each round also
timing numpy's float32 matrix product (sgemm, 2048^3), so the ratios between engines and to
sgemm come from the same minutes of the machine's load; the figures are medians over the rounds.
Engines: tensorflow and openvino (the package's), onnxruntime (benchmarks/onnx_engine.py, for
the choice of engine; skipped when not installed).

Memory (--big, --memory): each (case, engine) runs in a fresh subprocess, so its peak resident
memory (ru_maxrss) is its own; --big also gives tracemalloc's peak of the Python-side arrays
(numpy's frames, tiles and blends; the engine's own buffers are only in the RSS).

    python benchmarks/bench_predict.py             # 1024x768 at widths 0.125 (default) and 1.0
    python benchmarks/bench_predict.py --widths 0.125 0.1875 0.25   # OpenVINO, ratio to first
    python benchmarks/bench_predict.py --big       # 6000x4000 (24 MP) under the 4 GiB budget
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
PAUSE = 0.5  # seconds before each timed step: thread pools that spin after their work go idle

COMMON = r"""
import json, resource, sys, time
import numpy as np
sys.path[:0] = [{tests!r}, {here!r}]
from conftest import random_tensors
from napari_hdrcnn.architecture import macs_per_pixel
from napari_hdrcnn.reconstruct import Reconstructor, as_unit_rgb, tile_size_for_budget
from napari_hdrcnn.weights import Weights

def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t

SGEMM = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)

def sgemm_gflops():
    return 2 * 2048**3 / min(timed(lambda: SGEMM @ SGEMM) for _ in range(2)) / 1e9

def build(engine, width_factor):
    weights = Weights(random_tensors(width_factor), width_factor, "gamma2.2")
    if engine == "onnxruntime":
        from onnx_engine import ONNXRuntimeNetwork
        return ONNXRuntimeNetwork(weights), None
    rec = Reconstructor(weights, device="cpu", engine=engine)
    return rec.network(), rec

def photo(h, w):
    rng = np.random.default_rng(0)
    return (rng.uniform(0, 1, (h, w, 3)) ** 0.5 * 255).astype(np.uint8)

def rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

SPEED_CODE = r"""
w, h, rounds, runners, PAUSE = {w}, {h}, {repeats}, {runners!r}, {pause}
img = photo(h, w)
x = as_unit_rgb(img)[0]
padded = ((h + 31) // 32 * 32) * ((w + 31) // 32 * 32)
bare_ok = h % 32 == 0 and w % 32 == 0
built = []
for engine, wf in runners:
    net, rec = build(engine, wf)
    net.predict_log(x[:256, :256])  # thread pools and first-call costs
    if bare_ok:
        net.predict_log(x)  # the frame's size (a compile per size on OpenVINO)
    if rec is not None:
        rec.run(img)
    built.append((net, rec))
SGEMM @ SGEMM
times = [dict(bare=[], run=[]) for _ in runners]
sgemm = []
for r in range(rounds):
    sgemm.append(sgemm_gflops())
    order = range(len(runners)) if r % 2 == 0 else reversed(range(len(runners)))
    for i in order:
        net, rec = built[i]
        steps = []  # the bare network and the whole run, in turns first
        if bare_ok:
            steps.append(("bare", lambda: net.predict_log(x)))
        if rec is not None:
            steps.append(("run", lambda: rec.run(img)))
        for key, step in steps if r % 2 == 0 else steps[::-1]:
            time.sleep(PAUSE)  # the other engine's threads stop spinning
            times[i][key].append(timed(step))
med = lambda v: float(np.median(v)) if v else None
print(json.dumps(dict(sgemm=med(sgemm), sgemm_all=sgemm, rows=[dict(
    engine=e, width=wf, bare=med(t["bare"]), run=med(t["run"]), bare_all=t["bare"],
    gflop=2 * macs_per_pixel(wf) * padded / 1e9) for (e, wf), t in zip(runners, times)])))
"""

MEMORY_CODE = r"""
import tracemalloc
w, h, width_factor, budget, engine, tile = {w}, {h}, {width_factor}, {budget}, {engine!r}, {tile}
net, rec = build(engine, width_factor)
img = photo(h, w)
rec.run(img[:256, :256])  # thread pools, first-call costs
tiles = []
rss_before = rss_mib()
tracemalloc.start()
seconds = timed(lambda: rec.run(
    img, memory_budget_mb=budget, tile=tile, progress=lambda d, n: tiles.append(n)))
traced = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
print(json.dumps(dict(
    run=seconds, peak_mib=rss_mib(), rss_before_mib=rss_before, traced_peak_mib=traced,
    tiles=tiles[-1], tile=tile or tile_size_for_budget(width_factor, budget, engine),
    pixels=((h + 31) // 32 * 32) * ((w + 31) // 32 * 32))))
"""


def _subprocess(code: str) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _paths() -> dict:
    return dict(tests=os.path.join(HERE, "..", "tests"), here=HERE)


def run_speed(w, h, runners, repeats) -> dict:
    """One subprocess: each (engine, width) of `runners` built, then timed in turns."""
    code = COMMON.format(**_paths()) + SPEED_CODE.format(
        w=w, h=h, repeats=repeats, runners=[tuple(r) for r in runners], pause=PAUSE
    )
    return _subprocess(code)


def run_memory(w, h, width_factor, budget, engine, tile=None) -> dict:
    code = COMMON.format(**_paths()) + MEMORY_CODE.format(
        w=w, h=h, width_factor=width_factor, budget=budget, engine=engine, tile=tile
    )
    return _subprocess(code)


def available(engine: str) -> bool:
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(engine, "tensorflow")
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([sys.executable, "-c", probe]).returncode == 0


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def speed(cases, engines, repeats) -> None:
    print(
        f"{'image':>10} {'width':>5} {'engine':>11} {'network s':>9} {'run s':>7} "
        f"{'run/net':>7} {'GFLOP/s':>7} {'sgemm':>6} {'of sgemm':>8} {'vs TF run':>9}"
    )
    for w, h, wf in cases:
        result = run_speed(w, h, [(e, wf) for e in engines], repeats)
        if "error" in result:
            print(f"{f'{w}x{h}':>10} {wf:>5}  error: {result['error']}")
            continue
        sgemm = result["sgemm"]
        tf_run = next((r["run"] for r in result["rows"] if r["engine"] == "tensorflow"), None)
        for r in result["rows"]:
            net = r["bare"] or r["run"]
            gflops = r["gflop"] / net
            ratio = f"{r['run'] / r['bare']:.2f}" if r["bare"] and r["run"] else "-"
            versus = f"{tf_run / r['run']:.2f}x" if tf_run and r["run"] else "-"
            print(
                f"{f'{w}x{h}':>10} {wf:>5} {r['engine']:>11} {_s(r['bare']):>9} "
                f"{_s(r['run']):>7} {ratio:>7} {gflops:>7.1f} {sgemm:>6.0f} "
                f"{gflops / sgemm:>8.0%} {versus:>9}"
            )
        print(f"{'':>10} load average after: {_load()}")


def widths(factors, w, h, repeats) -> None:
    """The OpenVINO network's cost at each width factor, as ratios to the first."""
    result = run_speed(w, h, [("openvino", wf) for wf in factors], repeats)
    if "error" in result:
        print(f"error: {result['error']}")
        return
    print(
        f"{'width':>6} {'GFLOP':>6} {'network s':>9} {'run s':>7} {'GFLOP/s':>7} "
        f"{'network / first':>15} {'run / first':>11} {'GFLOP / first':>13}"
    )
    first = result["rows"][0]
    for r in result["rows"]:
        print(
            f"{r['width']:>6} {r['gflop']:>6.1f} {_s(r['bare']):>9} {_s(r['run']):>7} "
            f"{r['gflop'] / r['bare']:>7.1f} {r['bare'] / first['bare']:>15.2f} "
            f"{r['run'] / first['run']:>11.2f} {r['gflop'] / first['gflop']:>13.2f}"
        )
    print(f"{w}x{h}; sgemm {result['sgemm']:.0f} GFLOP/s; load average after: {_load()}")


def _s(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def big(cases, engines) -> None:
    print(
        f"{'image':>10} {'width':>5} {'engine':>11} {'tile':>5} {'tiles':>5} {'run s':>7} "
        f"{'peak RSS MiB':>12} {'before':>7} {'numpy peak MiB':>14} {'budget':>6}"
    )
    for w, h, wf, budget in cases:
        for e in engines:
            if e == "onnxruntime":
                continue
            r = run_memory(w, h, wf, budget, e)
            if "error" in r:
                print(f"{f'{w}x{h}':>10} {wf:>5} {e:>11}  error: {r['error']}")
                continue
            print(
                f"{f'{w}x{h}':>10} {wf:>5} {e:>11} {r['tile']:>5} {r['tiles']:>5} "
                f"{r['run']:>7.1f} {r['peak_mib']:>12.0f} {r['rss_before_mib']:>7.0f} "
                f"{r['traced_peak_mib']:>14.0f} {budget:>6.0f}"
            )
    print(f"load average after: {_load()}")


def memory(engines, factors) -> None:
    """Peak working memory per pixel: the slope of peak RSS between two tile sizes."""
    print(f"{'engine':>11} {'width':>6} {'bytes/pixel':>11}  (peak RSS slope, 512^2 -> 1024^2)")
    for e in engines:
        if e == "onnxruntime":
            continue
        for wf in factors:
            small, large = (run_memory(s, s, wf, 4096, e, tile=s) for s in (512, 1024))
            if "error" in small or "error" in large:
                print(f"{e:>11} {wf:>6}  error: {small.get('error') or large.get('error')}")
                continue
            slope = (
                (large["peak_mib"] - small["peak_mib"])
                * 2**20
                / (large["pixels"] - small["pixels"])
            )
            print(f"{e:>11} {wf:>6} {slope:>11.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big", action="store_true", help="6000x4000 at both widths: memory")
    parser.add_argument("--memory", action="store_true", help="bytes per pixel, not speed")
    parser.add_argument(
        "--widths",
        nargs="+",
        type=float,
        metavar="W",
        help="OpenVINO at these width factors (random weights), as ratios to the first",
    )
    parser.add_argument("--repeats", type=int, default=5, help="rounds; medians are printed")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--case", action="append", help="WxH:width_factor[:budget_MiB]")
    args = parser.parse_args()
    engines = [e for e in args.engines if available(e)]
    print(f"cpu cores: {os.cpu_count()}; engines: {', '.join(engines)}; load: {_load()}")
    if args.memory:
        memory(engines, args.widths or (0.125, 1.0))
        return
    if args.widths:
        widths(args.widths, 1024, 768, args.repeats)
        return
    cases = []
    for c in args.case or []:
        size, wf, *budget = c.split(":")
        w, h = size.split("x")
        cases.append((int(w), int(h), float(wf), float(budget[0]) if budget else 4096.0))
    if args.big:
        big(cases or [(6000, 4000, 0.125, 4096.0), (6000, 4000, 1.0, 4096.0)], engines)
        return
    cases = cases or [(1024, 768, 0.125, 4096.0), (1024, 768, 1.0, 4096.0)]
    speed([c[:3] for c in cases], engines, args.repeats)
    print(
        "network s: the bare network on the whole frame; run s: Reconstructor.run (input, "
        "network, blend); GFLOP/s = 2 x MACs / network s; sgemm: numpy float32 2048^3 GFLOP/s "
        "in the same process and rounds; vs TF run: TensorFlow's run s / this engine's; "
        "medians over the rounds"
    )


if __name__ == "__main__":
    main()
