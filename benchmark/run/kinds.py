"""Where FDP and IDP differ, in one place: what the model sees, which capability it is asked for,
what a valid output is, how a prediction is stored and read back for scoring.

The runner builds one `TaskKind` per task (`capability.kind_of(task)(task, transitions)`) and never
tests the kind itself. The likelihood-preference probe is in `probe`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from ..core.errors import SampleError
from ..core.tasks import TaskSpec
from ..core.types import Batch, Transition, check_image
from ..log.records import Counterfactual, Prediction
from ..log.store import RunStore
from ..models.base import Model, details_of
from . import bestofn
from .bestofn import Candidates
from .counterfactual import COUNTERFACTUAL


@dataclass
class Loaded:
    """A sample with its pixels loaded for one batch."""

    position: int
    transition: Transition
    source: np.ndarray
    target: np.ndarray | None
    aux: dict[str, Any] = field(default_factory=dict)

    @property
    def sample_id(self) -> str:
        return self.transition.sample_id


def resize(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BILINEAR))


def fit(image: np.ndarray, shape: tuple[int, ...], info: dict, key: str) -> np.ndarray:
    """`image` resized to the source's size for scoring; the original size is recorded in `info`."""
    if image.shape == shape:
        return image
    info[key] = list(image.shape[:2])
    return resize(image, shape)


class TaskKind:
    name: ClassVar[str]
    #: The capability a model needs for tasks of this kind (see `needs`).
    capability: ClassVar[str]
    #: Whether set-level metrics (FID, KID: distributions of predicted frames) apply.
    set_level: ClassVar[bool] = False
    #: Whether the action texts are model inputs (FDP instructions) rather than the answer (IDP).
    actions_are_inputs: ClassVar[bool] = False

    def __init__(self, task: TaskSpec, transitions: Sequence[Transition] = ()):
        self.task = task

    @classmethod
    def needs(cls, task: TaskSpec) -> str:
        """The capability a model needs for `task`."""
        return cls.capability

    def batch(self, task: TaskSpec, items: list[Loaded], sees_reference: bool,
              actions: list[str] | None = None) -> Batch:
        """The model's view of a batch (see `Batch`); `actions` replaces the samples' actions."""
        raise NotImplementedError

    def skip_reason(self, transition: Transition, all_need_target: bool) -> str | None:
        return None

    def predict(self, model: Model, batch: Batch) -> list[Any]:
        raise NotImplementedError

    def check(self, value: Any) -> Any:
        """One sample's output, validated (SampleError otherwise)."""
        raise NotImplementedError

    def store(self, store: RunStore, item: Loaded, value: Any, info: dict) -> tuple[Prediction, Any]:
        """Store a validated output -> (the stored record, what the metrics score)."""
        raise NotImplementedError

    def stored(self, store: RunStore, prediction: Prediction, item: Loaded) -> Any:
        """What the metrics score, read back from a stored prediction (rescoring)."""
        raise NotImplementedError


class FDP(TaskKind):
    """Forward dynamics: source + action -> next frame. The target is the answer."""

    name, capability, set_level, actions_are_inputs = "fdp", "predict_next", True, True

    def batch(self, task, items, sees_reference, actions=None):
        actions = actions or [i.transition.action_text for i in items]
        return Batch(sample_ids=[i.sample_id for i in items], sources=[i.source for i in items],
                     prompts=[task.render_prompt(a) for a in actions],
                     targets=[i.target for i in items] if sees_reference else None,
                     actions=actions, action_vectors=[i.transition.action_vector for i in items],
                     meta=[i.transition.meta for i in items], task=task.name, seed=task.seed)

    def skip_reason(self, transition, all_need_target):
        if transition.target is None and all_need_target:
            return "no target frame, and every metric of the task needs one"
        return None

    def predict(self, model, batch):
        if "predict_candidates" in model.capabilities():
            return bestofn.predict(model, batch)
        return model.predict_next(batch, n=1)

    def check(self, value):
        if isinstance(value, Candidates):
            return bestofn.check(value)
        if not isinstance(value, (list, tuple)) or len(value) != 1:
            raise SampleError(f"predict_next must return one list of n=1 images per sample, got "
                              f"{type(value).__name__}{' of length %d' % len(value) if hasattr(value, '__len__') else ''}")
        return check_image(value[0], "model prediction")

    def store(self, store, item, value, info):
        shape = item.source.shape
        fields: dict[str, Any] = {}
        frames = value.images if isinstance(value, Candidates) else [value]
        if any(map(details_of, frames)):  # what the adapter recorded, e.g. its geometry (models/geometry)
            info["model_details"] = ([details_of(c) for c in frames] if isinstance(value, Candidates)
                                     else details_of(value))
        if isinstance(value, Candidates):
            fields, value = bestofn.store(store, [fit(c, shape, info, "prediction_resized_from")
                                                  for c in value.images], value)
        else:
            value = fit(value, shape, info, "prediction_resized_from")
        if COUNTERFACTUAL in item.aux:
            action, image = item.aux[COUNTERFACTUAL]
            item.aux[COUNTERFACTUAL] = image = fit(image, shape, info, "counterfactual_resized_from")
            fields["counterfactual"] = Counterfactual(action, store.put_image(image))
        return Prediction(images=(store.put_image(value),), **fields), value

    def stored(self, store, prediction, item):
        if prediction.counterfactual is not None:
            item.aux[COUNTERFACTUAL] = store.get_image(prediction.counterfactual.image)
        return store.get_image(prediction.images[0])


class IDP(TaskKind):
    """Inverse dynamics: source + next frame -> the action. The action text is the answer."""

    name, capability = "idp", "infer_action"

    def skip_reason(self, transition, all_need_target):
        return None if transition.target is not None else "no target frame: IDP needs both frames as input"

    def batch(self, task, items, sees_reference, actions=None):
        actions = actions or [i.transition.action_text for i in items]
        return Batch(sample_ids=[i.sample_id for i in items], sources=[i.source for i in items],
                     prompts=[task.render_prompt(a) for a in actions], targets=[i.target for i in items],
                     actions=actions if sees_reference else None,
                     action_vectors=[i.transition.action_vector for i in items] if sees_reference else None,
                     # a reader's meta can hold the answer (Meta-World's motion text, SSv2's template)
                     meta=[i.transition.meta if sees_reference else {} for i in items], task=task.name,
                     seed=task.seed)

    def predict(self, model, batch):
        return model.infer_action(batch)

    def check(self, value):
        if not isinstance(value, str):
            raise SampleError(f"infer_action must return a str per sample, got {type(value).__name__}")
        return value

    def store(self, store, item, value, info):
        return Prediction(text=value), value

    def stored(self, store, prediction, item):
        return prediction.text
