"""Train HDR-CNN weights on a GPU machine that has JAX but not TensorFlow.

    python scripts/gpu/train_jax.py --scenes PACK_OR_DATA_DIR [...] --model NAME:WIDTH[:INIT] ...

The package's TensorFlow trainer (`hdrcnn train`) is the reference; this script computes the
same thing with JAX so that a lent GPU can run many more steps than the 2-core CPU:
- the network: the authors' 80 tensors in their layout (the list `params`), the ops of
  `napari_hdrcnn.model` (SAME convs, 2x2 max pools, transposed convs [4, 4, out, in], batch
  norm with batch moments while training and moving averages at momentum 0.99, skip fusions);
- the loss: `napari_hdrcnn.training.losses` (illuminance + reflectance, 'blend' loss mask,
  over-boost weights);
- Adam as in TF1 (epsilon 1e-8 outside the square root), lr x 0.99 per epoch of 16 samples a
  scene;
- the data: the package's own numpy virtual camera (`SampleSource.batch(step)`), in a pool of
  CPU processes, so a batch is the same pure function of (seed, step) as in `hdrcnn train`.
Several models (widths, inits, over-boost weights) can train side by side on the same batches.
`tests/test_gpu_trainer.py` checks the network, the loss and its gradient against TensorFlow.

Output per model, in --out: NAME/final.npz (last weights), NAME/averaged.npz (mean of the
checkpoints from --average-from on, as `scripts/average_checkpoints.py`), NAME/log.csv, with
--val NAME/val.csv (the evaluation protocol's clipped-region gain on held-out scenes at
checkpoints: `napari_hdrcnn.evaluate.checkpoints`); tensors stored as t00..t79
(`scripts/gpu/import_weights.py` turns them into a weight file).
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import sys
import time
from functools import partial
from pathlib import Path

# The camera's workers are many processes: one BLAS thread each.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

SRC = Path(__file__).resolve().parents[2] / "src"


def _import_package_modules():
    """architecture, the RGBE decoder, camera, data, the lr schedule, the loss constants,
    widening and the checkpoint scorer without the package's __init__ (which pulls in
    TensorFlow-side modules this machine may lack): bare parent packages pointing at src/."""
    import types

    for name, sub in (
        ("napari_hdrcnn", "napari_hdrcnn"),
        ("napari_hdrcnn.training", "training"),
        ("napari_hdrcnn.evaluate", "evaluate"),
    ):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            base = SRC / "napari_hdrcnn"
            mod.__path__ = [str(base if sub == "napari_hdrcnn" else base / sub)]
            sys.modules[name] = mod
    from napari_hdrcnn import architecture
    from napari_hdrcnn.evaluate import checkpoints
    from napari_hdrcnn.io import radiance
    from napari_hdrcnn.training import camera, config, data, illuminance, widen

    return architecture, radiance, camera, config, data, illuminance, widen, checkpoints


(
    architecture,
    radiance,
    camera,
    config,
    data,
    illuminance,
    widen,
    checkpoints,
) = _import_package_modules()

BN_MOMENTUM = 0.99


# -- scenes ---------------------------------------------------------------------------------------
def from_rgbe(planar: np.ndarray) -> np.ndarray:
    """Planar RGBE uint8 (4, H, W) -> linear float32 (H, W, 3), as the package reads .hdr files."""
    return radiance.rgbe_to_float(planar.transpose(1, 2, 0))


def load_scene_arrays(folders: list[str]) -> list[tuple[str, np.ndarray]]:
    """Scenes from packs (index.json + .rgbe.xz) or from data folders (the package's readers)."""
    out = []
    for folder in folders:
        folder = Path(folder)
        index = folder / "index.json"
        if index.exists():
            for item in json.loads(index.read_text()):
                raw = lzma.decompress((folder / f"{item['name']}.rgbe.xz").read_bytes())
                planar = np.frombuffer(raw, np.uint8).reshape(4, item["height"], item["width"])
                out.append((item["name"], from_rgbe(planar)))
        else:
            for f in data.image_files(folder, "hdr"):
                out.append((f.name, data.read_linear(f, "gamma2.2")))
    return sorted(out)


_SOURCE = None
_RING = None


class BatchRing:
    """Slots in shared memory for batches on their way from the camera processes to the
    trainer, so that a result pipe carries only (step, slot). On the first GPU run the pipe
    (about 230 MB/s through the pool's one result thread) and not the GPU or the camera set the
    pace: 5.8 steps/s of 16 320-pixel crops, 39 MB a batch."""

    def __init__(self, slots: int, batch_size: int, crop: int, names=None):
        from multiprocessing import resource_tracker, shared_memory

        shape = (slots, batch_size, crop, crop, 3)
        self.spec = (slots, batch_size, crop)
        self.owner = names is None
        self.memory = []
        for k, dtype in enumerate((np.uint8, np.float32)):
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            if self.owner:
                shm = shared_memory.SharedMemory(create=True, size=size)
            else:
                shm = shared_memory.SharedMemory(name=names[k])
                # Python < 3.13 registers an attached block with the resource tracker, which
                # would unlink it when this worker exits: the trainer owns it
                resource_tracker.unregister(shm._name, "shared_memory")
            self.memory.append(shm)
        self.x = np.ndarray(shape, np.uint8, buffer=self.memory[0].buf)
        self.y = np.ndarray(shape, np.float32, buffer=self.memory[1].buf)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.memory]

    def close(self) -> None:
        del self.x, self.y
        for m in self.memory:
            m.close()
            if self.owner:
                m.unlink()


