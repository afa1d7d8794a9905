"""The SI-HDR evaluation protocol (docs/evaluation.md): test inputs, runs, tables and figures.

For every reference HDR image and clip level, the protocol's camera makes the 8-bit test input
(`camera_ldr`, optionally through JPEG), every method reconstructs it (the `ldr_linear`
baseline always, then each weight file), `metrics.score` scores each against the reference,
and the results are written to `per_image.csv`, `summary.csv` (mean and 95 % confidence
interval per method and clip level), `settings.json` and one comparison figure per test input.
Nothing random is involved, so a run is reproducible to the printed digits.

- `protocol`: the camera, references, methods, and a run's configuration and test cases.
- `run`: `run_evaluation`, the whole protocol with its files and settings.json.
- `report`: the tables: columns, summary with confidence intervals, CSV, printed text.
- `figures`: the comparison figure of each test input.
"""

from ..io.ldr import JPEG_SUBSAMPLING, jpeg_round_trip
from ..metrics import ldr_linear
from .figures import colour_ramp, comparison_figure
from .protocol import (
    BASELINE,
    CAMERA_GAMMA,
    DEFAULT_CLIPS,
    EvaluationConfig,
    EvaluationError,
    EvaluationResult,
    InputCase,
    Method,
    camera_exposure,
    camera_ldr,
    default_label,
    downscale,
    expose_ldr,
    load_methods,
    method_labels,
    safe_name,
    unique_names,
)
from .report import (
    PER_IMAGE_COLUMNS,
    confidence_interval,
    format_settings,
    format_summary,
    summarise,
    summary_columns,
)
from .run import protocol_settings, run_evaluation

__all__ = [
    "BASELINE",
    "CAMERA_GAMMA",
    "DEFAULT_CLIPS",
    "JPEG_SUBSAMPLING",
    "PER_IMAGE_COLUMNS",
    "EvaluationConfig",
    "EvaluationError",
    "EvaluationResult",
    "InputCase",
    "Method",
    "camera_exposure",
    "camera_ldr",
    "colour_ramp",
    "comparison_figure",
    "confidence_interval",
    "default_label",
    "downscale",
    "expose_ldr",
    "format_settings",
    "format_summary",
    "jpeg_round_trip",
    "ldr_linear",
    "load_methods",
    "method_labels",
    "protocol_settings",
    "run_evaluation",
    "safe_name",
    "summarise",
    "summary_columns",
    "unique_names",
]
