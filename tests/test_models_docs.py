"""The adapter example in docs/adding-a-model.md runs as documented."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from wmbench.models import ModelCard, instantiate
from wmbench.core.registry import Registry
from wmbench.core.types import Batch

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-model.md"


def test_example_adapter_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "no python example in the doc"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 30  # "about 20 lines"
    (tmp_path / "shift_plugin.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    # the same lazy "module:Class" target an entry point declares
    registry = Registry("model adapter")
    registry.register("shift", "shift_plugin:ShiftModel")
    cls = registry.get("shift")
    assert cls.capabilities() == ("predict_next",)
    from wmbench.models import MODELS

    monkeypatch.setitem(MODELS._targets, "shift", "shift_plugin:ShiftModel")
    model = instantiate(ModelCard(name="shift-8", adapter="shift", args={"pixels": 8}))
    source = np.arange(4 * 16 * 3, dtype=np.uint8).reshape(4, 16, 3)
    batch = Batch(sample_ids=["a", "b"], sources=[source, source], prompts=["", ""],
                  actions=["move right", "move left"])
    out = model.predict_next(batch, n=2)
    assert np.array_equal(out[0][0], np.roll(source, 8, axis=1))
    assert np.array_equal(out[1][1], np.roll(source, -8, axis=1))
    assert model.fingerprint() == {"pixels": 8}
    sys.modules.pop("shift_plugin", None)


def test_model_modules_import_without_torch():
    import subprocess

    code = ("import sys; import wmbench.models.hf_vlm, wmbench.models.unified, wmbench.models.editors, "
            "wmbench.models.api, wmbench.models.verified, wmbench.models.chameleon_vq; "
            "heavy = [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
