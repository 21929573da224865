"""Real checkpoints give the right numbers: a GPU smoke test of the adapters (issue 11).

Most valuable first, within a time budget (default 540 s; a check that would not fit is skipped):

1. Chameleon VQ round trip: a photo through transformers' VQ encoder and the project's decoder with
   the original `vqgan.ckpt` (PSNR against the 512 crop the encoder saw), and how many codes agree
   between bf16 and float32 encoding (the adapter encodes in float32, as upstream).
2. Janus: the prompt ids and the pad id on the real tokenizer (tokenizer files only).
3. Qwen2.5-VL `action_logprob`: a mixed-length batch equals per-sample scores; the true action
   outscores another pair's on Aurora pairs.
4. "Change nothing" on one non-square frame for AURORA, Janus, Chameleon and Emu3: the output is
   aligned with the source (phase correlation shift, PSNR).
5. Emu3 peak GPU memory at batch 2 with guidance.

Weights come from the hub cache (never downloaded: `local_files_only`) or the paths given; whatever
has no weights or needs a GPU that is absent is skipped with the reason. Exit 0 unless a check that
ran failed.

    python benchmarks/gpu_smoke.py [--budget 540] [--aurora-root DIR] [--chameleon PATH --vqgan FILE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CARDS = {"chameleon": "anole-7b", "janus": "janus-pro-7b", "emu3": "emu3-gen", "aurora": "aurora", "qwen": "qwen2.5-vl-7b"}
RESULTS: list[tuple[str, str, str]] = []


class Skip(Exception):
    pass


def report(name: str, status: str, detail: str) -> None:
    RESULTS.append((name, status, detail))
    print(f"[{status}] {name}: {detail}", flush=True)


def card_arg(key: str, arg: str):
    from wmbench.models import resolve_card

    return resolve_card(CARDS[key]).args.get(arg)


def local(spec: str | None, what: str) -> str:
    """A local folder or file for `spec` (a path, a hub id, or `<hub id>:<file>`), from the hub cache only."""
    if not spec:
        raise Skip(f"no {what} given")
    if Path(spec).expanduser().exists():
        return str(Path(spec).expanduser())
    try:
        from huggingface_hub import hf_hub_download, snapshot_download

        repo, _, filename = spec.partition(":")
        if filename:
            return hf_hub_download(repo, filename, local_files_only=True)
        return snapshot_download(spec, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - not in the cache, in whatever way
        raise Skip(f"no weights for {what} ({spec}) in the hub cache ({type(exc).__name__}); pass a local path") from None


def need_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        raise Skip("no GPU (torch.cuda.is_available() is False)")


def aurora_pairs(root: Path | None, limit: int) -> list[tuple[np.ndarray, np.ndarray, str]]:
    from PIL import Image

    candidates = [root] if root else []
    candidates += [Path(os.environ.get("WMBENCH_DATA_DIR", "~/.cache/wmbench/data")).expanduser() / "aurora-bench",
                   ROOT.parent / "shared/data/aurora-bench-sample", ROOT / "shared/data/aurora-bench-sample"]
    for folder in candidates:
        if folder and (folder / "test.json").is_file():
            entries = [e for e in json.loads((folder / "test.json").read_text()) if e.get("output")][:limit]
            load = lambda rel: np.asarray(Image.open(folder / rel).convert("RGB"))  # noqa: E731
            return [(load(e["input"]), load(e["output"]), e.get("instruction") or e.get("prompt")) for e in entries]
    raise Skip("no Aurora-Bench test.json (--aurora-root, $WMBENCH_DATA_DIR/aurora-bench or ../shared/data)")


def photo(args) -> np.ndarray:
    try:
        return aurora_pairs(args.aurora_root, 1)[0][0]
    except Skip:
        y, x = np.mgrid[0:540, 0:960] / 960.0  # no photo here: a smooth synthetic frame
        return np.clip(np.stack([128 + 100 * np.sin(9 * x), 128 + 90 * np.cos(11 * y), 255 * x * y], -1), 0, 255).astype(np.uint8)


def non_square(image: np.ndarray) -> np.ndarray:
    """The centre 16:9 band of `image` (a non-square frame whatever the photo)."""
    h, w = image.shape[:2]
    band = min(h, int(w * 9 / 16))
    return np.ascontiguousarray(image[(h - band) // 2:(h - band) // 2 + band])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# -- the checks -------------------------------------------------------------------------------------

def chameleon_vq(args) -> None:
    """1. The VQ round trip without the language model: encoder from the checkpoint, decoder from vqgan.ckpt."""
    import torch
    from safetensors import safe_open
    from transformers import ChameleonConfig, ChameleonImageProcessor
    from transformers.models.chameleon.modeling_chameleon import ChameleonVQVAE

    from wmbench.models import _hf
    from wmbench.models.chameleon_vq import _decoder_shards, build_decoder, load_decoder_state

    path = local(args.chameleon or card_arg("chameleon", "path"), "Chameleon / Anole (transformers format)")
    vqgan = local(args.vqgan or card_arg("chameleon", "vq_decoder"), "the VQGAN checkpoint (vqgan.ckpt)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = ChameleonConfig.from_pretrained(path)
    vq = ChameleonVQVAE(config.vq_config)
    index_file = Path(path) / "model.safetensors.index.json"
    names = (sorted({f for k, f in json.loads(index_file.read_text())["weight_map"].items() if k.startswith("model.vqmodel.")})
             if index_file.is_file() else [f.name for f in Path(path).glob("*.safetensors")])
    state = {}
    for name in names:
        with safe_open(str(Path(path) / name), framework="pt") as f:
            state.update({k[len("model.vqmodel."):]: f.get_tensor(k) for k in f.keys() if k.startswith("model.vqmodel.")})
    missing, _ = vq.load_state_dict(state, strict=False)
    if [m for m in missing if not m.startswith("decoder.")]:
        raise RuntimeError(f"VQ encoder weights missing: {missing[:3]}")
    decoder = build_decoder(vq.config)
    missing, unexpected = decoder.load_state_dict(load_decoder_state(path, vqgan), strict=False)
    if missing or unexpected:
        report("chameleon_vq", "FAIL", f"decoder weights do not fit: missing {missing[:3]} unexpected {unexpected[:3]}")
        return
    vq, decoder = vq.to(device).eval(), decoder.to(device).eval()
    processor = ChameleonImageProcessor.from_pretrained(path)
    image = photo(args)
    pixels = processor(images=[_hf.to_pil(image)], return_tensors="pt")["pixel_values"].to(device)
    seen = _hf.tensor_to_uint8(pixels.float(), (-1.0, 1.0))[0]
    with torch.inference_mode():
        codes = vq.encode(pixels.float()).image_tokens.view(1, -1)
        codes_bf16 = vq.to(torch.bfloat16).encode(pixels.to(torch.bfloat16)).image_tokens.view(1, -1)
        vq.float()
        side = int(round(codes.shape[1] ** 0.5))
        latents = vq.quantize.embedding(codes).view(1, side, side, -1).permute(0, 3, 1, 2)
        decoded = _hf.tensor_to_uint8(decoder(vq.post_quant_conv(latents)), (-1.0, 1.0))[0]
    agree = float((codes == codes_bf16).float().mean())
    value = psnr(decoded, seen)
    shards = [p.name for p in _decoder_shards(path)] if not args.vqgan else []
    report("chameleon_vq", "PASS" if value > 20 else "FAIL",
           f"PSNR {value:.1f} dB (decode(encode(x)) vs the 512 crop, float32); bf16 codes equal to float32: "
           f"{100 * agree:.1f}% of {codes.shape[1]}; checkpoint shards with decoder keys: {shards or 'n/a'}")


def janus_ids(args) -> None:
    """2. Prompt and pad ids on the real tokenizer files (no weights needed)."""
    from transformers import AutoProcessor, GenerationConfig

    from wmbench.models.unified import JANUS_PAD, JanusWorldModel

    path = local(args.janus or card_arg("janus", "path"), "Janus-Pro (transformers format)")
    model = JanusWorldModel(path=path)
    model.processor = AutoProcessor.from_pretrained(path)
    tok = model.processor.tokenizer
    prompt = model._prompt("move the cup to the left") + model.processor.image_start_token
    ids = tok(prompt)["input_ids"]
    pad = tok.convert_tokens_to_ids(JANUS_PAD) if JANUS_PAD in tok.get_vocab() else None
    generation_pad = GenerationConfig.from_pretrained(path).pad_token_id
    print(f"    prompt: {prompt!r}\n    ids: {ids}\n    tokens: {tok.convert_ids_to_tokens(ids)}")
    print(f"    <｜▁pad▁｜> id {pad}; generation_config.pad_token_id {generation_pad}; tokenizer.pad_token_id "
          f"{tok.pad_token_id}; bos {tok.bos_token_id}; <begin_of_image> {tok.convert_tokens_to_ids('<begin_of_image>')}")
    ok = pad is not None and ids[0] == tok.bos_token_id and ids[-1] == tok.convert_tokens_to_ids("<begin_of_image>")
    ok &= generation_pad in (None, pad)
    report("janus_ids", "PASS" if ok else "FAIL", f"pad {pad} (tokenizer's {tok.pad_token_id}), BOS first, BOI last: {ok}")


def qwen_logprob(args) -> None:
    """3. Batched scores equal per-sample scores; the true action beats another pair's."""
    need_gpu()
    from wmbench.core.types import Batch
    from wmbench.models.hf_vlm import HFVisionLanguageModel

    path = local(args.qwen or card_arg("qwen", "path"), "Qwen2.5-VL-7B-Instruct")
    pairs = aurora_pairs(args.aurora_root, 10)
    model = HFVisionLanguageModel(path=path, max_batch=8)
    prompt = "What action happened between the two images? Answer with the action."
    batch = Batch(sample_ids=[str(i) for i in range(len(pairs))], sources=[p[0] for p in pairs],
                  targets=[p[1] for p in pairs], prompts=[prompt] * len(pairs))
    actions = [p[2] for p in pairs]
    together = model.action_logprob(batch, actions)
    alone = [model.action_logprob(Batch(sample_ids=[b], sources=[s], targets=[t], prompts=[prompt]), [a])[0]
             for b, s, t, a in zip(batch.sample_ids, batch.sources, batch.targets, actions)]
    gap = max(abs(x - y) for x, y in zip(together, alone))
    shuffled = model.action_logprob(batch, actions[1:] + actions[:1])
    wins = sum(t > s for t, s in zip(together, shuffled))
    ok = gap < 0.05 * max(1.0, max(abs(v) for v in alone)) and wins >= 0.7 * len(pairs)
    report("qwen_logprob", "PASS" if ok else "FAIL",
           f"{len(pairs)} Aurora pairs; max |batched - alone| {gap:.3f} nats; true action beats another pair's "
           f"in {wins}/{len(pairs)}")
    del model


