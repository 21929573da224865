"""The built-in Meta-World data's action language: the end effector's motion in camera terms.

A motion text has four factors: the horizontal and vertical image-plane motion of the end effector,
its motion in depth and the gripper's change. Each factor takes one of three values (none first):

    horizontal: -, left, right      vertical: -, up, down
    depth:      -, toward the camera, away from the camera      gripper: -, close, open

and `motion_text` writes them as "move the arm left and down, close the gripper" ("keep the arm
still" when the arm does not move). So the language has exactly 3**4 = 81 texts (`VOCABULARY`);
`parse_motion` reads one back (None for any other text). The reference models
(wmbench.models.reference) are defined over this language.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import NamedTuple

import numpy as np

# Motion-text thresholds: image-plane motion as a fraction of the frame size, depth in metres,
# gripper opening in Meta-World's normalised units (0 closed .. 1 open). An axis is named only when
# it is at least DOMINANCE times the largest image-plane component, so "left" does not become
# "left and down" for a 1 px drift.
PLANE_MIN, DOMINANCE, DEPTH_MIN, DEPTH_SHARE, GRIP_MIN = 0.03, 0.4, 0.03, 0.6, 0.15

#: The values of each factor; index 0 is "no motion" on that factor.
FACTORS: dict[str, tuple[str, ...]] = {
    "horizontal": ("", "left", "right"),
    "vertical": ("", "up", "down"),
    "depth": ("", "toward the camera", "away from the camera"),
    "gripper": ("", "close", "open"),
}


class Motion(NamedTuple):
    """Indices into FACTORS' values, one per factor."""

    horizontal: int = 0
    vertical: int = 0
    depth: int = 0
    gripper: int = 0


def motion_text(motion: Motion) -> str:
    names = FACTORS
    moves = [names[f][i] for f, i in zip(("horizontal", "vertical", "depth"), motion[:3]) if i]
    if not moves:
        text = "keep the arm still"
    else:
        text = "move the arm " + (moves[0] if len(moves) == 1 else ", ".join(moves[:-1]) + " and " + moves[-1])
    if motion.gripper:
        text += f", {names['gripper'][motion.gripper]} the gripper"
    return text


#: Every text of the language, in a fixed order (index i <-> itertools.product order of Motion).
VOCABULARY: tuple[str, ...] = tuple(motion_text(Motion(*m)) for m in itertools.product(range(3), repeat=4))
_BY_TEXT = {text: Motion(*m) for text, m in zip(VOCABULARY, itertools.product(range(3), repeat=4))}
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower case, single spaces, no surrounding space or final full stop."""
    return _SPACE.sub(" ", str(text)).strip().lower().rstrip(".").strip()


def parse_motion(text: str) -> Motion | None:
    """The factors of a motion text (after `normalize`), or None for a text outside the language.
    A text "<instruction>: <motion>" (the reader's action_text="both") is read by its motion."""
    clean = normalize(text)
    found = _BY_TEXT.get(clean)
    if found is None and ": " in clean:
        found = _BY_TEXT.get(clean.rpartition(": ")[2])
    return found


class CameraModel:
    """Pinhole model of the stored MuJoCo camera (looks along -z, x right, y up), in the
    orientation of the stored frames (rotated 180 degrees when `rot180`)."""

    def __init__(self, geometry: dict):
        self.pos = np.asarray(geometry["pos"], np.float64)
        self.xmat = np.asarray(geometry["xmat"], np.float64).reshape(3, 3)
        self.width, self.height = float(geometry["width"]), float(geometry["height"])
        self.focal = (self.height / 2) / math.tan(math.radians(float(geometry["fovy"])) / 2)
        self.rot180 = bool(geometry["rot180"])

    def project(self, point: np.ndarray) -> tuple[float, float, float]:
        """World point -> (u, v) pixel coordinates (u right, v down) and depth (m) from the camera."""
        local = self.xmat.T @ (np.asarray(point, np.float64) - self.pos)
        depth = -local[2]
        u = self.width / 2 + self.focal * local[0] / depth
        v = self.height / 2 - self.focal * local[1] / depth
        if self.rot180:
            u, v = self.width - u, self.height - v
        return float(u), float(v), float(depth)


def measure_motion(state0: np.ndarray, state1: np.ndarray, camera: CameraModel) -> Motion:
    """The factors of the end effector's motion between two states (x, y, z, gripper opening)."""
    u0, v0, d0 = camera.project(state0[:3])
    u1, v1, d1 = camera.project(state1[:3])
    du, dv = (u1 - u0) / camera.width, (v1 - v0) / camera.height
    largest = max(abs(du), abs(dv))
    horizontal = vertical = depth = gripper = 0
    if abs(du) >= PLANE_MIN and abs(du) >= DOMINANCE * largest:
        horizontal = 2 if du > 0 else 1
    if abs(dv) >= PLANE_MIN and abs(dv) >= DOMINANCE * largest:
        vertical = 2 if dv > 0 else 1
    travel = float(np.linalg.norm(np.asarray(state1[:3], np.float64) - np.asarray(state0[:3], np.float64)))
    if abs(d1 - d0) >= DEPTH_MIN and abs(d1 - d0) >= DEPTH_SHARE * travel:
        depth = 1 if d1 < d0 else 2
    grip = float(state1[3]) - float(state0[3])
    if grip <= -GRIP_MIN:
        gripper = 1
    elif grip >= GRIP_MIN:
        gripper = 2
    return Motion(horizontal, vertical, depth, gripper)


def describe_motion(state0: np.ndarray, state1: np.ndarray, camera: CameraModel) -> str:
    """The end effector's motion between two states in the words of the camera view."""
    return motion_text(measure_motion(state0, state1, camera))
