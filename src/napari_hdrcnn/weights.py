"""Weight files: the authors' layout, the project's own format, and names -> files.

Weight files are untrusted input. The authors' files are numpy object arrays, i.e. pickles; they
are read with an unpickler that admits only what numpy needs to rebuild plain arrays, so a file
whose pickle would call anything else is refused before it can run. The project's format is an
npz of named arrays read with `allow_pickle=False`, plus a JSON metadata entry.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .architecture import ARCHITECTURE, N_TENSORS, infer_width_factor, tensor_specs
from .io.atomic import atomic_write

FORMAT_NAME = "napari-hdrcnn-weights"
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"
MAX_UNCOMPRESSED_BYTES = 1 << 30  # 1 GiB: the authors' file is 112 MiB
LINEARIZATIONS = ("square", "gamma2.2", "srgb")
# How the network's output is blended with the linearised input: "max" (the authors': one alpha
# per pixel from its brightest channel, all channels replaced) or "per-channel" (each channel by
# its own level, so a channel that did not clip stays as measured) or "consistent" (per channel,
# and the network's value is held to what the photo measured: a channel below white within a
# code of its linearised value, a clipped one at least at white).
BLENDS = ("max", "per-channel", "consistent")
AUTHORS_LINEARIZE = "square"  # the authors' files carry no metadata: their code squares
UNRECORDED_LINEARIZE = "gamma2.2"  # our files from before linearisation was recorded
UNRECORDED_BLEND = "max"  # files from before the blend was recorded

AUTHORS_URL = "https://computergraphics.on.liu.se/hdrcnn/material/{file}"
AUTHORS_FILES = {
    "hdrcnn": "hdrcnn_params.npz",
    "hdrcnn-compr": "hdrcnn_params_compr.npz",
    "hdrcnn-compr-regularized": "hdrcnn_params_compr_regularized.npz",
}
AUTHORS_DESCRIPTIONS = {
    "hdrcnn": "the authors' default weights",
    "hdrcnn-compr": "the authors' weights trained with JPEG artefacts",
    "hdrcnn-compr-regularized": "the authors' JPEG + temporally regularised weights (video)",
}
DEFAULT_NAME = "default"
# Models trained by this project and shipped inside the package, by name; the variants have the
# roles of the authors' three files.
EMBEDDED_DESCRIPTIONS = {
    DEFAULT_NAME: "the model shipped inside the package",
    "default-compr": "shipped model fine-tuned on JPEG-compressed inputs",
    "default-compr-regularized": "shipped JPEG model with temporal regularisation (video)",
}
# Every weight name, shipped models first: what `--params`, the widget and the tables accept.
WEIGHT_NAMES = (*EMBEDDED_DESCRIPTIONS, *AUTHORS_FILES)
# Weight names suggested for video, best first (temporally regularised).
VIDEO_WEIGHT_NAMES = ("default-compr-regularized", "hdrcnn-compr-regularized")


class WeightFileError(ValueError):
    """A weight file that cannot be used; the message names the file and the problem."""


@dataclass
class Weights:
    """80 float32 tensors in the authors' order plus what is known about them."""

    tensors: list[np.ndarray]
    width_factor: float = 1.0
    linearize: str = "square"
    blend: str = "max"
    metadata: dict = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        check_layout(self.tensors, self.width_factor, self.source or "<weights>")
        if self.blend not in BLENDS:
            raise ValueError(f"unknown blend {self.blend!r}; one of {', '.join(BLENDS)}")


def check_layout(tensors: list[np.ndarray], width_factor: float, source: str) -> None:
    """Refuse a tensor list whose count or shapes differ from the network's."""
    if len(tensors) != N_TENSORS:
        raise WeightFileError(f"{source}: expected {N_TENSORS} tensors, found {len(tensors)}")
    for spec, arr in zip(tensor_specs(width_factor), tensors):
        if not isinstance(arr, np.ndarray):
            raise WeightFileError(
                f"{source}: tensor {spec.index} is a {type(arr).__name__}, not an array"
            )
        if tuple(arr.shape) != spec.shape:
            raise WeightFileError(
                f"{source}: tensor {spec.index} ({spec.name}) has shape {tuple(arr.shape)}, "
                f"expected {spec.shape}"
            )
        if arr.dtype.kind != "f":
            raise WeightFileError(
                f"{source}: tensor {spec.index} has dtype {arr.dtype}, expected float"
            )
        if not np.all(np.isfinite(arr)):
            raise WeightFileError(f"{source}: tensor {spec.index} ({spec.name}) holds NaN or Inf")


