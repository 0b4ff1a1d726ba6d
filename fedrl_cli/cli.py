"""The ``fedrl`` command: a thin Typer front over the Hydra task in :mod:`fedrl_cli.app`.

``fedrl run`` hands its arguments to Hydra unchanged (overrides, ``-m``, ``--cfg job``, ``--help``, launcher
flags); ``fedrl resume`` launches a run's or a sweep's own command again to continue it. Exit codes: 0 done,
1 a run failed, 2 bad input (one line on stderr, no traceback), 130 interrupted (resumable).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

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
    rich_markup_mode=None,  # click's plain help: paragraphs rewrapped, metavars such as PATHS... and --out PATH
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
        return f"{group}={option or repr(option)} is not allowed: {allowed}"
    not_in_struct = re.search(r"Could not override '([^']+)'", text)
    if not_in_struct:
        key = not_in_struct.group(1)
        return (
            f"{key}: unknown key (see `fedrl run --help` for the keys; in a sweep over algo or env, write "
            f"`++{key}=...` for a key that only some of them have)"
        )
    unparsable = re.match(r"\w+Exception: (.*)$", text.splitlines()[0]) if text else None
    if unparsable:
        return (
            f"{unparsable.group(1)}: not a valid override; quote a value with special characters, KEY='...' "
            "(grammar: https://hydra.cc/docs/advanced/override_grammar/basic)"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines) if lines else type(error).__name__


def _check_groups(arguments: list[str]) -> None:
    """Env and algo take one option by name (several, comma-separated, with -m): anything else is bad input,
    said here in one line rather than by Hydra's defaults machinery."""
    multirun = "-m" in arguments or "--multirun" in arguments
    for argument in arguments:
        key, _, value = argument.partition("=")
        group = key.lstrip("+~")
        if argument.startswith("-") or group not in GROUPS or "(" in value:
            continue  # flags, other keys, and Hydra's sweep functions (choice(...), glob(...))
        options = sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))
        allowed = f"it must be one of {', '.join(options)}"
        if key.startswith("~"):
            raise _fail(f"{group} cannot be removed: {allowed}", 2)
        for choice in value.split(",") if multirun else [value]:
            if choice not in options:
                raise _fail(f"{group}={choice or repr(choice)} is not allowed: {allowed}", 2)


def _shared_keys(arguments: list[str]) -> list[str]:
    """In a sweep over algorithms or environments, ``algo.KEY=V`` (or ``env.KEY=V``) for a key that every swept
    combination has becomes ``++algo.KEY=V``: Hydra composes the sweep's first config with the default algorithm,
    which may lack it. A key that only some have is left as it is, and refused with the hint of :func:`_one_line`."""
    if "-m" not in arguments and "--multirun" not in arguments:
        return arguments
    chosen = {group: ["__default__"] for group in ("algo", "env")}
    for argument in arguments:
        key, _, value = argument.partition("=")
        if key in chosen and "(" not in value:
            chosen[key] = value.split(",")
    if all(values == ["__default__"] or len(values) == 1 for values in chosen.values()):
        return arguments
    nested = [a for a in arguments if a.split("=")[0].split(".")[0] in chosen and "." in a.split("=")[0]]
    if not nested:
        return arguments
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    configs = []
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        for algo in chosen["algo"]:
            for env in chosen["env"]:
                picks = [
                    f"{group}={value}" for group, value in (("algo", algo), ("env", env)) if value != "__default__"
                ]
                configs.append(compose("config", overrides=picks))
    shared = {
        a
        for a in nested
        if all(OmegaConf.select(c, a.split("=")[0], default=_MISSING) is not _MISSING for c in configs)
    }
    return [f"++{argument}" if argument in shared else argument for argument in arguments]


_MISSING = object()


def _launched_runs(launched: list[Path], sweep: bool) -> list[Path]:
    """The run dirs this command launched: the run dir itself, or the jobs under the sweep dir."""
    from fedrl_cli.runs import find_run_dirs

    return find_run_dirs(launched) if sweep else launched


