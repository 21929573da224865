"""`wmbench run` on the real Aurora-Bench sample (ag + kubric) in ../shared, when present:
copy and oracle end to end, and every available edit-aware metric ranks oracle above copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wmbench.cli import main

SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "aurora-bench-sample"
pytestmark = pytest.mark.skipif(not SHARED_SAMPLE.is_dir(), reason="../shared/data/aurora-bench-sample is not present")


def test_copy_and_oracle_on_real_aurora_images(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "aurora-bench").symlink_to(SHARED_SAMPLE)  # read in place, never copied
    results = {}
    for model in ("copy", "oracle"):
        out = tmp_path / model
        assert main(["run", "--no-progress", "--tasks", "aurora_fdp", "--model", model, "--limit", "40",
                     "--data-dir", str(data), "--output", str(out)]) == 0
        results[model] = json.loads((out / "results.json").read_text())["tasks"]["aurora_fdp"]
    assert results["copy"]["counts"] == {"total": 40, "scored": 40, "failed": 0, "skipped": 0, "pending": 0}
    edit_aware = {k: m for k, m in results["oracle"]["metrics"].items() if m["edit_aware"] and m["available"]}
    assert {"change_iou", "change_iou_weighted"} <= set(edit_aware)
    for key, oracle in edit_aware.items():
        copy = results["copy"]["metrics"][key]
        better = oracle["mean"] > copy["mean"] if oracle["higher_is_better"] else oracle["mean"] < copy["mean"]
        assert better, f"{key}: oracle {oracle['mean']} vs copy {copy['mean']}"
    unavailable = [m for m in results["copy"]["metrics"].values() if not m["available"]]
    assert all(m["mean"] is None and m["reason"] for m in unavailable)  # N/A with a reason, never a number
