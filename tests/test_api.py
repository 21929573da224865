"""The Python API: `wmbench.evaluate` with names, cards and in-process `Model` instances, typed
results, `rescore`, and the contracts it enforces (no peeking, declared capabilities, isolated
metric failures)."""

from __future__ import annotations

import numpy as np
import pytest

import wmbench
from wmbench.metrics.base import PairedImageMetric


class ShiftRight(wmbench.Model):
    """An FDP model defined in the caller's process: shifts the source 6 px to the right."""

    def __init__(self):
        super().__init__()
        self.seen: list[wmbench.TaskInfo] = []

    def prepare(self, task):
        self.seen.append(task)

    def predict_next(self, batch, n=1):
        assert batch.targets is None  # the answer never reaches a model under test
        return [[np.roll(source, 6, axis=1)] for source in batch.sources]


class Echo(wmbench.Model):
    """An IDP model that records what it was told before the first batch."""

    def __init__(self):
        super().__init__()
        self.seen: list[wmbench.TaskInfo] = []

    def prepare(self, task):
        self.seen.append(task)

    def infer_action(self, batch):
        assert batch.actions is None
        assert all(m == {} for m in batch.meta)  # a reader's meta can hold the label
        return ["move the square right"] * len(batch)


def test_evaluate_by_name_returns_typed_results(workspace):
    result = wmbench.evaluate("pairs_fdp", "copy", output=workspace / "runs" / "copy", progress=False)
    change = result.metrics["pairs_fdp"]["change_iou"]
    assert isinstance(change, wmbench.MetricResult)
    assert change.mean == 0.0 and change.n == 12 and change.available and change.higher_is_better
    assert result.counts["pairs_fdp"] == {"total": 12, "scored": 12, "failed": 0, "skipped": 0, "pending": 0}
    assert result.failed == 0 and result.model == "copy"
    assert result.results["tasks"]["pairs_fdp"]["metrics"]["l1"]["mean"] == result.metrics["pairs_fdp"]["l1"].mean
    frame = result.samples
    assert len(frame) == 12 and set(frame["status"]) == {"done"}
    assert np.allclose(frame["change_iou"], 0.0)


def test_a_model_instance_from_the_calling_process(workspace):
    model = ShiftRight()
    result = wmbench.evaluate(["pairs_fdp"], model, output=workspace / "runs" / "mine", progress=False)
    assert result.model == "ShiftRight" and result.counts["pairs_fdp"]["scored"] == 12
    card = result.results["model"]["card"]
    assert card["adapter"].endswith("test_api:ShiftRight")
    # FDP instructions are model inputs, so prepare() sees them, but no targets
    (info,) = model.seen
    assert info.kind == "fdp" and len(info.sample_ids) == 12 and info.actions is not None
    # the right-moving samples are predicted better than the others
    frame = result.samples.set_index("sample_id")
    right = [f"pair{i:03d}" for i in range(0, 12, 4)]
    assert frame.loc[right, "l1"].mean() < frame.drop(index=right)["l1"].mean()


def test_prepare_never_sees_the_idp_answers(workspace):
    model = Echo()
    wmbench.evaluate("pairs_idp", model, output=workspace / "runs" / "echo", progress=False)
    (info,) = model.seen
    assert info.kind == "idp" and info.actions is None


def test_a_model_without_the_capability_is_refused_before_any_sample(workspace):
    with pytest.raises(wmbench.BadInput, match="cannot run task 'pairs_idp'.*infer_action"):
        wmbench.evaluate("pairs_idp", ShiftRight(), output=workspace / "runs" / "x", data_dir=workspace / "none")
    assert not (workspace / "runs" / "x").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"tasks": "no_such_task"}, "unknown task or suite 'no_such_task'"),
    ({"limit": 0}, "--limit must be >= 1"),
    ({"model": 42}, "model must be a name"),
])
def test_bad_input_raises_bad_input(workspace, kwargs, message):
    args = {"tasks": "pairs_fdp", "model": "copy", **kwargs}
    with pytest.raises(wmbench.BadInput, match=message):
        wmbench.evaluate(args.pop("tasks"), args.pop("model"), output=workspace / "runs" / "bad", **args)


