"""`hdrcnn train`: train HDR-CNN weights on HDR scenes (or LDR photos) with the virtual camera.

Every option defaults to None here so that, with --resume, the settings stored in the run's
run.json apply unless the command line overrides them; otherwise TrainConfig's defaults apply.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from .common import INTERRUPTED, OK, fail, number, refuse

# option dest -> (TrainConfig field, or "camera.<field>")
_CONFIG_OPTIONS = {
    "data": "data",
    "val": "val",
    "out": "out",
    "width_factor": "width_factor",
    "crop": "crop",
    "batch_size": "batch_size",
    "steps": "steps",
    "epochs": "epochs",
    "epoch_size": "epoch_size",
    "lr": "lr",
    "lr_decay": "lr_decay",
    "beta1": "beta1",
    "beta2": "beta2",
    "loss": "loss",
    "loss_mask": "loss_mask",
    "over_boost_weight": "over_boost_weight",
    "over_boost_stops": "over_boost_stops",
    "regularization": "regularization",
    "reg_weight": "reg_weight",
    "reg_strength": "reg_strength",
    "reg_noise": "reg_noise",
    "seed": "seed",
    "init": "init",
    "checkpoint_every": "checkpoint_every",
    "keep_checkpoints": "keep_checkpoints",
    "val_every": "val_every",
    "val_samples": "val_samples",
    "log_every": "log_every",
    "linearize": "linearize",
    "data_mode": "data_mode",
    "panorama": "panorama",
    "ldr_linearize": "ldr_linearize",
    "max_side": "max_side",
    "max_minutes": "max_minutes",
    "crop_fraction": "camera.crop_fraction",
    "fov": "camera.fov",
    "max_pitch": "camera.max_pitch",
    "clip_fraction": "camera.clip_fraction",
    "faint_highlights": "camera.faint_probability",
    "faint_headroom": "camera.faint_headroom",
    "curve": "camera.curve",
    "curve_n": "camera.curve_n",
    "curve_a": "camera.curve_a",
    "gamma": "camera.gamma",
    "hue_std": "camera.hue_std",
    "saturation_std": "camera.saturation_std",
    "noise_max": "camera.noise_max",
    "jpeg_probability": "camera.jpeg_probability",
    "jpeg_quality": "camera.jpeg_quality",
}
# two-value options: (LO, HI) ranges, and (MEAN, STD) draws whose STD must not be negative
_RANGES = ("reg_noise", "clip_fraction", "faint_headroom", "crop_fraction", "fov", "jpeg_quality")
_MEAN_STD = ("curve_n", "curve_a", "gamma")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train HDR-CNN weights on HDR scenes",
        description="Train HDR-CNN weights. HDR scenes (.hdr/.exr; equirectangular panoramas "
        "are cut into perspective views) go through a virtual camera that clips, "
        "tone-maps, adds noise and quantises them; the network learns to restore "
        "the clipped highlights. Writes OUT/weights.npz, which `hdrcnn predict "
        "--params` and the napari widget load.",
    )
    d = None  # see module docstring
    g = p.add_argument_group("run")
    g.add_argument(
        "--data",
        metavar="DIR",
        default=d,
        help="folder (or file) of training images [required unless --resume]",
    )
    g.add_argument("--val", metavar="DIR", default=d, help="held-out folder for validation loss")
    g.add_argument("--out", metavar="DIR", default=d, help="run folder [required]")
    g.add_argument(
        "--width-factor",
        type=number(low=0, low_open=True),
        default=d,
        help="channel width (default 0.25, or the --init file's)",
    )
    g.add_argument(
        "--crop",
        type=number(int, low=32, multiple=32),
        default=d,
        help="training crop side, multiple of 32 (default 224)",
    )
    g.add_argument(
        "--batch-size", type=number(int, low=1), default=d, help="samples per step (default 8)"
    )
    g.add_argument(
        "--steps",
        type=number(int, low=0),
        default=d,
        help="total optimisation steps, counted across resumes (default 1000)",
    )
    g.add_argument(
        "--epochs",
        type=number(low=0, low_open=True),
        default=d,
        help="train this many epochs instead",
    )
    g.add_argument(
        "--epoch-size",
        type=number(int, low=1),
        default=d,
        help="samples per epoch for the lr decay (default 16 per scene)",
    )
    g.add_argument(
        "--seed", type=number(int, low=0), default=d, help="seed for data and initialisation (0)"
    )
    g.add_argument(
        "--init",
        metavar="WEIGHTS",
        default=d,
        help="start from a weight file (ours or the authors') or name, e.g. to "
        "fine-tune the authors' weights; with a larger --width-factor the file's network is "
        "widened first, computing the same output (its new channels copy trained ones)",
    )
    g.add_argument(
        "--resume",
        metavar="RUN_OR_CHECKPOINT",
        default=d,
        help="continue a run (its folder or a checkpoint) with its step count, "
        "optimizer state and settings",
    )
    g.add_argument(
        "--max-minutes",
        type=number(low=0, low_open=True),
        default=d,
        help="stop cleanly (checkpoint + weights) after this much time",
    )
    g.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    g.add_argument(
        "--strategy",
        choices=("auto", "none", "mirrored", "multi-worker"),
        default="auto",
        help="train on several devices: mirrored = this machine's GPUs; "
        "multi-worker = the machines the TF_CONFIG environment variable names "
        "(run the same command on each). --batch-size is the global batch, "
        "split evenly across all replicas. auto: multi-worker when TF_CONFIG "
        "names more than one worker, mirrored with more than one GPU, else "
        "none (one device)",
    )
    g.add_argument(
        "--worker-out",
        metavar="DIR",
        default=None,
        help="multi-worker: workers other than the chief (which alone writes "
        "--out) write their final weights to DIR/weights.npz, to check "
        "that all workers agree",
    )
    g.add_argument(
        "--preview",
        type=number(int, low=0),
        metavar="N",
        default=0,
        help="write N camera samples (input | target PNG, target EXR) to "
        "OUT/preview and exit without training",
    )
    g.add_argument("--no-progress", action="store_true", help="log lines instead of a bar")
    g.add_argument("--no-tensorboard", action="store_true", help="skip TensorBoard logs")
    g.add_argument(
        "--export-authors",
        action="store_true",
        help="also write OUT/weights_authors.npz in the authors' layout",
    )
    g.add_argument(
        "--checkpoint-every", type=number(int, low=1), default=d, help="steps (default 500)"
    )
    g.add_argument(
        "--keep-checkpoints", type=number(int, low=0), default=d, help="0 keeps all (default 5)"
    )
    g.add_argument("--val-every", type=number(int, low=1), default=d, help="steps (default 250)")
    g.add_argument(
        "--val-samples", type=number(int, low=1), default=d, help="fixed val samples (default 32)"
    )
    g.add_argument(
        "--log-every", type=number(int, low=1), default=d, help="steps per log row (default 10)"
    )
    g.add_argument(
        "--linearize",
        choices=("gamma2.2", "srgb", "square"),
        default=d,
        help="linearisation recorded in the weights (default gamma2.2)",
    )

    g = p.add_argument_group("optimisation")
    g.add_argument(
        "--lr",
        type=number(low=0, low_open=True),
        default=d,
        help="Adam learning rate (default 5e-5)",
    )
    g.add_argument(
        "--lr-decay",
        type=number(low=0, low_open=True),
        default=d,
        help="factor per epoch (default 0.99)",
    )
    g.add_argument(
        "--beta1",
        type=number(low=0, high=1, high_open=True),
        default=d,
        help="Adam beta1 (default 0.9)",
    )
    g.add_argument(
        "--beta2",
        type=number(low=0, high=1, high_open=True),
        default=d,
        help="Adam beta2 (default 0.999)",
    )
    g.add_argument(
        "--loss",
        choices=("ir", "l2"),
        default=d,
        help="ir: illuminance + reflectance (default); l2: masked log-L2",
    )
    g.add_argument(
        "--loss-mask",
        choices=("target", "blend"),
        default=d,
        help="target: the authors' (pixels whose target is near or above white, "
        "default); blend: also every pixel the inference blend takes partly "
        "from the network (input within 5 %% of white)",
    )
    g.add_argument(
        "--over-boost-weight",
        type=number(low=0),
        default=d,
        metavar="K",
        help="a faint highlight predicted brighter than it is costs 1 + K times more "
        "(default 0: symmetric, the authors')",
    )
    g.add_argument(
        "--over-boost-stops",
        type=number(low=0, low_open=True),
        default=d,
        metavar="S",
        help="a highlight is faint for --over-boost-weight when its target is less than S "
        "stops above white (default 1)",
    )
    g.add_argument(
        "--regularization",
        choices=("none", "coherence", "sparse-jacobian"),
        default=d,
        help="temporal regularisation for video (default none)",
    )
    g.add_argument(
        "--reg-weight",
        type=number(low=0, high=1),
        default=d,
        help="a in (1-a)*loss + a*reg (default 0.95)",
    )
    g.add_argument(
        "--reg-strength",
        type=number(low=0),
        default=d,
        help="scales the random motions (default 1)",
    )
    g.add_argument(
        "--reg-noise",
        type=number(low=0),
        nargs=2,
        metavar=("LO", "HI"),
        default=d,
        help="noise std range of the moved copy (default 0.01 0.05)",
    )

    g = p.add_argument_group("data and virtual camera")
    g.add_argument(
        "--data-mode",
        choices=("auto", "hdr", "ldr"),
        default=d,
        help="ldr: pre-train on LDR photos linearised by --ldr-linearize "
        "(auto: HDR files if the folder has any)",
    )
    g.add_argument(
        "--ldr-linearize",
        choices=("gamma2.2", "srgb", "square"),
        default=d,
        help="inverse camera curve for LDR pre-training (default gamma2.2)",
    )
    g.add_argument(
        "--panorama",
        choices=("auto", "always", "never"),
        default=d,
        help="treat images as equirectangular panoramas (auto: 2:1 aspect)",
    )
    g.add_argument(
        "--max-side",
        type=number(int, low=1),
        default=d,
        help="larger scenes are reduced by halves below this (default 2048)",
    )
    g.add_argument(
        "--clip-fraction",
        type=number(low=0, high=1, high_open=True),
        nargs=2,
        metavar=("LO", "HI"),
        default=d,
        help="fraction of saturated pixels per sample (default 0.05 0.15)",
    )
    g.add_argument(
        "--faint-highlights",
        type=number(low=0, high=1),
        metavar="P",
        default=d,
        help="share of samples exposed so that the brightest pixel is only a little "
        "above white, so the network learns when not to boost (default 0)",
    )
    g.add_argument(
        "--faint-headroom",
        type=number(low=1),
        nargs=2,
        metavar=("LO", "HI"),
        default=d,
        help="brightest pixel of a faint-highlight sample, in multiples of white (default 1.0 1.3)",
    )
    g.add_argument(
        "--crop-fraction",
        type=number(low=0, high=1, low_open=True),
        nargs=2,
        metavar=("LO", "HI"),
        default=d,
        help="photo crops, of the shorter side (default 0.2 0.6)",
    )
    g.add_argument(
        "--fov",
        type=number(low=1, high=179, high_open=True),
        nargs=2,
        metavar=("LO", "HI"),
        default=d,
        help="panorama views, degrees (default 50 90)",
    )
    g.add_argument(
        "--max-pitch", type=number(low=0, high=90), default=d, help="degrees (default 30)"
    )
    g.add_argument(
        "--curve",
        choices=("sigmoid", "gamma", "mixed"),
        default=d,
        help="camera curve (default sigmoid)",
    )
    g.add_argument(
        "--curve-n",
        type=float,
        nargs=2,
        metavar=("MEAN", "STD"),
        default=d,
        help="sigmoid exponent (default 0.9 0.1)",
    )
    g.add_argument(
        "--curve-a",
        type=float,
        nargs=2,
        metavar=("MEAN", "STD"),
        default=d,
        help="sigmoid offset (default 0.6 0.1)",
    )
    g.add_argument(
        "--gamma",
        type=float,
        nargs=2,
        metavar=("MEAN", "STD"),
        default=d,
        help="gamma curve (default 2.2 0.1)",
    )
    g.add_argument("--hue-std", type=number(low=0), default=d, help="degrees (default 7)")
    g.add_argument("--saturation-std", type=number(low=0), default=d, help="(default 0.1)")
    g.add_argument(
        "--noise-max", type=number(low=0), default=d, help="noise std limit (default 0.01)"
    )
    g.add_argument(
        "--jpeg-probability",
        type=number(low=0, high=1),
        default=d,
        help="share of samples JPEG-compressed (default 0)",
    )
    g.add_argument(
        "--jpeg-quality",
        type=number(int, low=1, high=100),
        nargs=2,
        metavar=("LO", "HI"),
        default=d,
        help="JPEG quality range (default 30 100)",
    )
    p.set_defaults(run=run)


def run_folder_of(resume: str) -> Path:
    p = Path(resume).expanduser()
    if p.is_file():  # OUT/checkpoints/step_X.npz -> OUT
        return p.parent.parent if p.parent.name == "checkpoints" else p.parent
    return p


def build_config(args):
    """Stored settings (with --resume) or defaults, overridden by what the command line gives."""
    from ..training.camera import CameraSettings
    from ..training.loop import TrainConfig

    base: dict = {}
    if args.resume:
        run_json = run_folder_of(args.resume) / "run.json"
        if run_json.is_file():
            base = json.loads(run_json.read_text())
    camera = dict(base.get("camera", {}))
    for dest, target in _CONFIG_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if isinstance(value, list):
            value = tuple(value)
        if target.startswith("camera."):
            camera[target[len("camera.") :]] = value
        else:
            base[target] = value
    if args.resume:
        base["resume"] = args.resume
        if args.out is None:  # run.json's folder may have been moved or copied since
            base["out"] = str(run_folder_of(args.resume))
    if args.no_tensorboard:
        base["tensorboard"] = False
    if args.export_authors:
        base["export_authors"] = True
    if args.init and args.width_factor is None and not args.resume:
        from ..weights import load_weights  # fine-tuning: the network's width is the file's

        base["width_factor"] = load_weights(args.init).width_factor
    for needed in ("data", "out"):
        if not base.get(needed):
            raise ValueError(f"--{needed} is required")
    base["camera"] = CameraSettings.from_dict(camera).to_dict()
    return TrainConfig.from_dict(base)


def resolve_strategy(args) -> str:
    """--strategy auto -> what this machine and TF_CONFIG call for (see training.distribute)."""
    from ..training.distribute import choose_strategy, current_cluster

    cluster = current_cluster()
    gpu_count = 0
    if args.strategy == "auto" and (cluster is None or cluster.num_workers < 2):
        import tensorflow as tf  # listing physical devices leaves TensorFlow unconfigured

        gpu_count = len(tf.config.list_physical_devices("GPU"))
    return choose_strategy(args.strategy, cluster, gpu_count)


def check(args) -> str | None:
    """What makes the command line unusable (naming the option), or None: the checks that
    argparse's value types cannot make. Reads nothing."""
    for dest in _RANGES + _MEAN_STD:
        pair = getattr(args, dest)
        flag = "--" + dest.replace("_", "-")
        if pair is None:
            continue
        if dest in _RANGES and pair[0] > pair[1]:
            return f"{flag}: LO must not be above HI, got {pair[0]:g} {pair[1]:g}"
        if dest in _MEAN_STD and pair[1] < 0:
            return f"{flag}: STD must not be negative, got {pair[1]:g}"
    if not args.resume:
        for dest in ("data", "out"):
            if getattr(args, dest) is None:
                return f"--{dest} is required (unless --resume)"
    return None