def _init_worker(
    folders: list[str], crop: int, settings: dict, seed: int, ring: tuple | None = None
) -> None:
    """A camera process: decodes the scenes itself (spawned, so it shares nothing with JAX)."""
    global _SOURCE, _RING

    scenes = [data.scene_from_array(a, n, crop=crop) for n, a in load_scene_arrays(folders)]
    _SOURCE = data.SampleSource(scenes, camera.CameraSettings.from_dict(settings), seed=seed)
    if ring is not None:
        spec, names = ring
        _RING = BatchRing(*spec, names=names)


def _batch(args):
    """One batch; x as its 8-bit codes (x is on 8-bit levels: exact), written into a slot of
    the ring (then only the slot number travels) or returned through the pipe."""
    step, batch_size, slot = args
    b = _SOURCE.batch(step, batch_size)
    codes = np.round(b["x"] * 255.0).astype(np.uint8)
    if _RING is None:
        return step, codes, b["y"]
    _RING.x[slot], _RING.y[slot] = codes, b["y"]
    return step, slot, None


def batches(pool, steps: int, batch_size: int, ring: BatchRing | None, window: int):
    """(step, x codes, y) in step order, with at most `window` batches in the making (each in
    its own slot of the ring: a slot is reused only after its batch was copied out)."""
    from collections import deque

    pending: deque = deque()
    submitted = 0

    def submit() -> None:
        nonlocal submitted
        pending.append(pool.apply_async(_batch, ((submitted, batch_size, submitted % window),)))
        submitted += 1

    while submitted < min(window, steps):
        submit()
    for _ in range(steps):
        step, a, b = pending.popleft().get()
        if ring is not None:
            a, b = ring.x[a].copy(), ring.y[a].copy()
        if submitted < steps:
            submit()
        yield step, a, b


def count_scenes(folders: list[str]) -> int:
    n = 0
    for folder in folders:
        index = Path(folder) / "index.json"
        if index.exists():
            n += len(json.loads(index.read_text()))
        else:
            n += len(data.image_files(folder, "hdr"))
    return n