def _report(launched: list[Path], sweep: bool, stopped: str | None = None) -> int:
    """Say how the runs this command launched ended; the exit code is 2 if any had bad input, 1 if any failed.
    A sweep ends with a count line (``stopped``: why it ended before its last job)."""
    from fedrl_cli import app as task
    from fedrl_cli.runs import read_run

    runs = [read_run(path) for path in _launched_runs(launched, sweep)]
    bad = [run for run in runs if run.error_type == "bad_input"]
    failed = [run for run in runs if run.status != "completed" and run not in bad]
    if bad:
        typer.echo(f"fedrl: error: {bad[0].error}", err=True)
    for run in failed:
        if run.path in task.REPORTED:
            continue  # the job said it itself: its summary.json could not be written
        if run.error_type == "write_error":
            typer.echo(f"fedrl: error: {run.error}", err=True)
        elif run.status == "running":
            typer.echo(f"fedrl: run failed: {run.path} ended without recording how (see the lines above)", err=True)
        else:
            typer.echo(f"fedrl: run failed: {run.error or run.status} (see {run.path / 'summary.json'})", err=True)
    if sweep:
        counts = f"{len(runs) - len(bad) - len(failed)} completed, {len(failed)} failed, {len(bad)} with bad input"
        ended = f"sweep stopped ({stopped}) after {len(runs)} jobs" if stopped else f"sweep of {len(runs)} jobs"
        typer.echo(f"fedrl: {ended}: {counts} → {', '.join(map(str, launched))}", err=True)
    return 2 if bad else 1 if failed or stopped else 0


# errors that say the run dir cannot be used at all (bad input), rather than that a write failed on the way
_BAD_PATH = (errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG)


def _path_failure(error: OSError, sweep: bool) -> typer.Exit:
    """Hydra or the launcher could not make or write a run or sweep dir: bad input when the dir cannot be used, a
    failed launch (with the sweep's count line) when a write failed, e.g. on a full disk."""
    from fedrl_cli import app as task

    if error.errno == errno.EPIPE:  # the reader of our output went away (`fedrl run --help | head`)
        return typer.Exit(0)
    started = task.STARTED[0] if task.STARTED else None
    where = error.filename or (f"a job's files in {started}" if started else "the run dir")
    reason = (error.strerror or str(error)).lower()
    if error.errno in _BAD_PATH or error.errno is None:
        return _fail(
            f"{where}: {reason}: hydra.run.dir / hydra.sweep.dir must be a folder fedrl can create and write", 2
        )
    doing = task.failed_action(error)
    remedy = task.FILE_LIMIT_REMEDY if doing == "opening" else "fix it"
    if not started:
        return _fail(f"{reason} {doing} {where}; nothing was run; {remedy} and run again", 1)
    typer.echo(f"fedrl: error: {reason} {doing} {where}; {remedy} and run `fedrl resume {started}`", err=True)
    _report(task.STARTED, sweep, stopped=reason)
    return typer.Exit(1)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def run(ctx: typer.Context) -> None:
    """Run one experiment, or a sweep with -m. Arguments are Hydra overrides: GROUP=OPTION, KEY=VALUE.

    Examples: `fedrl run algo=fedavg_pg n_agents=8 algo.local_steps=10`,
    `fedrl run -m algo=fastfedpg,fedavg_pg n_agents=1,2,4 seed=0,1`. `fedrl run --help` lists every key.
    """
    _launch(ctx.args)


STOP_SIGNALS = ("SIGTERM", "SIGHUP")


def _child_pids() -> list[int]:
    """The processes this one started (a sweep's parallel jobs), from /proc; none where /proc does not tell."""
    pids = []
    for children in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(pid) for pid in children.read_text().split()]
    return pids


def _wait_for_jobs() -> None:
    """Wait until no other process writes a job of the sweeps this command started (each job holds its dir's lock
    until it has checkpointed and recorded how it ended)."""
    import time

    from fedrl_cli import app as task
    from fedrl_cli import rundir

    jobs = [job for sweep in task.STARTED for job in sweep.iterdir() if job.is_dir()]
    while any(rundir.owner(job) is not None for job in jobs):
        time.sleep(0.1)