# -- safe reading of the authors' object-array npz ------------------------------------------------
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # protocol-2 pickles spell bytes this way
}


def _numpy_multiarray():
    """numpy's multiarray module under its numpy 2 name, or its numpy 1 name."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Admits numpy's array reconstruction and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused to load '{module}.{name}': a weight file may only contain arrays"
            )
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name in ("_reconstruct", "scalar"):
            return getattr(_numpy_multiarray(), name)
        return getattr(np, name)

    def persistent_load(self, pid):  # pragma: no cover - numpy never writes these
        raise pickle.UnpicklingError("persistent ids are not allowed in a weight file")


def _npy_from_zip(zf: zipfile.ZipFile, member: str, path: str) -> tuple[dict, bytes]:
    """Header dict and the raw payload of an .npy member, size-checked."""
    info = zf.getinfo(member)
    if info.file_size > MAX_UNCOMPRESSED_BYTES:
        raise WeightFileError(
            f"{path}: member {member} is {info.file_size} bytes uncompressed, "
            "too large for a weight file"
        )
    data = zf.read(member)
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
    except ValueError as err:
        raise WeightFileError(f"{path}: {member} is not a numpy array file ({err})") from err
    return {"shape": shape, "fortran": fortran, "dtype": dtype}, data[buf.tell() :]


def _unpickle_arrays(payload: bytes, path: str) -> list[np.ndarray]:
    try:
        obj = _ArrayOnlyUnpickler(io.BytesIO(payload), encoding="latin1").load()
    except pickle.UnpicklingError as err:
        raise WeightFileError(f"{path}: {err}") from err
    except Exception as err:  # truncated or malformed pickle
        raise WeightFileError(f"{path}: cannot read the tensor list ({err})") from err
    if not isinstance(obj, np.ndarray) or obj.dtype != object:
        raise WeightFileError(f"{path}: params.npy does not hold an object array of tensors")
    return [np.asarray(a) for a in obj.ravel()]


def read_authors_npz(path: str | os.PathLike) -> Weights:
    """Read a file in the authors' layout (TensorLayer 1.x `save_npz`) without unsafe unpickling."""
    path = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise WeightFileError(f"{path}: not a readable npz/zip file ({err})") from err
    with zf:
        if "params.npy" not in zf.namelist():
            raise WeightFileError(f"{path}: no 'params.npy' member; members are {zf.namelist()}")
        header, payload = _npy_from_zip(zf, "params.npy", path)
    if header["dtype"] == np.dtype(object):
        tensors = _unpickle_arrays(payload, path)
    else:
        raise WeightFileError(
            f"{path}: params.npy has dtype {header['dtype']}, expected the "
            "authors' object array of tensors"
        )
    tensors = [t.astype(np.float32, copy=False) if t.dtype.kind == "f" else t for t in tensors]
    width = 1.0
    if tensors and isinstance(tensors[0], np.ndarray) and tensors[0].ndim == 4:
        width = infer_width_factor(tensors[0].shape[3])
    return Weights(
        tensors,
        width_factor=width,
        linearize=AUTHORS_LINEARIZE,
        metadata={"format": "authors", "sha256": sha256_of(path)},
        source=path,
    )


