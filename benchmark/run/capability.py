"""Which kind a task is, and whether a model can run it: the capability checks made before any
model or data loads."""

from __future__ import annotations

from typing import Sequence

from ..core.errors import BadInput
from ..core.tasks import TaskSpec
from ..models import ModelCard, adapter_class
from ..models.base import Model
from .kinds import FDP, IDP, TaskKind
from .probe import Probe

KINDS: dict[str, type[TaskKind]] = {kind.name: kind for kind in (FDP, IDP, Probe)}


def kind_of(task: TaskSpec) -> type[TaskKind]:
    return KINDS[task.kind]


def capabilities(card: ModelCard, model: Model | None = None) -> tuple[str, ...]:
    return (type(model) if model is not None else adapter_class(card)).capabilities()


def check_capabilities(card: ModelCard, tasks: Sequence[TaskSpec], model: Model | None = None) -> None:
    """Refuse a task the model cannot do, before any model or data loads."""
    caps = capabilities(card, model)
    for task in tasks:
        need = kind_of(task).needs(task)
        if need not in caps:
            raise BadInput(f"model '{card.name}' (adapter '{card.adapter}') cannot run task '{task.name}': "
                           f"{task.kind} needs capability '{need}', the model has {list(caps) or 'none'}")


def supports(card: ModelCard, task: TaskSpec) -> bool:
    return kind_of(task).needs(task) in capabilities(card)