def test_rescore_recomputes_without_the_model(workspace):
    run_dir = workspace / "runs" / "blur"
    first = wmbench.evaluate("pairs_fdp", "blur", output=run_dir, progress=False)
    again = wmbench.rescore(run_dir, progress=False)
    (outcome,) = again.outcomes
    assert outcome.new == 0 and outcome.rescored == 12
    assert again.metrics["pairs_fdp"]["ssim"].mean == pytest.approx(first.metrics["pairs_fdp"]["ssim"].mean)
    with pytest.raises(wmbench.BadInput, match="not a run directory"):
        wmbench.rescore(workspace / "runs" / "nothing")


@wmbench.register_metric()
class FragileL1(PairedImageMetric):
    """Raises on batches holding the sample whose source has a given first pixel value."""

    name = "fragile_l1"
    description = "L1 that raises on one chosen sample (tests per-sample isolation of metric failures)"
    higher_is_better = False
    uint8_inputs = True

    def compare(self, predictions, targets):
        if any(int(p[0, 0, 0]) == POISON for p in predictions):
            raise ValueError("cannot score this sample")
        return np.abs(predictions.astype(float) - targets).mean(axis=(1, 2, 3))


POISON = -1


@pytest.mark.parametrize("batch_size", [1, 4, 12])
def test_a_metric_failing_on_one_sample_fails_only_that_sample(workspace, batch_size):
    global POISON
    from conftest import square_frame

    POISON = int(square_frame(10, 10, 32, seed=5)[0, 0, 0])  # pair005's first pixel
    task = workspace / "tasks" / "pairs_fragile.yaml"
    task.write_text((workspace / "tasks" / "pairs_fdp.yaml").read_text()
                    .replace("pairs_fdp", "pairs_fragile").replace("change_iou", "fragile_l1"))
    result = wmbench.evaluate(str(task), "copy", output=workspace / "runs" / f"b{batch_size}",
                              batch_size=batch_size, progress=False)
    fragile = result.metrics["pairs_fragile"]["fragile_l1"]
    poisoned = sum(int(square_frame(10 + i % 3, 10 + i % 5, 32, seed=i)[0, 0, 0]) == POISON for i in range(12))
    assert fragile.n_failed == poisoned >= 1 and fragile.n == 12 - poisoned
    assert result.metrics["pairs_fragile"]["l1"].n == 12  # the sample's other scores stand


class FramedShift(ShiftRight):
    """Returns its frames with details, as the built-in image adapters record their geometry."""

    def predict_next(self, batch, n=1):
        from wmbench.models.base import Frame

        return [[Frame(p[0], {"geometry": {"filled_from_source": 0.25}})] for p in super().predict_next(batch, n)]


def test_prediction_details_are_recorded_with_the_sample(workspace):
    wmbench.evaluate("pairs_fdp", FramedShift(), output=workspace / "runs" / "framed", progress=False)
    samples = wmbench.read_run(workspace / "runs" / "framed").samples
    assert {s.sample["model_details"]["geometry"]["filled_from_source"] for s in samples} == {0.25}


def test_a_task_spec_built_in_python_is_checked_as_a_yaml_file_is(workspace):
    spec = wmbench.TaskSpec(name="py_fdp", kind="fdp", dataset=wmbench.DatasetSpec(format="jsonl", subfolder="pairs"),
                            frames=wmbench.FrameSelection(mode="first_last"), metrics=["l1", "exact_match"])
    with pytest.raises(wmbench.BadInput, match="TaskSpec 'py_fdp'.*metrics\\[1\\].*scores idp predictions"):
        wmbench.evaluate(spec, "copy", output=workspace / "runs" / "py")
    assert not (workspace / "runs" / "py").exists()