# -- the network ----------------------------------------------------------------------------------
def build_fns(width: float):
    import jax
    import jax.numpy as jnp
    from jax import lax

    specs = architecture.tensor_specs(width)
    index = {s.name: s.index for s in specs}
    dn = ("NHWC", "HWIO", "NHWC")

    def conv(p, name, x):
        w, b = p[index[f"{name}/W"]], p[index[f"{name}/b"]]
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn) + b

    def deconv(p, name, x):
        # TF conv2d_transpose, SAME, stride 2, kernel [4, 4, out, in]: the forward conv's
        # gradient = dilate the input by 2, pad 2 each side, flipped kernel with in/out swapped
        w = p[index[f"{name}/deconv/W"]][::-1, ::-1].transpose(0, 1, 3, 2)
        y = lax.conv_general_dilated(
            x, w, (1, 1), ((2, 2), (2, 2)), lhs_dilation=(2, 2), dimension_numbers=dn
        )
        return y + p[index[f"{name}/deconv/b"]]

    def batch_norm(p, name, x, training, stats):
        beta, gamma = p[index[f"{name}/bn/beta"]], p[index[f"{name}/bn/gamma"]]
        if training:
            mean = jnp.mean(x, axis=(0, 1, 2))
            var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
            stats[name] = (mean, var)
        else:
            mean, var = p[index[f"{name}/bn/moving_mean"]], p[index[f"{name}/bn/moving_variance"]]
        return (x - mean) * lax.rsqrt(var + architecture.BN_EPSILON) * gamma + beta

    def skip_to_log(s):
        return jnp.log(jnp.square(s / 255.0) + architecture.LOG_EPS)

    def fuse(p, name, h, s):
        return conv(p, f"{name}/fuse", jnp.concatenate([h, skip_to_log(s)], axis=-1))

    def log_prediction(p, x, training):
        stats: dict = {}
        x255 = x * 255.0
        h = x255[..., ::-1] - jnp.asarray(architecture.VGG_MEAN_BGR, jnp.float32)
        skips = {0: x255}
        for block, c, _ in architecture.ENCODER:
            h = jax.nn.relu(conv(p, f"conv{block}_{c}", h))
            if c == (2 if block <= 2 else 3):
                skips[block] = h
                h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")
        h = jax.nn.relu(batch_norm(p, "h6", conv(p, "h6/conv", h), training, stats))
        fuse_with = dict(architecture.FUSIONS)
        for name, _, _ in architecture.DECODER:
            if name in fuse_with:
                h = fuse(p, name, h, skips[fuse_with[name]])
            h = jax.nn.relu(batch_norm(p, name, deconv(p, name, h), training, stats))
        h = fuse(p, "h6", h, skips[1])
        h = jax.nn.relu(batch_norm(p, "h7", conv(p, "h7/conv", h), training, stats))
        return fuse(p, "h7", h, skips[0]), stats

    return specs, index, log_prediction


def make_loss(log_prediction, over_boost_weight: float, over_boost_stops: float):
    import jax.numpy as jnp
    from jax import lax

    taps = jnp.asarray(illuminance.gaussian_taps())
    n = taps.shape[0]
    kv, kh = taps.reshape(n, 1, 1, 1), taps.reshape(1, n, 1, 1)
    dn = ("NHWC", "HWIO", "NHWC")

    def blend_alpha(level):
        return architecture.blend_alpha(level, jnp.clip)

    def blurred_log_luminance(log_rgb):
        lum = jnp.sum(
            log_rgb * jnp.asarray(illuminance.ILLUMINANCE_WEIGHTS, jnp.float32), -1, keepdims=True
        )
        lum = lax.conv_general_dilated(lum, kv, (1, 1), "SAME", dimension_numbers=dn)
        return lax.conv_general_dilated(lum, kh, (1, 1), "SAME", dimension_numbers=dn)

    def loss_fn(p, x, y):
        y_log, stats = log_prediction(p, x, True)
        t_log = jnp.log(jnp.maximum(y, 0.0) + architecture.LOG_EPS)
        mask = jnp.maximum(
            blend_alpha(jnp.max(y, -1, keepdims=True)), blend_alpha(jnp.max(x, -1, keepdims=True))
        )
        if over_boost_weight:
            over = jnp.mean(y_log - t_log, -1, keepdims=True) > 0.0
            faint = jnp.max(y, -1, keepdims=True) < 2.0**over_boost_stops
            mask = mask * lax.stop_gradient(1.0 + over_boost_weight * (over & faint))
        ill_p, ill_t = blurred_log_luminance(y_log), blurred_log_luminance(t_log)
        per_pixel = 0.5 * jnp.square(ill_p - ill_t) + 0.5 * jnp.square(
            (y_log - ill_p) - (t_log - ill_t)
        )
        return jnp.mean(per_pixel * mask), stats

    return loss_fn