@contextlib.contextmanager
def _stopped_like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP (a scheduler, a closed terminal) stop the command as Ctrl-C does: passed on to the jobs
    running in other processes (each stops after its round, with a checkpoint), then the same interruption here,
    which names `fedrl resume`. A run in this process handles them itself while its rounds run."""

    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        for pid in _child_pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        if not stopping:  # the first signal: wait for the jobs to end their rounds; a second stops at once
            stopping.append(signum)
            _wait_for_jobs()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _launch(arguments: list[str]) -> None:
    """Call the Hydra task with ``arguments`` as its command line, then report how the runs ended."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from fedrl_cli import app as task
    from fedrl_cli import rundir
    from fedrl_cli.errors import Escalated

    _check_groups(arguments)
    sys.argv = ["fedrl", *_shared_keys(arguments)]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us, so we print one line instead of a traceback
    for record in (task.LAUNCHED, task.STARTED, task.REPORTED):
        record.clear()
    sweep = "-m" in arguments or "--multirun" in arguments
    try:
        try:
            with _stopped_like_ctrl_c():
                task.main()
        except Escalated as escalated:  # raised in a Hydra callback: refused or unusable run dir
            raise escalated.error from None
    except KeyboardInterrupt as interrupt:
        where = " ".join(map(str, task.LAUNCHED or task.STARTED)) or "RUN_DIR"
        by = f"{interrupt}: " if str(interrupt) in STOP_SIGNALS else ""
        typer.echo(f"fedrl: {by}interrupted; continue with `fedrl resume {where}`", err=True)
        raise typer.Exit(130) from None
    except (HydraException, OmegaConfBaseException, ValueError) as error:  # overrides, flags, config tree, dirs
        raise _fail(_one_line(error), 2) from None
    except OSError as error:  # Hydra could not make or write the run or sweep dir
        raise _path_failure(error, sweep) from None
    except Exception as error:  # the task records its own failures, so this is the launcher's
        raise _fail(f"the launcher failed: {type(error).__name__}: {_one_line(error)}", 1) from None
    finally:
        rundir.release_all()
    code = _report(task.LAUNCHED, sweep)
    if code:
        raise typer.Exit(code)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def resume(
    ctx: typer.Context,
    path: Annotated[
        Path,
        typer.Argument(metavar="PATH", help="A run dir, or a sweep dir (all its unfinished jobs are resumed)."),
    ],
) -> None:
    """Continue a killed, interrupted or failed run from its last checkpoint, with its own saved config; on a
    sweep dir, every job that has not completed (jobs that never started run now), with the sweep's launcher.

    Rows written after the checkpoint are cut from the CSVs and the run appends from there. Extra arguments may
    change where the run computes (backend, workers, ray_address: results do not depend on them) and Hydra's
    own settings, e.g. another launcher. Examples:
    `fedrl resume outputs/runs/2026-11-22/10-00-00_fastfedpg_tabular`,
    `fedrl resume outputs/runs/2026-11-22/10-00-00_fedavg_ppo_hopper backend=local`,
    `fedrl resume outputs/sweeps/2026-11-22/10-00-00 hydra/launcher=basic`.
    """
    from fedrl_cli.errors import ResumeError
    from fedrl_cli.resume import plan

    try:
        arguments = plan(path, ctx.args)
    except ResumeError as error:
        raise _fail(str(error), 2) from None
    _launch(arguments)


