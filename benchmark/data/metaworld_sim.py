"""Meta-World simulation for the built-in dataset: expert rollouts, headless rendering, segmentation.

Kept apart from metaworld.py (options, reading, motion text) so that reading a generated dataset
never imports MuJoCo. Everything here imports mujoco/metaworld lazily: call `select_gl()` first.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

#: Top-level bodies of Meta-World's shared scene (table and its walls): label 0 with the world.
SCENE_BODIES = {"tablelink", "RetainingWall"}
#: Env steps recorded after the expert first succeeds, so the last frames show the finished task
#: (16 steps = 0.2 s of simulated time).
TAIL_STEPS = 16
BACKGROUND, ROBOT, OBJECT = 0, 1, 2


def select_gl() -> str:
    """MUJOCO_GL for headless rendering: the user's choice, else EGL (set before mujoco is imported;
    `generate` falls back to OSMesa in a subprocess when EGL fails)."""
    return os.environ.setdefault("MUJOCO_GL", "egl")


@dataclass
class Episode:
    env_name: str
    goal_index: int
    success_step: int | None
    env_steps: int
    state: list = field(default_factory=list)  # (4,) ee xyz + gripper opening per recorded frame
    env_state: list = field(default_factory=list)  # (39,) Meta-World observation per frame
    action: list = field(default_factory=list)  # (4,) mean of the frame_skip actions after the frame
    rgb: list = field(default_factory=list)  # (H, W, 3) uint8
    seg: list = field(default_factory=list)  # (H, W) uint8 labels


class Camera:
    """A named Meta-World camera rendered upright (RGB + segmentation labels) at size x size."""

    def __init__(self, model, data, name: str, size: int, segmentation: bool):
        import mujoco

        cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if cam_id < 0:
            names = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f"camera {name!r} is not in the Meta-World model; known: {', '.join(names)}")
        # An offscreen buffer of exactly the frame size: MuJoCo resolves the multisampled buffer
        # whole on every read, and Meta-World's 640x480 default made a 128 px read cost ~14 ms.
        model.vis.global_.offwidth = model.vis.global_.offheight = size
        self.name, self.size, self.segmentation = name, size, segmentation
        self.renderer = mujoco.Renderer(model, size, size)
        mujoco.mj_forward(model, data)
        xmat = data.cam_xmat[cam_id].reshape(3, 3)
        # Meta-World's corner cameras are mounted upside down (their image "up" axis points to the
        # floor): rotate those images by 180 degrees, which is the roll correction (a vertical flip
        # would mirror the scene).
        self.rot180 = bool(xmat[2, 1] < 0)
        self.geometry = {"name": name, "pos": data.cam_xpos[cam_id].tolist(), "xmat": xmat.tolist(),
                         "fovy": float(model.cam_fovy[cam_id]), "width": size, "height": size,
                         "rot180": self.rot180}
        self.geom_labels, self.site_labels = label_tables(model)

    def render(self, data) -> tuple[np.ndarray, np.ndarray | None]:
        import mujoco

        self.renderer.update_scene(data, camera=self.name)
        # Shadows off: with them a 128 px frame takes ~47 ms in software GL here, without ~10 ms
        # (measured, MSAA kept for anti-aliasing); see the generator's timing notes.
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        rgb = self.renderer.render()
        labels = None
        if self.segmentation:
            self.renderer.enable_segmentation_rendering()
            ids = self.renderer.render()
            self.renderer.disable_segmentation_rendering()
            labels = self.labels(ids)
        if self.rot180:
            rgb = rgb[::-1, ::-1]
            labels = None if labels is None else labels[::-1, ::-1]
        return np.ascontiguousarray(rgb), None if labels is None else np.ascontiguousarray(labels)

    def labels(self, ids: np.ndarray) -> np.ndarray:
        import mujoco

        obj, typ = ids[..., 0], ids[..., 1]
        geoms = self.geom_labels.take(obj, mode="clip")
        sites = self.site_labels.take(obj, mode="clip")
        # int(): comparing an array with the pybind enum itself is an element-wise Python call (~10 ms)
        return np.where(typ == int(mujoco.mjtObj.mjOBJ_GEOM), geoms,
                        np.where(typ == int(mujoco.mjtObj.mjOBJ_SITE), sites, 0)).astype(np.uint8)

    def close(self) -> None:
        self.renderer.close()


def label_tables(model) -> tuple[np.ndarray, np.ndarray]:
    """Label per geom and per site: 1 for the robot (the tree of the 'hand' body), 0 for the world,
    the mocap body and the shared scene (table, walls), 2 for the task's objects."""
    def top(body: int) -> int:
        while model.body_parentid[body] != 0:
            body = model.body_parentid[body]
        return body

    robot = top(model.body("hand").id)
    body_labels = np.zeros(model.nbody, np.uint8)
    for body in range(1, model.nbody):
        root = top(body)
        if root == robot:
            body_labels[body] = ROBOT
        elif model.body_mocapid[root] < 0 and model.body(root).name not in SCENE_BODIES:
            body_labels[body] = OBJECT
    return body_labels[model.geom_bodyid], body_labels[model.site_bodyid]


class Simulator:
    """One Meta-World task: its 50 seeded goal variations (MT1), the env and the expert policy."""

    def __init__(self, env_name: str, seed: int, camera: str, size: int, segmentation: bool):
        import metaworld
        from metaworld.policies import ENV_POLICY_MAP

        self.env_name = env_name
        self.benchmark = metaworld.MT1(env_name, seed=seed)
        self.env = self.benchmark.train_classes[env_name]()
        self.policy = ENV_POLICY_MAP[env_name]()
        self.env.set_task(self.benchmark.train_tasks[0])
        self.env.reset()
        self.camera = Camera(self.env.model, self.env.data, camera, size, segmentation)

    @property
    def goals(self) -> int:
        return len(self.benchmark.train_tasks)

    def rollout(self, goal: int, frame_skip: int, max_frames: int, render: bool = True) -> Episode:
        """Run the expert from a fresh reset on goal variation `goal`, recording every `frame_skip`
        env steps, until TAIL_STEPS after the first success or `max_frames` frames."""
        import mujoco

        env = self.env
        mujoco.mj_resetData(env.model, env.data)  # no solver warm start carried over between episodes
        env.set_task(self.benchmark.train_tasks[goal])
        obs, _ = env.reset()
        ep = Episode(self.env_name, goal, None, 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the policies warn about their own gains
            for _ in range(max_frames):
                ep.state.append(np.asarray(obs[:4], np.float32))
                ep.env_state.append(np.asarray(obs, np.float32))
                if render:
                    rgb, seg = self.camera.render(env.data)
                    ep.rgb.append(rgb)
                    ep.seg.append(seg)
                actions = []
                for _ in range(frame_skip):
                    # clipped before stepping so the recorded action is the one applied
                    action = np.clip(self.policy.get_action(obs), -1.0, 1.0).astype(np.float32)
                    obs, _, _, _, info = env.step(action)
                    actions.append(action)
                    ep.env_steps += 1
                    if ep.success_step is None and info.get("success"):
                        ep.success_step = ep.env_steps
                ep.action.append(np.mean(actions, axis=0))
                if ep.success_step is not None and ep.env_steps >= ep.success_step + TAIL_STEPS:
                    break
        return ep

    def close(self) -> None:
        self.camera.close()
        self.env.close()