def make_step(width: float, over_boost_weight: float, over_boost_stops: float):
    import jax
    import jax.numpy as jnp

    specs, index, log_prediction = build_fns(width)
    loss_fn = make_loss(log_prediction, over_boost_weight, over_boost_stops)
    infer = jax.jit(lambda p, x: log_prediction(p, x, False)[0])  # batch norm: moving averages
    trainable = [not s.name.endswith(("moving_mean", "moving_variance")) for s in specs]
    bn_slots = {
        name: (index[f"{name}/bn/moving_mean"], index[f"{name}/bn/moving_variance"])
        for name in ["h6", *[d[0] for d in architecture.DECODER], "h7"]
    }

    @jax.jit
    def step(params, m, v, t, lr, x, y):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        t = t + 1.0
        lr_t = lr * jnp.sqrt(1.0 - 0.999**t) / (1.0 - 0.9**t)
        new_p, new_m, new_v = [], [], []
        for i, (p, g, mi, vi) in enumerate(zip(params, grads, m, v)):
            if trainable[i]:
                mi = 0.9 * mi + 0.1 * g
                vi = 0.999 * vi + 0.001 * jnp.square(g)
                p = p - lr_t * mi / (jnp.sqrt(vi) + 1e-8)
            new_p.append(p)
            new_m.append(mi)
            new_v.append(vi)
        for name, (im, iv) in bn_slots.items():
            mean, var = stats[name]
            new_p[im] = BN_MOMENTUM * new_p[im] + (1 - BN_MOMENTUM) * mean
            new_p[iv] = BN_MOMENTUM * new_p[iv] + (1 - BN_MOMENTUM) * var
        return new_p, new_m, new_v, t, loss

    return specs, step, infer


# -- init -----------------------------------------------------------------------------------------
def read_init(path: str, width: float, seed: int) -> list[np.ndarray]:
    """Tensors of a package weight file (named arrays, no pickle) or of a t00..t79 file; a
    narrower network is widened to `width` (training.widen: the same output to start with)."""
    with np.load(path, allow_pickle=False) as z:
        keys = set(z.files)
        first = z["t00"] if "t00" in keys else z["conv1_1/W"]
        file_width = architecture.infer_width_factor(first.shape[-1])
        specs = architecture.tensor_specs(file_width)
        if "t00" in keys:
            arrays = [z[f"t{i:02d}"] for i in range(len(specs))]
        else:
            arrays = [z[s.name] for s in specs]
    for s, a in zip(specs, arrays):
        if tuple(a.shape) != s.shape:
            raise SystemExit(f"{path}: tensor {s.index} ({s.name}) is {a.shape}, want {s.shape}")
    arrays = [np.asarray(a, np.float32) for a in arrays]
    if file_width > width:
        raise SystemExit(f"{path}: width {file_width:g} is wider than the model's {width:g}")
    if file_width < width:
        print(f"{path}: widened from width {file_width:g} to {width:g}", flush=True)
        arrays = widen.widened_tensors(arrays, file_width, width, seed)
    return arrays


def save(path: Path, arrays) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **{f"t{i:02d}": np.asarray(a, np.float32) for i, a in enumerate(arrays)})
    os.replace(tmp, path)


