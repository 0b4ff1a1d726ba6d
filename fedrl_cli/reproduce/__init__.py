"""``fedrl reproduce NAME``: each paper's claims, tested with plain ``fedrl run -m`` sweeps, written up as a report
with the per-seed data its numbers come from."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

from fedrl_cli.reproduce.common import Options, ReproduceError

# name → what it reproduces, the options it takes beyond the common ones (--out, --jobs, --reuse, --seeds, --scale)
REPRODUCTIONS = {
    "fastfedpg": (
        "Fast-FedPG: linear speedup in N despite heterogeneity (Theorem 2), no bias (exact gradients); ~1 h",
        (),
    ),
    "subspace": (
        "subspace actor-critic: the K-speedup of the shared subspace (tabular); vs PPO baselines, sharing, transfer "
        "(Hopper); ~1 h",
        ("part", "hopper_budget", "hopper_seeds", "transfer_seeds", "workers"),
    ),
}

CHOICES = {"part": ("tabular", "hopper", "comparison", "cause", "all"), "hopper_budget": ("reduced", "full")}
AT_LEAST_ONE = ("seeds", "hopper_seeds", "transfer_seeds", "workers")

__all__ = ["REPRODUCTIONS", "BadOption", "Options", "ReproduceError", "check_options", "reproduce"]


class BadOption(ValueError):
    """Bad input to ``fedrl reproduce``: the message names the option, its value and what is allowed."""


def _check_value(option: str, value: object) -> None:
    flag = "--" + option.replace("_", "-")
    if option in AT_LEAST_ONE and value < 1:
        raise BadOption(f"{flag} {value} is not allowed: it must be an integer ≥ 1")
    if option == "jobs" and not (value == -1 or value >= 1):
        raise BadOption(f"--jobs {value} is not allowed: it must be -1 (one per core) or an integer ≥ 1")
    if option == "scale" and not (math.isfinite(value) and value > 0):
        raise BadOption(f"--scale {value:g} is not allowed: it must be a finite number > 0")
    if option in CHOICES and value not in CHOICES[option]:
        raise BadOption(f"{flag} {value} is not allowed: it must be one of {', '.join(CHOICES[option])}")


def check_options(name: str, given: dict[str, object], out: Path | None, reuse: bool) -> None:
    """:class:`BadOption` for an unknown reproduction, an option it does not take (None: not given), a value out of
    range, ``reuse`` without ``out``, or an ``out`` that is a file."""
    if name not in REPRODUCTIONS:
        raise BadOption(f"NAME {name or repr(name)} is not allowed: it must be one of {', '.join(REPRODUCTIONS)}")
    own = {option for _, options in REPRODUCTIONS.values() for option in options}
    for option, value in given.items():
        if value is None:
            continue
        if option in own and option not in REPRODUCTIONS[name][1]:
            users = [other for other, (_, options) in REPRODUCTIONS.items() if option in options]
            flag = "--" + option.replace("_", "-")
            raise BadOption(f"{flag} applies to `fedrl reproduce {' or '.join(users)}` only, not to {name}")
        _check_value(option, value)
    if reuse and out is None:
        raise BadOption("--reuse analyses the sweeps of an earlier reproduction: give its folder with --out DIR")
    if out is not None and out.exists() and not out.is_dir():
        raise BadOption(f"--out {out}: it is a file, not a folder")


def reproduce(name: str, options: Options) -> list[Path]:
    """Run reproduction ``name`` with ``options``; returns the reports it wrote."""
    return importlib.import_module(f"fedrl_cli.reproduce.{name}").run(options)
