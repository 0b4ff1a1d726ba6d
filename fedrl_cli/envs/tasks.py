"""The gymnasium MuJoCo locomotion tasks a PPO run can use (``env=mujoco env.id=...``; ``env=hopper`` is Hopper-v5),
with their sizes under gymnasium's defaults and, for those with batched physics, what their step does beyond the
parameters gymnasium's env object holds. Plain data (no gymnasium import), so that validating a config is quick; a
test checks every row against gymnasium's own spaces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Locomotion:
    """A batched task's step: whether its observation clips the velocities to ±10, which health test ends an episode
    (``none``; ``z_angle``: torso height and angle in their ranges; ``state_z_angle``: also ``state_vector()[2:]``
    in its range) and how a reset perturbs the velocities (``uniform`` in ±scale, as the positions, or ``normal``
    with std scale)."""

    clip_velocity: bool
    health: str
    velocity_noise: str


@dataclass(frozen=True)
class Task:
    """A task's observation size, action dimension (actuators) and, where implemented, its batched physics."""

    observations: int
    actions: int
    batched: Locomotion | None = None


TASKS: dict[str, Task] = {
    "Hopper-v5": Task(11, 3, Locomotion(clip_velocity=True, health="state_z_angle", velocity_noise="uniform")),
    "HalfCheetah-v5": Task(17, 6, Locomotion(clip_velocity=False, health="none", velocity_noise="normal")),
    "Walker2d-v5": Task(17, 6, Locomotion(clip_velocity=True, health="z_angle", velocity_noise="uniform")),
    "Ant-v5": Task(105, 8),  # contact forces in the observation (gymnasium's default)
    "Humanoid-v5": Task(348, 17),  # actions in ±0.4
    "HumanoidStandup-v5": Task(348, 17),  # actions in ±0.4
    "Swimmer-v5": Task(8, 2),
}
BATCHED = [name for name, task in TASKS.items() if task.batched]


def vector_kind(vector: str, env_id: str) -> str:
    """``env.vector`` resolved: ``auto`` is ``batched`` where the task has batched physics, else ``sync``."""
    if vector != "auto":
        return vector
    return "batched" if TASKS[env_id].batched else "sync"