def change_nothing(args, key: str, factory) -> None:
    """4. "Change nothing" on a 16:9 frame: the output lines up with the source."""
    need_gpu()
    import torch
    from skimage.registration import phase_cross_correlation

    from wmbench.core.types import Batch
    from wmbench.models.base import details_of

    source = non_square(photo(args))
    model = factory()
    start = time.monotonic()
    out = model.predict_next(Batch(sample_ids=["s"], sources=[source], prompts=["Change nothing."],
                                   actions=["Change nothing."]))[0][0]
    gray = lambda a: a.astype(float).mean(-1)  # noqa: E731
    shift, _, _ = phase_cross_correlation(gray(source), gray(out), upsample_factor=4)
    tolerance = 0.02 * max(source.shape[:2])
    ok = out.shape == source.shape and float(np.abs(shift).max()) <= tolerance
    report(f"change_nothing_{key}", "PASS" if ok else "FAIL",
           f"{source.shape[1]}x{source.shape[0]} frame, shift {shift.round(1).tolist()} px (tolerance {tolerance:.0f}), "
           f"PSNR {psnr(out, source):.1f} dB, geometry {details_of(out).get('geometry')}, {time.monotonic() - start:.0f} s")
    del model
    torch.cuda.empty_cache()


def emu3_memory(args) -> None:
    """5. Peak GPU memory of Emu3 at batch 2 with guidance (at --emu3-resolution)."""
    need_gpu()
    import torch

    from wmbench.core.types import Batch
    from wmbench.models.unified import Emu3WorldModel

    path = local(args.emu3 or card_arg("emu3", "path"), "Emu3-Gen (transformers format)")
    model = Emu3WorldModel(path=path, resolution=args.emu3_resolution, max_batch=2)
    model._load()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.max_memory_allocated()
    frame = non_square(photo(args))
    start = time.monotonic()
    model.predict_next(Batch(sample_ids=["a", "b"], sources=[frame, frame], prompts=["p"] * 2, actions=["push it left"] * 2))
    peak = torch.cuda.max_memory_allocated()
    report("emu3_memory", "PASS", f"batch 2, guidance {model.guidance}, resolution {args.emu3_resolution} "
           f"(grid {model.grid}): peak {peak / 2**30:.1f} GiB ({(peak - base) / 2**30:.1f} GiB above the weights), "
           f"{time.monotonic() - start:.0f} s")


