"""Every registered metric follows the protocol the runner relies on."""

from __future__ import annotations

import json

import numpy as np

from wmbench.metrics import METRICS, Metric, MetricInput


def test_every_metric_declares_itself():
    for name in METRICS.names():
        cls = METRICS.get(name)
        assert issubclass(cls, Metric) and cls.name == name
        info = cls.info()
        assert info["kind"] in ("fdp", "idp", "probe") and isinstance(info["higher_is_better"], bool)
        assert info["description"] and set(info["needs"]) <= {"source", "target", "action", "weights"}
        metric = cls()  # every metric can be built without options (for `wmbench list metrics`)
        ok, reason = metric.available()
        assert isinstance(ok, bool) and (ok or reason)
        described = json.loads(json.dumps(metric.describe()))
        assert described["name"] == name and isinstance(described["weights"], list)
        for record in metric.weights_info():
            assert {"id", "sha256", "path"} <= set(record)


def test_weight_free_fdp_metrics_score_nan_without_target_and_keep_order():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    batch = MetricInput("fdp", [a, b, a], [a, a, b], [None, b, a], ["x"] * 3)
    for name in METRICS.names():
        metric = METRICS.get(name)()
        if metric.kind != "fdp" or not metric.available()[0] or "weights" in metric.needs or metric.set_level:
            continue
        scores = metric.score(batch)
        assert scores.shape == (3,), name
        if "target" in metric.needs:
            assert np.isnan(scores[0]), name
