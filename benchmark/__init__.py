"""wmbench: evaluate world models inside vision-language models.

Forward dynamics prediction (FDP: image + action in language -> next image) and inverse dynamics
prediction (IDP: image pair -> the action), following Qiu et al., arXiv 2506.06006.

    import wmbench
    result = wmbench.evaluate("metaworld_fdp", "copy", limit=16)
    result.metrics["metaworld_fdp"]["change_iou"].mean   # 0.0: copying the source predicts no change

The public API is what this module exports; everything under it is private. Heavy modules load on
first use of the name that needs them, so `import wmbench` is cheap.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("wmbench")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    # running
    "evaluate": "wmbench.run.api", "rescore": "wmbench.run.api", "merge": "wmbench.run.api",
    "RunResult": "wmbench.run.api", "annotate": "wmbench.run.annotate", "AnnotationResult": "wmbench.run.annotate",
    "MetricResult": "wmbench.run.api", "RunPlan": "wmbench.run.dryrun",
    # reading runs and tabulating them
    "read_run": "wmbench.log.runlog", "RunLog": "wmbench.log.runlog", "leaderboard": "wmbench.analysis.leaderboard",
    # extending: models, metrics, dataset formats
    "Model": "wmbench.models.base", "TaskInfo": "wmbench.models.base", "ModelCard": "wmbench.models",
    "Metric": "wmbench.metrics.base", "MetricInput": "wmbench.metrics.base", "Scores": "wmbench.metrics.base",
    "Batch": "wmbench.core.types", "Transition": "wmbench.core.types", "LazyImage": "wmbench.core.types",
    "TaskSpec": "wmbench.core.tasks", "DatasetSpec": "wmbench.core.tasks", "FrameSelection": "wmbench.core.frames",
    "register_model": "wmbench.core.registry", "register_metric": "wmbench.core.registry",
    "register_format": "wmbench.core.registry",
    # errors
    "BadInput": "wmbench.core.errors", "SampleError": "wmbench.core.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wmbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