# -- main -----------------------------------------------------------------------------------------
def parse_model(text: str) -> dict:
    """NAME:WIDTH[:INIT[:OVER_BOOST_WEIGHT[:LR]]]"""
    parts = text.split(":")
    m = {"name": parts[0], "width": float(parts[1])}
    m["init"] = parts[2] if len(parts) > 2 and parts[2] else None
    m["over_boost"] = float(parts[3]) if len(parts) > 3 and parts[3] else None
    m["lr"] = float(parts[4]) if len(parts) > 4 and parts[4] else None
    return m


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", nargs="+", required=True, help="packs or folders of HDR scenes")
    p.add_argument("--model", action="append", type=parse_model, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=10000)
    p.add_argument("--minutes", type=float, default=None, help="stop after this long")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-decay", type=float, default=0.99)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--over-boost-weight", type=float, default=3.0)
    p.add_argument("--over-boost-stops", type=float, default=1.0)
    p.add_argument("--faint-highlights", type=float, default=0.35)
    p.add_argument("--faint-headroom", type=float, nargs=2, default=(1.0, 1.5))
    p.add_argument("--clip-fraction", type=float, nargs=2, default=(0.02, 0.15))
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument(
        "--average-from", type=float, default=0.5, help="fraction of the steps (or --minutes)"
    )
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument(
        "--val",
        nargs="+",
        default=[],
        help="packs or folders of validation scenes: every --val-every steps (and at the end) "
        "each model, and the average of its checkpoints so far, is scored by the evaluation "
        "protocol (NAME/val.csv)",
    )
    p.add_argument("--val-every", type=int, default=500)
    p.add_argument("--val-clips", type=float, nargs="+", default=[95.0, 97.0])
    p.add_argument(
        "--transport",
        choices=("shm", "pipe"),
        default="shm",
        help="how batches reach the trainer: shared-memory slots, or the pool's result pipe",
    )
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--wait-for", help="before training, wait for this path (data in transit)")
    p.add_argument("--wait-seconds", type=float, default=300.0)
    p.add_argument(
        "--bench-data", type=int, default=0, help="time N batches of the camera pool, then stop"
    )
    args = p.parse_args(argv)

    import multiprocessing as mp

    import jax
    import jax.numpy as jnp

    settings = camera.CameraSettings(
        crop=args.crop,
        clip_fraction=tuple(args.clip_fraction),
        curve="mixed",
        faint_probability=args.faint_highlights,
        faint_headroom=tuple(args.faint_headroom),
    )
    print(f"devices {jax.devices()}", flush=True)
    models = []
    for m in args.model:
        ob = args.over_boost_weight if m["over_boost"] is None else m["over_boost"]
        specs, step, infer = make_step(m["width"], ob, args.over_boost_stops)
        params = (
            read_init(m["init"], m["width"], args.seed)
            if m["init"]
            else architecture.initial_tensors(m["width"], args.seed)
        )
        params = [jnp.asarray(a) for a in params]
        folder = args.out / m["name"]
        folder.mkdir(parents=True, exist_ok=True)
        models.append(
            dict(
                m,
                over_boost=ob,
                step=step,
                infer=infer,
                params=params,
                m=[jnp.zeros_like(a) for a in params],
                v=[jnp.zeros_like(a) for a in params],
                t=jnp.float32(0.0),
                folder=folder,
                log=open(folder / "log.csv", "w"),
                # the package's schedule (lr x decay per epoch of 16 samples a scene)
                schedule=config.TrainConfig(
                    data="",
                    out="",
                    crop=args.crop,
                    batch_size=args.batch_size,
                    lr=m["lr"] or args.lr,
                    lr_decay=args.lr_decay,
                ),
                avg=None,
                avg_steps=[],
                losses=[],
            )
        )
        models[-1]["log"].write("step,loss,lr,seconds\n")
        (folder / "run.json").write_text(
            json.dumps(
                {
                    "trainer": "scripts/gpu/train_jax.py",
                    "width_factor": m["width"],
                    "init": m["init"],
                    "over_boost_weight": ob,
                    "over_boost_stops": args.over_boost_stops,
                    "lr": m["lr"] or args.lr,
                    "lr_decay": args.lr_decay,
                    "batch_size": args.batch_size,
                    "crop": args.crop,
                    "seed": args.seed,
                    "camera": settings.to_dict(),
                    "loss": "ir",
                    "loss_mask": "blend",
                },
                indent=1,
            )
        )

    t0 = time.time()
    x0 = jnp.zeros((args.batch_size, args.crop, args.crop, 3), jnp.float32)
    for m in models:  # compile now (outputs dropped), while the data may still be on its way
        jax.block_until_ready(
            m["step"](m["params"], m["m"], m["v"], m["t"], jnp.float32(0.0), x0, x0)
        )
    print(f"compiled {len(models)} models in {time.time() - t0:.0f} s", flush=True)
    if args.wait_for:
        deadline = time.time() + args.wait_seconds
        while not Path(args.wait_for).exists() and time.time() < deadline:
            time.sleep(1)
    folders = [f for f in args.scenes if Path(f).exists()]
    n_scenes = count_scenes(folders)
    per_epoch = config.steps_per_epoch(models[0]["schedule"], n_scenes)
    print(f"training on {n_scenes} scenes from {folders}", flush=True)
    for m in models:
        run = json.loads((m["folder"] / "run.json").read_text())
        run.update(scenes=n_scenes, steps_per_epoch=per_epoch)
        (m["folder"] / "run.json").write_text(json.dumps(run, indent=1))
    validation = None
    if args.val:  # what import_weights.py makes of the result: gamma2.2, the consistent blend
        validation = checkpoints.CheckpointScorer(load_scene_arrays(args.val), args.val_clips)
        print(f"validation: {len(validation.cases)} cases from {args.val}", flush=True)
        for m in models:
            m["val_log"] = open(m["folder"] / "val.csv", "w")
            m["val_log"].write(checkpoints.CSV_HEADER + "\n")
    window = 2 * args.workers + 2  # batches in the making: every worker busy, two ready
    ring = None
    if args.transport == "shm":
        ring = BatchRing(window, args.batch_size, args.crop)
    pool = mp.get_context("spawn").Pool(
        args.workers,
        initializer=_init_worker,
        initargs=(
            folders,
            args.crop,
            settings.to_dict(),
            args.seed,
            None if ring is None else (ring.spec, ring.names),
        ),
    )
    jobs = batches(pool, args.steps, args.batch_size, ring, window)
    start = time.time()
    average_from = int(args.steps * args.average_from)
    done = 0
    if args.bench_data:
        t0 = time.time()
        for k, _ in enumerate(jobs, 1):
            if k == args.bench_data:
                break
        rate = args.bench_data * args.batch_size / (time.time() - t0)
        print(
            f"camera pool alone: {rate:.0f} samples/s with {args.workers} workers "
            f"({args.transport})",
            flush=True,
        )
        if ring is not None:
            ring.close()
        os._exit(0)
    for step_index, codes, y in jobs:
        xj, yj = jnp.asarray(codes, jnp.float32) / 255.0, jnp.asarray(y)
        for m in models:
            m["lr_now"] = config.learning_rate(m["schedule"], step_index, per_epoch)
            m["params"], m["m"], m["v"], m["t"], loss = m["step"](
                m["params"], m["m"], m["v"], m["t"], jnp.float32(m["lr_now"]), xj, yj
            )
            m["losses"].append(loss)
        done = step_index + 1
        elapsed = time.time() - start
        stop = args.minutes is not None and elapsed > args.minutes * 60
        if done % args.log_every == 0 or done == args.steps or stop:
            summary = []
            for m in models:
                mean = float(jnp.mean(jnp.stack(m["losses"])))
                m["losses"] = []
                m["log"].write(f"{done},{mean:.6g},{m['lr_now']:.3g},{elapsed:.1f}\n")
                m["log"].flush()
                summary.append(f"{m['name']}={mean:.4f}")
            rate = done / max(elapsed, 1e-9)
            print(f"step {done}: {elapsed:.0f} s, {rate:.1f} steps/s, loss {' '.join(summary)}")
            sys.stdout.flush()
        in_window = (
            done >= average_from
            if args.minutes is None
            else elapsed >= args.average_from * args.minutes * 60
        )
        last = stop or done == args.steps  # the last step always joins the average
        if (done % args.checkpoint_every == 0 and in_window) or last:
            for m in models:
                host = [np.asarray(a, np.float64) for a in m["params"]]
                m["avg"] = host if m["avg"] is None else [a + b for a, b in zip(m["avg"], host)]
                m["avg_steps"].append(done)
        if validation is not None and (done % args.val_every == 0 or last):
            for m in models:
                versions = [("current", m["params"])]
                if m["avg"] is not None:
                    n = len(m["avg_steps"])
                    versions.append(
                        ("average", [jnp.asarray(a / n, jnp.float32) for a in m["avg"]])
                    )
                for label, params in versions:
                    gains = validation.gains(partial(m["infer"], params))
                    for row in checkpoints.csv_rows(done, label, gains):
                        m["val_log"].write(row + "\n")
                    m["val_log"].flush()
                    summary = checkpoints.summary(gains).values()
                    text = " ; ".join(f"{mn:+.2f} / {w:+.2f}" for mn, w, _ in summary)
                    print(f"val {m['name']} {label} at step {done}: {text}", flush=True)
        if stop:
            break
    for m in models:
        save(m["folder"] / "final.npz", [np.asarray(a) for a in m["params"]])
        if m["avg"] is not None:
            save(m["folder"] / "averaged.npz", [a / len(m["avg_steps"]) for a in m["avg"]])
        info = {"steps": done, "averaged_steps": m["avg_steps"], "seconds": time.time() - start}
        (m["folder"] / "done.json").write_text(json.dumps(info))
        m["log"].close()
        if "val_log" in m:
            m["val_log"].close()
    print(f"done: {done} steps in {time.time() - start:.0f} s", flush=True)
    # Pool.terminate() can hang while workers block on full result pipes: the outputs are
    # written, so leave without waiting for them (the shared memory unlinked first)
    if ring is not None:
        ring.close()
    os._exit(0)


if __name__ == "__main__":
    main()