def write_authors_npz(weights: Weights, path: str | os.PathLike) -> None:
    """Export to the authors' layout, so our weights load in their release (at width 1.0)."""
    arr = np.empty(len(weights.tensors), dtype=object)
    for i, t in enumerate(weights.tensors):
        arr[i] = np.asarray(t, np.float32)

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            with zf.open("params.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=True)

    atomic_write(path, write)


# -- the project's own format -------------------------------------------------------------------
def average_weights(files: list[Weights]) -> Weights:
    """The tensor-wise mean of weight files of one width (checkpoint averaging, as in SWA; the
    batch-norm statistics are averaged too). Linearisation, blend and metadata of the first."""
    if not files:
        raise ValueError("nothing to average")
    first = files[0]
    for w in files[1:]:
        if w.width_factor != first.width_factor:
            raise WeightFileError(
                f"{w.source or '<weights>'}: width factor {w.width_factor:g}, "
                f"{first.source or 'the first file'} has "
                f"{first.width_factor:g}; only files of one width average"
            )
    tensors = [
        np.asarray(np.mean([w.tensors[i] for w in files], axis=0, dtype=np.float64), np.float32)
        for i in range(len(first.tensors))
    ]
    return Weights(
        tensors,
        first.width_factor,
        first.linearize,
        blend=first.blend,
        metadata=dict(first.metadata),
    )


def write_weights(weights: Weights, path: str | os.PathLike, **metadata) -> None:
    """Named arrays + JSON metadata, no pickle. Written atomically."""
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "width_factor": weights.width_factor,
        "linearize": weights.linearize,
        "blend": weights.blend,
    }
    meta.update({k: v for k, v in weights.metadata.items() if k not in meta and k != "sha256"})
    meta.update(metadata)
    arrays: dict[str, Any] = {  # Any: numpy's stubs type savez's **kwds as allow_pickle
        spec.name: np.asarray(t, np.float32)
        for spec, t in zip(tensor_specs(weights.width_factor), weights.tensors)
    }
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_write(path, write)


