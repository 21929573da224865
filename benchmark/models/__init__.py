"""Model adapters (`MODELS` registry, entry-point group `wmbench.models`) and model cards.

A model card (`baselines/*.yaml`) names an adapter, its arguments and a citation. `--model`
takes a card name, a card path, or an adapter name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import SpecError, BadInput
from ..core.registry import MODELS, did_you_mean, import_target
from ..core.yamlspec import build, content_hash, read_yaml, to_dict
from .base import CAPABILITIES, TASK_CAPABILITY, Model

CARDS_DIR = Path(__file__).resolve().parents[2] / "baselines"

__all__ = ["MODELS", "Model", "ModelCard", "Pricing", "CAPABILITIES", "TASK_CAPABILITY", "resolve_card",
           "discover_cards", "instantiate", "parse_model_args", "card_or_task"]


@dataclass(frozen=True)
class Pricing:
    """What one call of a model costs, for the estimates of `wmbench run --dry-run` (card key
    `pricing`; docs/adding-a-model.md). Prices are the card author's assumptions, not facts: a
    user checks them against the provider's price page (`source`, read on `as_of`). One call is
    one prediction (an FDP frame, a best-of-N candidate, an IDP answer) or one judge or verifier
    query. Cost of a call = per_call + input tokens / 1000 * per_1k_input_tokens + output tokens /
    1000 * per_1k_output_tokens, where input tokens = images * image_tokens + the prompt's
    characters / 4, and output tokens = output_tokens (default: the card's `max_tokens`, else 0)."""

    currency: str = "USD"
    per_call: float = 0.0
    per_1k_input_tokens: float = 0.0
    per_1k_output_tokens: float = 0.0
    image_tokens: int = 0
    output_tokens: int | None = None
    source: str = ""
    as_of: str = ""

    def __post_init__(self) -> None:
        for name in ("per_call", "per_1k_input_tokens", "per_1k_output_tokens", "image_tokens", "output_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")

    def call_cost(self, images: int, prompt_chars: int, output_tokens: int) -> float:
        """The estimated cost of one call with `images` input images and a prompt of `prompt_chars`."""
        tokens_in = images * self.image_tokens + -(-prompt_chars // 4)
        return (self.per_call + tokens_in / 1000 * self.per_1k_input_tokens
                + output_tokens / 1000 * self.per_1k_output_tokens)


@dataclass(frozen=True)
class ModelCard:
    name: str
    adapter: str
    args: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    citation: str = ""
    url: str = ""
    suites: list[str] = field(default_factory=list)
    #: Prices for cost estimates (optional); not part of the model's identity: a run directory and
    #: results.json record the card without them, so a price change never refuses a resume.
    pricing: Pricing | None = field(default=None, compare=False)
    path: str = field(default="", compare=False, metadata={"yaml": False})  # where the card was read from

    def __post_init__(self) -> None:
        if isinstance(self.pricing, dict):  # a copy made from to_dict()
            object.__setattr__(self, "pricing", Pricing(**self.pricing))

    def to_dict(self) -> dict[str, Any]:
        data = to_dict(self)
        data.pop("path")
        if data.get("pricing") is None:
            data.pop("pricing", None)
        return data

    @property
    def fingerprint(self) -> str:
        return content_hash({"adapter": self.adapter, "args": self.args})

    def public_identity(self) -> dict[str, Any]:
        """The card as a run directory records it: secrets in its args redacted (core.secrets),
        and the fingerprint of that redacted card."""
        from ..core.secrets import redact

        data = self.to_dict()
        data.pop("pricing", None)
        public = ModelCard(**redact(data))
        return {"card": public.to_dict(), "fingerprint": public.fingerprint}


def load_card(path: str | os.PathLike) -> ModelCard:
    path = Path(path)
    card = build(ModelCard, read_yaml(path), path)
    if ":" not in card.adapter and card.adapter not in MODELS:
        raise SpecError(path, "adapter", f"unknown adapter '{card.adapter}'"
                        f"{did_you_mean(card.adapter, MODELS.names())}; known: {', '.join(MODELS.names())}")
    return ModelCard(**{**card.to_dict(), "path": str(path)})


def card_or_task(path: str | os.PathLike, data: Any) -> tuple[bool, str]:
    """Is the YAML `data` read from `path` a model card (True) or a task spec (False)? And why.

    Misspelled files must be checked as what they are meant to be (`adaptor:` in a card is a
    misspelled card key, not an unknown task field), so the rule is, in order:
    1. the keys that belong to one kind only: ModelCard's `adapter`, `args`, `citation`, `url`
       against TaskSpec's `kind`, `dataset`, `metrics`, `frames`, `prompt`, ...; an unknown key
       counts for the kind whose key it most resembles (`adaptor` -> `adapter`); the kind with
       more keys wins;
    2. on a tie, the folder: a file under a `baselines/` folder is a card, under `tasks/` a task;
    3. else a task.
    """
    import dataclasses
    import difflib

    from ..core.tasks import TaskSpec

    def yaml_fields(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls) if f.init and f.metadata.get("yaml", True)}

    card_fields, task_fields = yaml_fields(ModelCard), yaml_fields(TaskSpec)
    card_only, task_only = sorted(card_fields - task_fields), sorted(task_fields - card_fields)
    card_keys: list[str] = []
    task_keys: list[str] = []
    for key in map(str, data) if isinstance(data, dict) else ():
        if key in card_fields | task_fields:
            match = key
        else:
            close = difflib.get_close_matches(key, card_only + task_only, n=1)
            match = close[0] if close else ""
        if match in card_only:
            card_keys.append(key)
        elif match in task_only:
            task_keys.append(key)
    if len(card_keys) != len(task_keys):
        is_card = len(card_keys) > len(task_keys)
        keys = card_keys if is_card else task_keys
        return is_card, f"it has {'model card' if is_card else 'task'} key(s) {', '.join(keys)}"
    folders = [part.lower() for part in Path(path).resolve().parent.parts]
    for index in range(len(folders) - 1, -1, -1):  # the nearest folder decides
        if folders[index] in ("baselines", "tasks"):
            is_card = folders[index] == "baselines"
            return is_card, f"it is under a {folders[index]}/ folder"
    return False, "its keys do not say it is a model card"


def discover_cards(folder: Path = CARDS_DIR) -> dict[str, ModelCard]:
    cards = {}
    for path in sorted(folder.glob("*.yaml")):
        card = load_card(path)
        cards.setdefault(card.name, card)
    return cards


def parse_model_args(text: str | None) -> dict[str, Any]:
    """"k=v,k2=v2" -> dict, values parsed as YAML scalars (numbers, booleans, null, strings)."""
    import yaml

    args: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--model-args: expected key=value, got '{part}'")
        args[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return args


def resolve_card(selector: str, model_args: dict[str, Any] | None = None) -> ModelCard:
    """A card path, a card name from baselines/, an adapter name or "module:Class" -> card (args merged)."""
    if selector.endswith((".yaml", ".yml")):
        card = load_card(selector)
    elif ":" in selector:  # a plugin class given as "package.module:Class"
        card = ModelCard(name=selector.rpartition(":")[2], adapter=selector)
    else:
        cards = discover_cards()
        if selector in cards:
            card = cards[selector]
        elif selector in MODELS:
            card = ModelCard(name=selector, adapter=selector)
        else:
            names = sorted(set(cards) | set(MODELS.names()))
            raise BadInput(f"unknown model '{selector}'{did_you_mean(selector, names)}; "
                               f"known: {', '.join(names)} (or pass a card .yaml)")
    if model_args:
        card = ModelCard(**{**card.to_dict(), "args": {**card.args, **model_args}, "path": card.path})
    if card.name == card.adapter.rpartition(":")[2] and "path" in card.args:
        # a bare adapter on a checkpoint folder: name the model after the checkpoint, so that two
        # checkpoints evaluated with the same adapter get their own rows and run directories
        card = ModelCard(**{**card.to_dict(), "name": f"{card.name}@{Path(str(card.args['path'])).name}",
                            "path": card.path})
    return card


def rename(card: ModelCard, name: str) -> ModelCard:
    return ModelCard(**{**card.to_dict(), "name": name, "path": card.path})


def adapter_class(card: ModelCard) -> type[Model]:
    cls = import_target(card.adapter) if ":" in card.adapter else MODELS.get(card.adapter)
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise BadInput(f"adapter '{card.adapter}' ({cls!r}) is not a wmbench.models.Model subclass")
    return cls


def instantiate(card: ModelCard) -> Model:
    from ..core.secrets import redact

    cls = adapter_class(card)
    try:
        return cls(**card.args)
    except BadInput:
        raise
    except TypeError as exc:
        raise BadInput(f"model '{card.name}': bad model args {redact(card.args)}: {exc}") from exc
    except (Exception, SystemExit) as exc:  # a constructor that fails (missing weights, bad path, sys.exit)
        raise BadInput(f"model '{card.name}' (adapter {card.adapter}) could not be built: "
                       f"{type(exc).__name__}: {exc}") from exc