def run(args) -> int:
    from ..reconstruct import DeviceError, configure_device, require_device
    from ..training.data import TrainingDataError
    from ..weights import WeightFileError

    problem = check(args)
    if problem is not None:
        return refuse("train", problem)
    try:
        config = build_config(args)
    except (OSError, WeightFileError, json.JSONDecodeError) as err:  # run.json, the --init file
        return fail("train", str(err))
    except ValueError as err:  # settings that do not go together (or a stored run's)
        return refuse("train", str(err))
    configure_device(args.device)
    strategy = "none"
    if not args.preview:
        try:
            require_device(args.device)
        except DeviceError as err:
            return refuse("train", f"--device {args.device}: {err}")
        try:
            strategy = resolve_strategy(args)
        except ValueError as err:  # e.g. multi-worker without a TF_CONFIG cluster
            return refuse("train", str(err))
    from ..training.loop import StopFlag, train, write_preview

    try:
        if args.preview:
            files = write_preview(config, args.preview, Path(config.out) / "preview")
            print(f"wrote {len(files)} files to {Path(config.out) / 'preview'}")
            return OK
        stop = StopFlag()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set("terminated"))
        try:
            result = train(
                config,
                stop=stop,
                progress=not args.no_progress,
                log=lambda m: print(m, file=sys.stderr, flush=True),
                strategy=strategy,
                worker_out=args.worker_out,
            )
        finally:
            signal.signal(signal.SIGTERM, previous)
    except (TrainingDataError, WeightFileError, FloatingPointError, ValueError) as err:
        return fail("train", str(err))
    val = ""
    if result.val_loss is not None:
        val = (
            f", val loss {result.val_loss:.4g} (linearised input without reconstruction: "
            f"{result.val_loss_baseline:.4g})"
        )
    print(f"step {result.step}: loss {result.loss:.4g}{val}; weights in {result.weights_path}")
    return INTERRUPTED if result.stopped == "interrupted" else OK