@app.command()
def plot(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH", help="Run dirs and/or sweep dirs (searched recursively).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Folder for figures and tables (default: <first path>/plots); an existing file exits 2.",
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Metric to plot; groups of runs without it are left out and listed. Default, per run family: gap "
            "for tabular policy gradient (objective where J* is unknown, e.g. transition heterogeneity), "
            "critic_error for fedsubspace_ac on tabular, eval_return_mean for Hopper (return_mean without "
            "evaluations); runs whose defaults differ are plotted each into <out>/<metric>/.",
        ),
    ] = None,
    x: Annotated[
        str, typer.Option(metavar="AXIS", help="x axis: round, samples, samples_per_agent, comm_floats or wall_s.")
    ] = "round",
    target: Annotated[
        float | None,
        typer.Option(
            metavar="EPS",
            help="Level ε for the speedup, a finite number > 0 (default: per algorithm, the worst final seed-mean "
            "level across N, which every N reaches: the largest for gaps and errors, the smallest for returns).",
        ),
    ] = None,
    target_fraction: Annotated[
        float | None,
        typer.Option(
            metavar="F",
            help="Instead of --target: ε = F × the largest initial (round-0) seed-mean level across N, 0 < F < 1, "
            "for metrics where lower is better (gaps, errors).",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help="Figure format: png, pdf or svg.")] = "png",
    include_failed: Annotated[
        bool, typer.Option(help="Also plot runs that failed or are still running (their complete rows).")
    ] = False,
    window: Annotated[
        float | None,
        typer.Option(
            metavar="F",
            help="Also the level over the last fraction F of the rounds, 0 < F ≤ 1: per run the mean of the metric "
            "there, then the seed mean with its 95% interval (summary.csv: window_mean, window_ci_low, "
            "window_ci_high), and window.png: that level against N with the fitted log-log slope and its interval "
            "(window_slopes.csv).",
        ),
    ] = None,
    tune: Annotated[
        str | None,
        typer.Option(
            metavar="KEY[,KEY...]",
            help="Tune config keys (e.g. algo.lr, local_steps): within each group of runs that differ only in these "
            "keys and seed, plot and tabulate only the value (combination) with the best seed-mean final metric "
            "(lowest for gaps and errors, highest for returns); the choices are printed, and summary.csv and "
            "speedup.csv get a tuned_<KEY> column.",
        ),
    ] = None,
) -> None:
    """Figures and tables from finished runs: convergence, speedup vs agents, bias vs local steps, summary.csv and
    speedup.csv. Bands are 95% intervals over seeds: t below 10 seeds, bootstrap from 10 on; rounds to ε and the
    speedup are the median and 95% interval of a bootstrap over seeds. MuJoCo runs with evaluations also get
    rliable's aggregates (Agarwal et al. 2021): aggregates.csv and aggregates.png (IQM and mean over runs and agents,
    stratified-bootstrap intervals) and improvement.csv (probability of improvement between groups), for groups of
    ≥ 10 runs.

    Runs that differ in any config key but the seeds are separate curves. T_ε is the rounds from which a
    setting's seed-mean curve stays at ε or better. Unreadable runs (a cut or garbled metrics.csv, a bad
    summary.json) are listed with the reason and left out; exit 2 when nothing can be plotted.
    Example: `fedrl plot outputs/sweeps/2026-11-22/10-00-00 --metric gap --x samples_per_agent --format pdf`;
    `fedrl plot SWEEP --tune algo.lr` plots each (algorithm, N, ...) at its own best step size;
    `fedrl plot SWEEP --window 0.5` adds the stationary level over the last half of the rounds against N.
    """
    from fedrl_cli.results import NoRuns, load_results

    try:
        results = load_results(paths, include_failed=include_failed)
    except NoRuns as error:
        raise _fail(str(error), 2) from None
    # after the quick checks: matplotlib is slow to import
    from fedrl_cli.plots import describe, make_plots
    from fedrl_cli.stats import AnalysisError

    try:
        keys = [key.strip() for key in tune.split(",") if key.strip()] if tune is not None else None
        folder = out or paths[0] / "plots"
        report = make_plots(results, folder, metric, x, target, fmt, keys, target_fraction, window)
    except AnalysisError as error:
        raise _fail(str(error), 2) from None
    except OSError as error:  # a full disk, a folder it cannot write: figures are written whole or not at all
        reason = (error.strerror or str(error)).lower()
        raise _fail(
            f"{reason} writing {error.filename or folder}; no figure or table is left half written", 1
        ) from None
    for line in describe(results, report):
        typer.echo(line)
    for warning in report.warnings:
        typer.echo(f"fedrl: warning: {warning}", err=True)


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A finished PPO run dir (it holds model.pt).")],
    episodes: Annotated[int, typer.Option(min=1, metavar="N", help="Episodes per agent.")] = 10,
    seed: Annotated[int, typer.Option(metavar="SEED", help="Seed of the evaluation environments, in [0, 2^32).")] = 0,
) -> None:
    """Evaluate a saved PPO model: each agent's deterministic policy on its own environment (its action map
    and its frozen observation statistics).

    Example: `fedrl evaluate outputs/runs/2026-11-22/10-00-00_single_ppo_hopper --episodes 20`.
    """
    path = run_dir / "model.pt"
    if not path.is_file():
        raise _fail(f"{path}: no saved model (only PPO runs that completed save one)", 2)
    if not 0 <= seed < 2**32:
        raise _fail(f"--seed {seed} is not allowed: it must be an integer in [0, 2^32)", 2)
    from fedrl_cli.algos.ppo import deterministic_policy, load_model, saved_task
    from fedrl_cli.envs.mujoco import evaluate as evaluate_agents

    try:
        model, statistics, maps, config = load_model(path)
    except ValueError as error:
        raise _fail(str(error), 2) from None
    policy = deterministic_policy(model)
    returns = evaluate_agents(policy, maps, statistics, episodes, seed, env_id=saved_task(config))
    for agent, value in enumerate(returns):
        typer.echo(f"agent {agent}: mean return {value:.1f} over {episodes} episodes")
    typer.echo(f"all agents: {returns.mean():.1f}")


