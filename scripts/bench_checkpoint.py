"""Benchmark: what checkpoints cost. Per experiment, the time to write one checkpoint (pickle, fsync, rename),
its size, and the time to read it back and restore; and, in the same process, a sampled Fast-FedPG run with
``checkpoint_every=1`` against the same run with checkpoints off. Run with `make bench` or
`python scripts/bench_checkpoint.py`.
"""

from __future__ import annotations

import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from fedrl_cli import checkpoint
from fedrl_cli.experiments import build
from fedrl_cli.federation import run_rounds
from fedrl_cli.progress import RoundProgress

TABULAR = {
    "n_agents": 4,
    "seed": 0,
    "checkpoint_every": 0,
    "progress": False,
    "env": {
        "name": "tabular",
        "n_states": 5,
        "n_actions": 4,
        "gamma": 0.9,
        "reward_heterogeneity": 0.5,
        "transition_heterogeneity": 0.5,
        "mdp_seed": 0,
    },
    "algo": {
        "name": "fastfedpg",
        "rounds": 300,
        "local_steps": 5,
        "lr": 0.1,
        "global_lr": 1.0,
        "gradient": "sampled",
        "batch_size": 20,
        "horizon": 20,
    },
}


def hopper_config(n_agents: int) -> dict[str, Any]:
    from omegaconf import OmegaConf

    ppo = OmegaConf.to_container(OmegaConf.load(Path(__file__).parents[1] / "fedrl_cli/conf/ppo/cleanrl.yaml"))
    env = {"name": "hopper", "n_envs": 1, "action_map": "signed_permutation", "action_map_seed": 0}
    return {
        "n_agents": n_agents,
        "seed": 0,
        "checkpoint_every": 0,
        "progress": False,
        "env": {**env, "identity_first": True, "vector": "sync"},
        "algo": {**ppo, "name": "fedavg_ppo", "rounds": 2, "local_steps": 1, "eval_every": 0, "eval_episodes": 1},
    }


def write_and_read(config: dict[str, Any], folder: Path, repeats: int) -> tuple[float, float, int]:
    """Seconds to write one checkpoint, seconds to read and restore it, bytes on disk."""
    experiment = build(config)
    experiment.round()
    header = checkpoint.Header(1, 0.0, {})
    start = time.perf_counter()
    for _ in range(repeats):
        checkpoint.save(folder, header, experiment.state(), experiment.rebuilt())
    write = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        experiment.restore(checkpoint.load_state(folder, experiment.rebuilt()))
    read = (time.perf_counter() - start) / repeats
    size = (folder / checkpoint.FILE).stat().st_size
    experiment.close()
    return write, read, size


def timed_run(every: int, folder: Path) -> float:
    config = {**TABULAR, "checkpoint_every": every}
    experiment = build(config)
    start = time.perf_counter()
    with RoundProgress(config["algo"]["rounds"], False, "bench") as progress:
        run_rounds(experiment, config["algo"]["rounds"], config["n_agents"], folder, progress, every)
    return time.perf_counter() - start


def main() -> None:
    print(f"checkpoint benchmark — {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        cases = {
            "tabular fastfedpg N=4, S=5, A=4": (TABULAR, 200),
            "tabular fastfedpg N=16, S=200, A=10": (
                {**TABULAR, "n_agents": 16, "env": {**TABULAR["env"], "n_states": 200, "n_actions": 10}},
                50,
            ),
            "hopper fedavg_ppo N=4 (model, Adam, 4 MuJoCo copies)": (hopper_config(4), 20),
        }
        for label, (config, repeats) in cases.items():
            write, read, size = write_and_read(config, folder, repeats)
            print(f"  {label}: write {write * 1e3:.2f} ms, read+restore {read * 1e3:.2f} ms, {size / 1024:.1f} KiB")
        rounds = TABULAR["algo"]["rounds"]
        off = min(timed_run(0, folder) for _ in range(3))
        print(f"  sampled fastfedpg, {rounds} rounds of {off / rounds * 1e3:.2f} ms: checkpoints off {off:.3f} s")
        for every in (1, 10, 50):
            seconds = min(timed_run(every, folder) for _ in range(3))
            print(
                f"    checkpoint_every={every}: {seconds:.3f} s (×{seconds / off:.3f}; "
                f"{(seconds - off) / (rounds // every) * 1e3:.2f} ms a checkpoint, CSVs synced with it)"
            )


if __name__ == "__main__":
    main()
