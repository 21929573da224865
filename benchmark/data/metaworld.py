"""Built-in Meta-World data: scripted expert rollouts written as a LeRobot v3.0 dataset, and its reader.

`generate(root, options)` runs Meta-World's expert policies (metaworld.policies) on seeded goal
variations (metaworld.MT1(env_name, seed)), renders one camera headless and writes, under `root`,
a LeRobot v3.0 dataset (see lerobot_write.py) with:
- observation.images.<camera>: the frames, PNG bytes in the data parquet (LeRobot image feature);
  frames_as="video" writes them as one AV1 (or h264) mp4 with all episodes back to back instead,
- observation.segmentation: uint8 label PNGs, 0 = background/table, 1 = robot, 2 = task objects,
- observation.state: end-effector x, y, z (m, world) and gripper opening (0 closed .. 1 open),
- observation.environment_state: Meta-World's 39-d observation,
- action: the mean of the `frame_skip` expert actions applied after the frame (xyz mocap deltas
  in [-1, 1], 1 = 1 cm per env step, and gripper effort),
- meta/wmbench.json: the generator options, the camera geometry and each episode's env name,
  goal variation and success step.
Only episodes where the expert succeeds are kept (a failed goal variation is skipped).

Options (validated, unknown -> BadInput): tasks (env names, default DEFAULT_TASKS), episodes
(per task, 4), size (px, 128), seed (0), frame_skip (env steps of 12.5 ms per recorded frame, 2:
40 fps, episodes of 25-54 frames, 40 on average), max_frames (per episode, 60; an expert that has
not succeeded by then is dropped), camera ("corner4": arm and objects large in view; any camera of
the Meta-World model), frames_as ("images" | "video"), codec ("av1" | "h264", for video),
segmentation (True; it costs ~15% of the generation CPU time), split ("test"; see `read`).
Segmentation, geometry: labels come from MuJoCo's segmentation rendering (geom/site ids) mapped
through the body tree. Meta-World's corner cameras are mounted upside down; their frames (and
masks) are rotated by 180 degrees so the table is at the bottom.

Default frames_as="images", measured for the default dataset (6 tasks x 4 episodes, 128 px,
959 frames; 2-core machine shared with other jobs, so +-15%):
  images (PNG):  generation 39-44 s, 19.3 MB, read 1.3 ms per transition, lossless
  video (AV1):   generation 36-37 s,  2.3 MB, read 2.2 ms per transition (24 decoding passes:
                 one per episode), 32.8 dB PSNR against the rendered frames (mean abs error 3.3/255)
  video (h264):  generation ~40 s,    1.8 MB, read about as AV1, 31.4 dB PSNR
(benchmarks/bench_lerobot_read.py: list the 106 gap-8 pairs, load source, target and both
segmentation masks, best of 3). Rendering dominates generation (PNG encoding adds ~3 s, AV1 ~1 s);
images read 1.7x faster and the targets carry no codec noise that
pixel metrics would score; the cost is 8x the disk, 19 MB.

`read(root, spec, frames)`: the LeRobot reader plus Meta-World's action text. For each pair
(t, t+k) the motion of the end effector is projected into the camera image (the stored camera
geometry) and described in image terms: "move the arm left and down, close the gripper";
"keep the arm still" below the thresholds. Options: action_text = "motion" (default) |
"instruction" | "both" (instruction + ": " + motion); episodes (indices); tasks (env names).
meta["instruction"] is the task instruction, meta["task"] the env name, meta["motion"] the motion
text. action_vector is the (k, 4) float32 array of the per-frame actions of frames t..t+k-1.
aux["source_segmentation"] / aux["target_segmentation"] are the label images ((H, W, 3) uint8,
the label in every channel). Split: a generated folder holds one split (option `split`: "test",
the default and the metaworld_* tasks' data, or "train" / "unlabelled" for the reference models,
generated from other seeds); the reader refuses any other split. The motion language (81 texts)
is defined in metaworld_motion.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..core.errors import BadInput
from ..core.registry import did_you_mean
from ..core.types import Transition
from .common import IMAGE_OPTIONS, FormatError, check_options, describe_folder
from ..core.frames import FrameSelection
from .metaworld_motion import CameraModel, describe_motion

FORMAT = "metaworld"
DEFAULT_TASKS = ("push-v3", "pick-place-v3", "drawer-open-v3", "button-press-v3", "door-open-v3", "reach-v3")
#: Instructions in the words of the Meta-World paper's task descriptions; other envs get their name.
INSTRUCTIONS = {
    "push-v3": "push the puck to the goal", "pick-place-v3": "pick up the puck and place it at the goal",
    "drawer-open-v3": "open the drawer", "drawer-close-v3": "close the drawer",
    "button-press-v3": "press the button", "button-press-topdown-v3": "press the button from the top",
    "door-open-v3": "open the door", "door-close-v3": "close the door", "reach-v3": "reach the goal position",
    "window-open-v3": "open the window", "window-close-v3": "close the window", "peg-insert-side-v3":
    "insert the peg into the hole", "sweep-into-v3": "sweep the puck into the hole", "basketball-v3":
    "dunk the ball into the basket", "faucet-open-v3": "turn the faucet on", "faucet-close-v3":
    "turn the faucet off", "plate-slide-v3": "slide the plate into the goal", "coffee-button-v3":
    "push the button on the coffee machine", "lever-pull-v3": "pull the lever up",
}
GENERATOR_OPTIONS = {"tasks": list(DEFAULT_TASKS), "episodes": 4, "size": 128, "seed": 0, "frame_skip": 2,
                     "max_frames": 60, "camera": "corner4", "frames_as": "images", "codec": "av1",
                     "segmentation": True, "split": "test"}
#: The splits of the built-in data (wmbench.run.reference): generated from disjoint seeds, each in
#: its own data-dir subfolder. `test` is the evaluation data of the metaworld_* tasks.
SPLITS = ("test", "train", "unlabelled")
#: Generator options a split implies unless given: a small labelled set (6 tasks x 4 = 24 episodes)
#: and an unlabelled one three times larger (72), from seeds the test split (seed 0) does not use.
SPLIT_DEFAULTS = {"train": {"seed": 1, "episodes": 4}, "unlabelled": {"seed": 2, "episodes": 12}}
READ_OPTIONS = {"action_text": "motion", "episodes": None, "tasks": None, **IMAGE_OPTIONS}
ENV_STEP_S = 0.0125  # Meta-World: 5 MuJoCo steps of 2.5 ms per env step (80 Hz)
MAX_ENV_STEPS = 500  # Meta-World's max_path_length
MANIFEST = "meta/wmbench.json"
SEGMENTATION_KEY = "observation.segmentation"


# ----------------------------------------------------------------------------- options

def normalize_options(options: dict | None, check_tasks: bool = True) -> dict:
    """Generator options merged over the defaults and checked; BadInput names a bad one.
    `check_tasks` looks the env names up in Meta-World (imports it, and so MuJoCo)."""
    given = dict(options or {})
    split = given.get("split")
    opts = check_options("metaworld generator", {**SPLIT_DEFAULTS.get(split if isinstance(split, str) else "", {}), **given},
                         GENERATOR_OPTIONS)
    tasks = opts["tasks"]
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    if not isinstance(tasks, (list, tuple)) or not tasks:
        raise BadInput(f"metaworld generator: option 'tasks' must be a non-empty list of env names, got {tasks!r}")
    if check_tasks:
        from . import metaworld_sim

        metaworld_sim.select_gl()  # before metaworld imports mujoco, which fixes the GL backend
        from metaworld.policies import ENV_POLICY_MAP
    for name in tasks if check_tasks else ():
        if name not in ENV_POLICY_MAP:
            hint = did_you_mean(str(name), list(ENV_POLICY_MAP))
            raise BadInput(f"metaworld generator: unknown task {name!r}{hint}; "
                               f"known: {', '.join(sorted(ENV_POLICY_MAP))}")
    if len(set(tasks)) != len(tasks):
        raise BadInput(f"metaworld generator: option 'tasks' lists a task twice: {tasks}")
    opts["tasks"] = list(tasks)
    for key, low in (("episodes", 1), ("size", 32), ("frame_skip", 1), ("max_frames", 2)):
        value = opts[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise BadInput(f"metaworld generator: option '{key}' must be an integer >= {low}, got {value!r}")
    if opts["size"] % 2 or opts["size"] > 1024:
        raise BadInput("metaworld generator: option 'size' must be even and <= 1024 (yuv420p video), "
                           f"got {opts['size']}")
    if opts["max_frames"] * opts["frame_skip"] > MAX_ENV_STEPS:
        raise BadInput(f"metaworld generator: max_frames x frame_skip = {opts['max_frames'] * opts['frame_skip']} "
                           f"env steps; Meta-World episodes end at {MAX_ENV_STEPS}")
    if isinstance(opts["seed"], bool) or not isinstance(opts["seed"], int):
        raise BadInput(f"metaworld generator: option 'seed' must be an integer, got {opts['seed']!r}")
    for key, allowed in (("frames_as", ("video", "images")), ("codec", ("av1", "h264"))):
        if not isinstance(opts[key], str) or opts[key] not in allowed:
            raise BadInput(f"metaworld generator: option '{key}' must be one of {list(allowed)}, got {opts[key]!r}")
    if not isinstance(opts["segmentation"], bool):
        raise BadInput("metaworld generator: option 'segmentation' must be true or false, "
                           f"got {opts['segmentation']!r}")
    if opts["split"] not in SPLITS:
        raise BadInput(f"metaworld generator: option 'split' must be one of {list(SPLITS)}, got {opts['split']!r}")
    if opts["split"] != "test" and opts["seed"] == GENERATOR_OPTIONS["seed"]:
        raise BadInput(f"metaworld generator: split {opts['split']!r} with seed {opts['seed']} would repeat the "
                       "test split's episodes; give another seed")
    if not isinstance(opts["camera"], str):
        raise BadInput(f"metaworld generator: option 'camera' must be a camera name, got {opts['camera']!r}")
    return opts


def instruction(env_name: str) -> str:
    return INSTRUCTIONS.get(env_name) or env_name.removesuffix("-v3").replace("-", " ")


# ----------------------------------------------------------------------------- generate

def generate(root: Path, options: dict | None = None, progress: bool = True) -> None:
    """Write the Meta-World dataset under `root` (atomically: built in a sibling `.partial` folder,
    then renamed, so an interrupted run never leaves a dataset that looks complete)."""
    opts = normalize_options(options)
    root = Path(root)
    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    from . import metaworld_sim

    user_gl = os.environ.get("MUJOCO_GL")
    metaworld_sim.select_gl()
    try:
        _write(partial, opts, progress)
    except _GLFailure as exc:
        shutil.rmtree(partial, ignore_errors=True)
        _generate_in_subprocess(root, opts, progress, exc, user_gl)
        return
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    old = root.with_name(f"{root.name}.old-{os.getpid()}")
    if root.exists():
        root.rename(old)
    partial.rename(root)
    shutil.rmtree(old, ignore_errors=True)


class _GLFailure(Exception):
    """The headless GL context could not be created."""


def _generate_in_subprocess(root: Path, opts: dict, progress: bool, error: Exception, user_gl: str | None) -> None:
    """MuJoCo fixes its GL backend when it is first imported, so another backend needs a fresh process:
    EGL (when mujoco had been imported before MUJOCO_GL was set), then OSMesa; only the user's
    MUJOCO_GL when they set one."""
    import mujoco

    used = getattr(getattr(mujoco, "gl_context", None), "_MUJOCO_GL", None)  # the backend fixed at import
    backends = [user_gl] if user_gl else [b for b in ("egl", "osmesa") if b != used]
    if os.environ.get("WMBENCH_GL_FALLBACK"):
        backends = []  # already the fallback process: report, do not recurse
    errors = [f"MUJOCO_GL={used or '(glfw)'} in this process: {error}"]
    code = ("import json, sys; from pathlib import Path; from wmbench.data.metaworld import generate; "
            "generate(Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] == '1')")
    for backend in backends:
        env = {**os.environ, "MUJOCO_GL": backend, "WMBENCH_GL_FALLBACK": "1"}
        env.pop("PYOPENGL_PLATFORM", None)  # mujoco sets it for egl/osmesa itself
        done = subprocess.run([sys.executable, "-c", code, str(root), json.dumps(opts), "1" if progress else "0"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode == 0:
            return
        errors.append(f"MUJOCO_GL={backend} in a subprocess: {done.stderr.strip()[-600:]}")
    raise BadInput("cannot render Meta-World headless; " + "; ".join(errors) +
                       ". Make EGL available (libEGL, as here) or install libosmesa6 and set MUJOCO_GL=osmesa.")


def _write(out: Path, opts: dict, progress: bool) -> None:
    from . import metaworld_sim
    from .lerobot_write import V3Writer, image_feature

    size, camera_key = opts["size"], f"observation.images.{opts['camera']}"
    video = opts["frames_as"] == "video"
    features = {
        camera_key: image_feature(size, size, 3, video=video),
        "observation.state": {"dtype": "float32", "shape": [4], "names": ["ee_x", "ee_y", "ee_z", "gripper_open"]},
        "observation.environment_state": {"dtype": "float32", "shape": [39], "names": None},
        "action": {"dtype": "float32", "shape": [4], "names": ["dx", "dy", "dz", "grip_effort"]},
    }
    if opts["segmentation"]:
        features[SEGMENTATION_KEY] = image_feature(size, size, 1)
    fps = 1.0 / (ENV_STEP_S * opts["frame_skip"])
    writer = V3Writer(out, fps, features, robot_type="sawyer", codec=opts["codec"],
                      splits={opts["split"]: f"0:{len(opts['tasks']) * opts['episodes']}"})
    bar = _progress(len(opts["tasks"]) * opts["episodes"], progress)
    episodes, camera = [], None
    try:
        for env_name in opts["tasks"]:
            try:
                sim = metaworld_sim.Simulator(env_name, opts["seed"], opts["camera"], size, opts["segmentation"])
            except ValueError as exc:  # unknown camera name
                raise BadInput(f"metaworld generator: option 'camera': {exc}") from None
            except Exception as exc:
                if "gl" in type(exc).__name__.lower() or "egl" in str(exc).lower() or "opengl" in str(exc).lower():
                    raise _GLFailure(f"{type(exc).__name__}: {exc}") from exc
                raise
            camera = sim.camera.geometry
            try:
                episodes += _task_episodes(sim, writer, opts, camera_key, bar)
            finally:
                sim.close()
        writer.close()
    finally:
        bar.close()
    manifest = {"generator": "metaworld", "manifest_version": 1, "options": opts, "camera_key": camera_key,
                "camera": camera, "instructions": {t: instruction(t) for t in opts["tasks"]},
                "episodes": episodes, "versions": _versions()}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _task_episodes(sim, writer, opts: dict, camera_key: str, bar) -> list[dict]:
    from .lerobot_write import png_bytes

    kept, goal = [], 0
    while len(kept) < opts["episodes"]:
        if goal >= sim.goals:
            raise BadInput(f"metaworld generator: the {sim.env_name} expert succeeded on only {len(kept)} of "
                               f"{sim.goals} goal variations within max_frames={opts['max_frames']}")
        ep = sim.rollout(goal, opts["frame_skip"], opts["max_frames"])
        goal += 1
        if ep.success_step is None:
            continue  # the expert failed on this goal variation: its instruction would not describe it
        rgb = np.stack(ep.rgb)
        images = {} if opts["frames_as"] == "video" else {camera_key: [png_bytes(f) for f in rgb]}
        if opts["segmentation"]:
            images[SEGMENTATION_KEY] = [png_bytes(s) for s in ep.seg]
        index = writer.add_episode(
            instruction(sim.env_name),
            {"observation.state": np.stack(ep.state), "observation.environment_state": np.stack(ep.env_state),
             "action": np.stack(ep.action)},
            images=images, videos={camera_key: rgb} if opts["frames_as"] == "video" else None)
        kept.append({"episode_index": index, "env_name": sim.env_name, "goal_index": ep.goal_index,
                     "success_step": ep.success_step, "env_steps": ep.env_steps, "frames": len(ep.state)})
        bar.update(1)
    return kept


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="metaworld episodes", unit="ep", disable=not enabled)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("metaworld", "mujoco", "av", "pyarrow"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


# ----------------------------------------------------------------------------- read

def load_manifest(root: Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FormatError(FORMAT, Path(root), f"{MANIFEST} (written by `wmbench data make metaworld`)",
                          describe_folder(Path(root)))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        CameraModel(manifest["camera"])
        return manifest
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(FORMAT, Path(root), f"{MANIFEST} with options, camera and episodes",
                          f"{type(exc).__name__}: {exc}") from None


def read(root: Path, spec: Any, frames: FrameSelection) -> Iterator[Transition]:
    from . import lerobot

    options = check_options(FORMAT, dict(spec.options), READ_OPTIONS)
    if options["action_text"] not in ("motion", "instruction", "both"):
        raise BadInput(f"format '{FORMAT}': option 'action_text' must be 'motion', 'instruction' or 'both', "
                           f"got {options['action_text']!r}")
    manifest = load_manifest(root)
    generated = manifest.get("options", {}).get("split", "test")
    if spec.split != generated:
        raise BadInput(f"format '{FORMAT}': {root} holds the generated Meta-World split {generated!r} only; "
                       f"got split {spec.split!r} (each split is generated into its own folder: "
                       f"`wmbench data make metaworld --split {spec.split}`)")
    _check_generated_with(root, manifest, spec)
    ds = lerobot.open_dataset(root)
    by_index = {e["episode_index"]: e for e in manifest["episodes"]}
    episodes = lerobot.select_episodes(ds, options["episodes"], spec.split)
    if options["tasks"] is not None:
        wanted = [options["tasks"]] if isinstance(options["tasks"], str) else list(options["tasks"])
        unknown = sorted(set(wanted) - set(manifest["instructions"]))
        if unknown:
            raise BadInput(f"format '{FORMAT}': option 'tasks': {unknown} not in this dataset "
                               f"(has {', '.join(manifest['instructions'])})")
        episodes = [e for e in episodes if by_index.get(e.index, {}).get("env_name") in wanted]
    camera = CameraModel(manifest["camera"])
    aux = {"segmentation": SEGMENTATION_KEY} if SEGMENTATION_KEY in ds.features else {}
    for pair in lerobot.iter_pairs(ds, frames, manifest["camera_key"], episodes, aux, options["max_pixels"]):
        env_name = by_index.get(pair.episode.index, {}).get("env_name", "")
        meta = {"task": env_name, "instruction": pair.task}
        if pair.unreadable:
            yield lerobot.make_transition(ds, pair, spec, frames, manifest["camera_key"], pair.task, meta)
            continue
        state = pair.rows["observation.state"]
        motion = describe_motion(state[pair.src], state[pair.tgt], camera)
        text = {"motion": motion, "instruction": pair.task, "both": f"{pair.task}: {motion}"}[options["action_text"]]
        yield lerobot.make_transition(ds, pair, spec, frames, manifest["camera_key"], text, {**meta, "motion": motion})


def _check_generated_with(root: Path, manifest: dict, spec: Any) -> None:
    """A task that sets generator options must read data generated with them. Options the task
    leaves unset are not checked, so `wmbench data make metaworld --episodes 8` serves the
    default tasks (the options used are recorded in meta/wmbench.json)."""
    if getattr(spec, "generator", None) != "metaworld":
        return
    explicit = dict(getattr(spec, "generator_options", None) or {})
    wanted = {k: v for k, v in normalize_options(explicit, check_tasks=False).items() if k in explicit}
    have = manifest.get("options", {})
    diff = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
    if diff:
        said = ", ".join(f"{k}: data {a!r} vs task {b!r}" for k, (a, b) in diff.items())
        raise BadInput(f"{root} was generated with other Meta-World options than the task asks for ({said}); "
                           f"delete the folder or run `wmbench data make metaworld` with the task's options")