@app.command()
def reproduce(
    name: Annotated[str, typer.Argument(metavar="NAME", help="fastfedpg or subspace (`fedrl list` describes them).")],
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Folder for the sweeps, figures and report (default: a new stamped folder under outputs/reproduce).",
        ),
    ] = None,
    jobs: Annotated[int, typer.Option(metavar="N", help="Runs at once (joblib n_jobs; -1: one per core).")] = -1,
    reuse: Annotated[
        bool,
        typer.Option(
            help="Analyse the sweeps already in --out (their multirun.yaml written) instead of running them again."
        ),
    ] = False,
    seeds: Annotated[
        int | None,
        typer.Option(
            metavar="S",
            help="Seeds per setting (fastfedpg: the evaluation seeds of (a) and (b), default 10, and of the τ = 0 "
            "section, default 16; subspace: of the tabular part, default 10).",
        ),
    ] = None,
    scale: Annotated[
        float,
        typer.Option(
            metavar="F",
            help="Multiplies every round budget (0.01: a look at the pipeline in "
            "minutes; its numbers are not the claims').",
        ),
    ] = 1.0,
    part: Annotated[
        str | None,
        typer.Option(
            metavar="PART",
            help="subspace: tabular, hopper (against single_ppo and fedavg_ppo, and transfer), comparison (hopper "
            "without transfer), cause (why sharing a trunk costs the mapped agents; about 3 h on 2 cores, resumable "
            "across sessions) or all (default: tabular and hopper).",
        ),
    ] = None,
    hopper_budget: Annotated[
        str | None,
        typer.Option(
            metavar="BUDGET",
            help="subspace: Hopper steps per agent, reduced (303,104, transfer 98,304; default; about 2 h 15 min "
            "on 2 cores) or full (999,424, CleanRL's 1M, transfer 245,760; about 7 h).",
        ),
    ] = None,
    hopper_seeds: Annotated[
        int | None,
        typer.Option(
            metavar="S",
            help="subspace: paired seeds of the Hopper comparison (default 10; of the cause study, 8).",
        ),
    ] = None,
    transfer_seeds: Annotated[
        int | None, typer.Option(metavar="S", help="subspace: target seeds of each transfer setting (default 5).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            metavar="W",
            help="subspace: Ray workers per Hopper run (backend=ray; runs at once = cores // W); "
            "default 1, backend=local.",
        ),
    ] = None,
) -> None:
    """Reproduce a paper's claims: run the sweeps (plain `fedrl run -m`, each command in the report), draw the
    figures, and write report.md (subspace: tabular.md and report.md) with the per-seed data behind its numbers.

    Claims are judged on per-seed values: 95% t intervals below 10 seeds, bootstrap from 10 on (README, Statistics).
    Examples:
    `fedrl reproduce fastfedpg`, `fedrl reproduce subspace --part tabular --seeds 8`,
    `fedrl reproduce fastfedpg --out outputs/reproduce/ffpg --reuse` (analyse again without rerunning).
    """
    from datetime import datetime

    given = {
        "jobs": jobs,
        "seeds": seeds,
        "scale": scale,
        "part": part,
        "hopper_budget": hopper_budget,
        "hopper_seeds": hopper_seeds,
        "transfer_seeds": transfer_seeds,
        "workers": workers,
    }
    from fedrl_cli.reproduce import BadOption, Options, ReproduceError, check_options
    from fedrl_cli.reproduce import reproduce as run_reproduction

    try:
        check_options(name, given, out, reuse)
    except BadOption as error:
        raise _fail(str(error), 2) from None

    folder = out or Path("outputs/reproduce") / f"{name}_{datetime.now().strftime('%Y-%m-%d_%H-%M-%S')}"
    options = Options(
        folder, jobs, reuse, seeds, scale, part, hopper_budget, hopper_seeds, transfer_seeds, workers or 1
    )
    try:
        reports = run_reproduction(name, options)
    except ReproduceError as error:
        raise _fail(str(error), 1) from None
    except KeyboardInterrupt:
        typer.echo(
            f"fedrl: interrupted; the sweeps in {folder} are kept: `fedrl resume` the unfinished one, then run this "
            f"command again with --out {folder} --reuse",
            err=True,
        )
        raise typer.Exit(130) from None
    for report in reports:
        held = re.search(r"\d+ of \d+ (?:of the (?:paper's|abstract's) )?claims held", report.read_text())
        typer.echo(f"fedrl: wrote {report}{': ' + held.group(0) if held else ''}")


