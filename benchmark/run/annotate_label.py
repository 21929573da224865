"""Labelling for `wmbench annotate`: each candidate pair gets the IDP model's label
(`infer_action`) and the model's confidence in it (`action_logprob`), committed batch by batch to
the run store (claim, call, commit), so a killed command resumes and processes can share a folder.

The model sees the two frames and the prompt only: `Batch.actions`, `action_vectors` are None and
`meta` is empty, so neither the reader's action text nor anything derived from it reaches it.
A pair fails alone (stage `data`: frames that do not decode; `model`: the model raised on it;
`output`: an empty label or a non-finite score); the others of its batch go on.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, SampleError
from ..core.types import Batch, Transition
from ..core.yamlspec import content_hash
from ..log.records import Prediction, SampleRecord, ScoreRow
from ..log.store import RunStore
from ..models import ModelCard, adapter_class, instantiate
from ..models.base import Model, TaskInfo
from .annotate_files import SCORE_METRIC, TASK
from .calls import call_isolated, seed_everything
from .kinds import fit

SCORE_VERSION = "1"


@dataclass
class Pair:
    position: int
    transition: Transition
    source: Any
    target: Any


def refuse_other_settings(out: Path, settings: dict[str, Any], identity: dict[str, Any]) -> None:
    """Refuse an output folder that holds a run, or an annotation made with other settings (model,
    data, frames, prompt, seed), naming what differs. Opens the store only where there is one."""
    if not (out / "store.sqlite").is_file():
        return
    store = RunStore(out)
    try:
        stored = store.stored_tasks()
        if stored and TASK not in stored:
            raise BadInput(f"--output {out} holds a wmbench run (tasks {', '.join(stored)}), not an annotation; "
                           "choose another folder")
        if TASK not in stored or not store.statuses(TASK):
            return  # bound by a command that stored nothing: the new settings replace it
        spec, model = store.task_binding(TASK)
    finally:
        store.close()
    differ = [f"{key} (stored {spec.get(key)!r}, now {value!r})" for key, value in settings.items()
              if json.loads(json.dumps(value, default=str)) != spec.get(key)]
    if model != json.loads(json.dumps(identity, default=str)):
        differ.insert(0, f"model (stored {model['card']}, now {identity['card']})")
    if differ:
        raise BadInput(f"--output {out} already holds an annotation made with other settings: {'; '.join(differ)}. "
                       f"Use another --output, or delete {out}")


class Labeller:
    """Labels and scores the candidates not stored yet, batch by batch: claim, call, commit.
    `refuse_other_settings` is called first (before the data is read)."""

    def __init__(self, card: ModelCard, instance: Model | None, out: Path, transitions: list[Transition],
                 settings: dict[str, Any], identity: dict[str, Any], batch_size: int, device: str | None,
                 progress: bool):
        self.card, self.model, self.out = card, instance, out
        self.transitions, self.settings, self.identity = transitions, settings, identity
        self.batch_size, self.device, self.progress = batch_size, device, progress
        self.store = RunStore(out)
        self._bound = False
        try:
            self.store.bind_model(identity)
            self.store.bind_task(TASK, content_hash(settings), settings, identity,
                                 [t.sample_id for t in transitions])
            self.store.set_meta_once("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        except BaseException:
            self.store.close()
            raise

    def _loaded_model(self) -> Model:
        if self.model is None:
            card = self.card
            if self.device is not None and "device" in inspect.signature(adapter_class(card).__init__).parameters:
                card = ModelCard(**{**card.to_dict(), "args": {**card.args, "device": self.device}})
            self.model = instantiate(card)
        if not self._bound:
            from ..core.secrets import redact

            self.store.bind_model_fingerprint(redact(self.model.fingerprint()))
            self._bound = True
        return self.model

    def label(self) -> int:
        """Label every candidate not stored yet; returns how many this call labelled (or failed)."""
        from tqdm.auto import tqdm

        selected = [t.sample_id for t in self.transitions]
        todo = set(self.store.plan(TASK, selected, {}).todo)
        items = [(i, t) for i, t in enumerate(self.transitions) if t.sample_id in todo]
        bar = tqdm(total=len(selected), initial=len(selected) - len(items), disable=not self.progress,
                   desc=f"annotate | {self.card.name}", unit="pair", file=sys.stderr, dynamic_ncols=True)
        done = elsewhere = 0
        try:
            prepared = False
            for start in range(0, len(items), self.batch_size):
                chunk = items[start:start + self.batch_size]
                claimed = set(self.store.claim(TASK, [t.sample_id for _, t in chunk]))
                mine = [(i, t) for i, t in chunk if t.sample_id in claimed]
                elsewhere += len(chunk) - len(mine)
                if mine:
                    if not prepared:
                        self._loaded_model().prepare(TaskInfo(name=TASK, kind="idp", seed=self.settings["seed"],
                                                              sample_ids=tuple(selected)))
                        prepared = True
                    self._batch(mine)
                    done += len(mine)
                bar.update(len(chunk))
        finally:
            bar.close()
        if elsewhere:
            print(f"wmbench: {elsewhere} pair(s) were labelled or claimed by another process on {self.out}",
                  file=sys.stderr)
        if done:
            from ..log.results import provenance

            self.store.set_meta("provenance", provenance())
        return done

    def _batch(self, chunk: list[tuple[int, Transition]]) -> None:
        records: dict[str, SampleRecord] = {}
        pairs: list[Pair] = []
        for position, t in chunk:
            info = t.describe()
            record = records[t.sample_id] = SampleRecord(TASK, t.sample_id, position, "done", info)
            if t.target is None:
                record.status, record.error = "skipped", "no target frame: a pair needs two frames"
                continue
            try:
                source = t.source.load()
                target = fit(t.target.load(), source.shape, info, "target_resized_from")
            except SampleError as exc:
                _fail(record, "data", str(exc))
                continue
            pairs.append(Pair(position, t, source, target))
        labels = self._each(pairs, records, lambda group: self.model.infer_action(self._view(group)), _check_label)
        pairs = [p for p in pairs if p.transition.sample_id in labels]
        for pair in pairs:  # kept also when the score fails: the manifest shows what the model said
            records[pair.transition.sample_id].prediction = Prediction(text=labels[pair.transition.sample_id])
        scores = self._each(pairs, records, lambda group: self.model.action_logprob(
            self._view(group), [labels[p.transition.sample_id] for p in group]), _check_score)
        rows = [ScoreRow(TASK, sid, SCORE_METRIC, SCORE_VERSION, score, None) for sid, score in scores.items()]
        self.store.commit(list(records.values()), rows)

    def _view(self, group: list[Pair]) -> Batch:
        """What the model sees: the two frames and the prompt; never the reader's action or meta."""
        ids = [p.transition.sample_id for p in group]
        seed_everything(self.settings["seed"], ids)
        return Batch(sample_ids=ids, sources=[p.source for p in group], targets=[p.target for p in group],
                     prompts=[self.settings["prompt"]] * len(group), actions=None, action_vectors=None,
                     meta=[{} for _ in group], task=TASK, seed=self.settings["seed"])

    def _each(self, pairs: list[Pair], records: dict[str, SampleRecord], call, check) -> dict[str, Any]:
        """`call` on the group, or pair by pair when it raises (see `calls.call_isolated`)."""
        if not pairs:
            return {}
        return call_isolated(pairs, call, check, lambda pair, stage, why: _fail(records[pair.transition.sample_id],
                                                                                stage, why),
                             key=lambda pair: pair.transition.sample_id)


def _check_label(value: Any) -> str:
    if not isinstance(value, str):
        raise SampleError(f"infer_action must return a str per pair, got {type(value).__name__}")
    if not value.strip():
        raise SampleError("infer_action returned an empty label: nothing to train on")
    return value.strip()


def _check_score(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise SampleError(f"action_logprob must return a number per pair, got {type(value).__name__}")
    score = float(value)
    if not math.isfinite(score):
        raise SampleError(f"action_logprob returned a non-finite score {score}")
    return score


def _fail(record: SampleRecord, stage: str, why: str) -> None:
    record.status, record.stage, record.error = "failed", stage, why
