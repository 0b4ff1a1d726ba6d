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

CONF_DIR = Path(__file__).resolve().parent / "conf"
GROUPS = {
    "env": "environment families",
    "algo": "algorithms",
    "sweep": "sweep presets (use with -m +sweep=NAME)",
}

app = typer.Typer(
    help="fedrl: federated reinforcement learning experiments. Run `fedrl run --help` for the config groups.",
    add_completion=False,
    no_args_is_help=True,
)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"fedrl: error: {message}", err=True)
    return typer.Exit(code)


def _one_line(error: BaseException) -> str:
    """Hydra's composition errors as one line naming the override and what is allowed."""
    text = str(error)
    missing = re.search(r"Could not find '(.+)/([^'/]*)'", text)
    if missing:
        group, option = missing.groups()
        choices = re.findall(r"^\t(\S+)$", text.split("Available options", 1)[-1], flags=re.MULTILINE)
        allowed = f"it must be one of {', '.join(choices)}" if choices else f"'{group}' has no options"
        return (
            f"{group}={option!r} is not allowed: {allowed}"
            if not option
            else f"{group}={option} is not allowed: {allowed}"
        )
    not_in_struct = re.search(r"Could not override '([^']+)'", text)
    if not_in_struct:
        key = not_in_struct.group(1)
        return f"{key}: unknown key (see `fedrl run --help` for the keys; `+{key}=...` adds a new one)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines) if lines else type(error).__name__


def _exit_code(outcomes: list) -> int:
    """Report the jobs this process ran; 2 if any had bad input, 1 if any failed, else 0."""
    bad = [o for o in outcomes if o.status == "bad_input"]
    failed = [o for o in outcomes if o.status == "failed"]
    for outcome in bad[:1]:
        typer.echo(f"fedrl: error: {outcome.message}", err=True)
    for outcome in failed:
        typer.echo(f"fedrl: run failed: {outcome.message} (see {outcome.run_dir / 'summary.json'})", err=True)
    if len(outcomes) > 1:
        done = len(outcomes) - len(bad) - len(failed)
        typer.echo(
            f"fedrl: sweep of {len(outcomes)} jobs: {done} completed, {len(failed)} failed, {len(bad)} with bad input",
            err=True,
        )
    return 2 if bad else 1 if failed else 0


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
    task.OUTCOMES.clear()
    try:
        task.main()
    except (HydraException, OmegaConfBaseException) as error:
        raise _fail(_one_line(error), 2) from None
    code = _exit_code(task.OUTCOMES)
    if code:
        raise typer.Exit(code)


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