def read_weights_file(path: str | os.PathLike) -> Weights:
    """Read either format, telling them apart by their members."""
    path = str(path)
    if not os.path.isfile(path):
        raise WeightFileError(f"{path}: no such weight file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            sizes = sum(i.file_size for i in zf.infolist())
    except (zipfile.BadZipFile, OSError) as err:
        raise WeightFileError(f"{path}: not a readable npz/zip file ({err})") from err
    if sizes > MAX_UNCOMPRESSED_BYTES:
        raise WeightFileError(f"{path}: {sizes} bytes uncompressed, too large for a weight file")
    if f"{METADATA_KEY}.npy" not in names:
        return read_authors_npz(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(bytes(npz[METADATA_KEY]).decode())
            if meta.get("format") != FORMAT_NAME or meta.get("architecture") != ARCHITECTURE:
                raise WeightFileError(
                    f"{path}: metadata says format {meta.get('format')!r}, "
                    f"architecture {meta.get('architecture')!r}"
                )
            width = float(meta["width_factor"])
            specs = tensor_specs(width)
            missing = [s.name for s in specs if s.name not in npz.files]
            if missing:
                raise WeightFileError(
                    f"{path}: missing tensors {missing[:3]}{' ...' if len(missing) > 3 else ''}"
                )
            tensors = [npz[s.name] for s in specs]
    except WeightFileError:
        raise
    except (ValueError, KeyError, json.JSONDecodeError, OSError) as err:
        raise WeightFileError(f"{path}: unreadable weight file ({err})") from err
    linearize = meta.get("linearize", UNRECORDED_LINEARIZE)
    if linearize not in LINEARIZATIONS:
        raise WeightFileError(f"{path}: unknown linearisation {linearize!r} in metadata")
    blend = meta.get("blend", UNRECORDED_BLEND)
    if blend not in BLENDS:
        raise WeightFileError(f"{path}: unknown blend {blend!r} in metadata")
    meta["sha256"] = sha256_of(path)
    return Weights(
        tensors, width_factor=width, linearize=linearize, blend=blend, metadata=meta, source=path
    )


# -- names -> files -----------------------------------------------------------------------------
def embedded_weights_path(name: str = DEFAULT_NAME) -> Path:
    return Path(__file__).parent / "data" / f"{name}.npz"


def default_weights_path() -> Path:
    return embedded_weights_path(DEFAULT_NAME)


def cache_dir() -> Path:
    """Where the authors' files are installed: $HDRCNN_WEIGHTS_DIR or the user cache folder."""
    env = os.environ.get("HDRCNN_WEIGHTS_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-hdrcnn")) / "weights"


def available_weights() -> list[dict]:
    """Every known name with where it lives and whether it is installed."""
    rows = []
    for name, description in EMBEDDED_DESCRIPTIONS.items():
        p = default_weights_path() if name == DEFAULT_NAME else embedded_weights_path(name)
        rows.append(
            {"name": name, "path": str(p), "installed": p.is_file(), "description": description}
        )
    for name, file in AUTHORS_FILES.items():
        p = cache_dir() / file
        rows.append(
            {
                "name": name,
                "path": str(p),
                "installed": p.is_file(),
                "description": AUTHORS_DESCRIPTIONS[name],
            }
        )
    return rows


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A weight name (`default`, `hdrcnn`, ...) or a path -> an existing file, or a clear error."""
    s = str(name_or_path)
    if s == DEFAULT_NAME:
        p = default_weights_path()
        if not p.is_file():
            raise WeightFileError(
                "the embedded default model is not part of this build yet; pass --params with "
                "one of the authors' files (see `hdrcnn weights list`) or a trained file"
            )
        return p
    if s in EMBEDDED_DESCRIPTIONS:
        p = embedded_weights_path(s)
        if not p.is_file():
            raise WeightFileError(f"weights '{s}' are not part of this build (looked for {p})")
        return p
    if s in AUTHORS_FILES:
        p = cache_dir() / AUTHORS_FILES[s]
        if not p.is_file():
            raise WeightFileError(
                f"weights '{s}' are not installed (looked for {p}). Download "
                f"{AUTHORS_URL.format(file=AUTHORS_FILES[s])} and run "
                f"`hdrcnn weights install {s} FILE`, or `hdrcnn weights download {s}`"
            )
        return p
    p = Path(s).expanduser()
    if not p.is_file():
        known = ", ".join([*EMBEDDED_DESCRIPTIONS, *AUTHORS_FILES])
        raise WeightFileError(f"{s}: no such weight file (known names: {known})")
    return p


def weight_defaults(name_or_path: str | os.PathLike = DEFAULT_NAME) -> tuple[str, str]:
    """(linearisation, blend) a weight file asks for, from its metadata alone (the tensors are
    not read): what the widget shows as "from the weights"."""
    path = str(resolve(name_or_path))
    try:
        with zipfile.ZipFile(path) as zf:
            ours = f"{METADATA_KEY}.npy" in zf.namelist()
        if not ours:
            return AUTHORS_LINEARIZE, UNRECORDED_BLEND
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(bytes(npz[METADATA_KEY]).decode())
    except (zipfile.BadZipFile, OSError, ValueError, KeyError) as err:
        raise WeightFileError(f"{path}: unreadable weight file ({err})") from err
    return meta.get("linearize", UNRECORDED_LINEARIZE), meta.get("blend", UNRECORDED_BLEND)


def load_weights(name_or_path: str | os.PathLike | Weights = DEFAULT_NAME) -> Weights:
    """Resolve a name or path and read the file, whichever its format; loaded `Weights` are
    returned as they are, so every API that takes weights accepts all three."""
    if isinstance(name_or_path, Weights):
        return name_or_path
    return read_weights_file(resolve(name_or_path))


def install(name: str, source: str | os.PathLike) -> Path:
    """Check a downloaded authors' file and copy it into the cache under its name."""
    if name not in AUTHORS_FILES:
        raise WeightFileError(f"unknown weight name {name!r}; one of {', '.join(AUTHORS_FILES)}")
    read_authors_npz(source)  # layout check before anything is copied
    dest = cache_dir() / AUTHORS_FILES[name]
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(dest, lambda tmp: shutil.copyfile(source, tmp))
    return dest


def download(name: str, timeout: float = 60.0) -> Path:
    """Fetch one of the authors' files from their address, check its layout, install it."""
    import urllib.request

    if name not in AUTHORS_FILES:
        raise WeightFileError(f"unknown weight name {name!r}; one of {', '.join(AUTHORS_FILES)}")
    url = AUTHORS_URL.format(file=AUTHORS_FILES[name])
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = os.path.join(tmpdir, AUTHORS_FILES[name])
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except OSError as err:
            raise WeightFileError(
                f"could not download {url} ({err}); download it by hand and "
                f"run `hdrcnn weights install {name} FILE`"
            ) from err
        return install(name, tmp)


# -- helpers ------------------------------------------------------------------------------------
def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