def _description(path: Path) -> str:
    """The first comment line of a config file (Hydra's ``# @package`` header aside)."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @"):
            return line.lstrip("# ").strip()
    return ""


@app.command("list")
def list_configs() -> None:
    """List the environment families, MuJoCo tasks, algorithms, sweep presets and claim reproductions, one line
    each."""
    from fedrl_cli.envs.tasks import TASKS

    for group, title in GROUPS.items():
        typer.echo(f"{group} — {title}:")
        files = sorted((CONF_DIR / group).glob("*.yaml"))
        width = max((len(path.stem) for path in files), default=0)
        for path in files:
            typer.echo(f"  {path.stem:<{width}}  {_description(path)}")
        if not files:
            typer.echo("  (none)")
        if group == "env":
            typer.echo("  tasks of env=mujoco (env.id=...):")
            width = max(len(name) for name in TASKS)
            for name, task in TASKS.items():
                physics = "batched physics" if task.batched else "gymnasium's vector env"
                typer.echo(f"    {name:<{width}}  {task.actions} actions, {task.observations} observations, {physics}")
    from fedrl_cli.reproduce import REPRODUCTIONS

    typer.echo("reproduce — claim reproductions (fedrl reproduce NAME):")
    width = max(len(name) for name in REPRODUCTIONS)
    for name, (description, _) in REPRODUCTIONS.items():
        typer.echo(f"  {name:<{width}}  {description}")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"fedrl {version('fedrl')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """fedrl: federated reinforcement learning experiments from Hydra configs."""


COMMANDS = ("run", "resume", "plot", "evaluate", "list", "reproduce")


def _shell_completion(arguments: list[str]) -> None:
    """Hydra's shell completion (``eval "$(fedrl -sc install=bash)"``, see ``fedrl run --hydra-help``): on tab the
    installed script calls ``fedrl -sc query=bash`` with the command line in ``COMP_LINE``; after ``fedrl run``
    Hydra completes config groups and keys, before it the commands are offered."""
    words = os.environ.get("COMP_LINE", "").split(" ")
    if any(argument.startswith("query") for argument in arguments):
        if len(words) < 3 or words[1] != "run":
            typer.echo(" ".join(COMMANDS))
            return
        os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]])  # as if the task were the program itself
    _launch(arguments)


def main() -> None:
    if sys.argv[1:2] in (["-sc"], ["--shell-completion"]):
        try:
            _shell_completion(sys.argv[1:])
        except typer.Exit as stop:
            sys.exit(stop.exit_code)
        return
    app(prog_name="fedrl")
