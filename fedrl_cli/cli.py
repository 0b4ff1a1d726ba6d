"""The ``fedrl`` command: a thin Typer front over the Hydra task in :mod:`fedrl_cli.app`.

``fedrl run`` hands its arguments to Hydra unchanged (overrides, ``-m``, ``--cfg job``, ``--help``, launcher
flags). Exit codes: 0 done, 1 a run failed, 2 bad input (one line on stderr, no traceback).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import typer

from fedrl_cli.errors import ConfigError, RunFailed

CONF_DIR = Path(__file__).resolve().parent / "conf"
GROUPS = {"env": "environment families", "algo": "algorithms", "sweep": "sweep presets (use with -m +sweep=NAME)"}

app = typer.Typer(
    help="fedrl: federated reinforcement learning experiments. Run `fedrl run --help` for the config groups.",
    add_completion=False,
    no_args_is_help=True,
)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"fedrl: error: {message}", err=True)
    return typer.Exit(code)


def _options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def _one_line(error: BaseException) -> str:
    """Hydra's composition errors as one line naming the override and what is allowed."""
    text = str(error)
    missing = re.search(r"Could not find '([^'/]+)/([^']+)'", text)
    if missing:
        group, option = missing.groups()
        choices = _options(group)
        if choices:
            return f"{group}={option} is not allowed: it must be one of {', '.join(choices)}"
        return f"{group}={option}: there is no config group '{group}'"
    not_in_struct = re.search(r"Could not override '([^']+)'", text)
    if not_in_struct:
        key = not_in_struct.group(1)
        return f"{key}: unknown key (see `fedrl run --help` for the keys; `+{key}=...` adds a new one)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines) if lines else type(error).__name__


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def run(ctx: typer.Context) -> None:
    """Run one experiment, or a sweep with -m. Arguments are Hydra overrides: GROUP=OPTION, KEY=VALUE.

    Examples: `fedrl run algo=fedavg_pg n_agents=8 algo.local_steps=10`,
    `fedrl run -m algo=fastfedpg,fedavg_pg n_agents=1,2,4 seed=0,1`. `fedrl run --help` lists every key.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from fedrl_cli import app as task

    sys.argv = ["fedrl", *ctx.args]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us, so we print one line instead of a traceback
    try:
        task.main()
    except ConfigError as error:
        raise _fail(str(error), 2) from None
    except RunFailed as error:
        raise _fail(f"run failed: {error}", 1) from None
    except (HydraException, OmegaConfBaseException) as error:
        raise _fail(_one_line(error), 2) from None


def _description(path: Path) -> str:
    """The first comment line of a config file."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


@app.command("list")
def list_configs() -> None:
    """List the environment families, algorithms and sweep presets, one line each."""
    for group, title in GROUPS.items():
        typer.echo(f"{group} — {title}:")
        files = sorted((CONF_DIR / group).glob("*.yaml"))
        width = max((len(path.stem) for path in files), default=0)
        for path in files:
            typer.echo(f"  {path.stem:<{width}}  {_description(path)}")
        if not files:
            typer.echo("  (none)")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"fedrl {version('fedrl')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """fedrl: federated reinforcement learning experiments from Hydra configs."""


def main() -> None:
    app()