def factories(args):
    from wmbench.models.editors import InstructPix2PixEditor
    from wmbench.models.unified import ChameleonWorldModel, Emu3WorldModel, JanusWorldModel

    return {
        "aurora": lambda: InstructPix2PixEditor(path=local(args.aurora or card_arg("aurora", "path"), "AURORA")),
        "janus": lambda: JanusWorldModel(path=local(args.janus or card_arg("janus", "path"), "Janus-Pro")),
        "chameleon": lambda: ChameleonWorldModel(
            path=local(args.chameleon or card_arg("chameleon", "path"), "Chameleon / Anole"),
            vq_decoder=local(args.vqgan or card_arg("chameleon", "vq_decoder"), "vqgan.ckpt")),
        "emu3": lambda: Emu3WorldModel(path=local(args.emu3 or card_arg("emu3", "path"), "Emu3-Gen"),
                                       resolution=args.emu3_resolution),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for all checks (default 540)")
    parser.add_argument("--aurora-root", type=Path, default=None)
    for name in ("chameleon", "vqgan", "janus", "emu3", "aurora", "qwen"):
        parser.add_argument(f"--{name}", default=None, help=f"local path or hub id (default: the {name} card's)")
    parser.add_argument("--emu3-resolution", type=int, default=384, help="Emu3 frame side in pixels (card: 720)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download: weights are used only when present
    import torch

    print(f"gpu_smoke: torch {torch.__version__}, CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}")
    deadline = time.monotonic() + args.budget
    makers = factories(args)
    checks = [("chameleon_vq", 60, lambda: chameleon_vq(args)), ("janus_ids", 10, lambda: janus_ids(args)),
              ("qwen_logprob", 120, lambda: qwen_logprob(args))]
    checks += [(f"change_nothing_{k}", 90, (lambda k=k: change_nothing(args, k, makers[k])))
               for k in ("aurora", "janus", "chameleon", "emu3")]
    checks += [("emu3_memory", 150, lambda: emu3_memory(args))]
    for name, needs, run in checks:
        if time.monotonic() + needs > deadline:
            report(name, "SKIP", f"time budget: {deadline - time.monotonic():.0f} s left, needs about {needs} s")
            continue
        try:
            run()
        except Skip as why:
            report(name, "SKIP", str(why))
        except Exception as exc:  # noqa: BLE001 - a check that breaks is a failed check, the others go on
            report(name, "FAIL", f"{type(exc).__name__}: {str(exc)[:300]}")
    counts = {s: sum(r[1] == s for r in RESULTS) for s in ("PASS", "FAIL", "SKIP")}
    print(f"gpu_smoke: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
