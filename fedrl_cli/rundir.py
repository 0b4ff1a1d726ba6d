"""One writer per run dir: the writing process holds an OS lock on ``RUN_DIR/.fedrl.lock`` while it writes.

The lock (``flock``) belongs to the process, so it covers sweep jobs in worker processes too, and it is released
by the OS when that process ends, however it ends: a lock left by a dead process never blocks. A default run dir
(or sweep dir), named to the second, is claimed by creating it, so runs started in the same second get dirs of
their own (``..._2``); a new run never lands on another run's results unless asked to replace them
(``overwrite=true``).
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import re
import shutil
import socket
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedrl_cli.errors import DirRefused
from fedrl_cli.event_log import FOLDER

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override

LOCK_FILE = ".fedrl.lock"
# what a run writes besides Hydra's files and its log: replaced as a whole by `overwrite=true`
RESULT_FILES = ("summary.json", "metrics.csv", "agent_metrics.csv", "checkpoint.pkl", "model.pt")
# the locks this process holds: resolved dir → the open lock file
_HELD: dict[Path, int] = {}


def owner(directory: Path) -> str | None:
    """``pid P on HOST`` of the live process that holds ``directory``'s lock; None when none does (or when it is
    this process)."""
    directory = directory.resolve()
    if directory in _HELD:
        return None
    try:
        descriptor = _open_lock(directory, os.O_RDONLY)
    except (OSError, DirRefused):
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _describe(os.pread(descriptor, 256, 0))
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def _describe(content: bytes) -> str:
    pid, _, host = content.decode(errors="replace").strip().partition(" ")
    return f"pid {pid} on {host}" if pid.isdigit() and host else "a process that has not said which"


def _open_lock(directory: Path, flags: int) -> int:
    """The lock file's descriptor, never through a symbolic link and only for a regular file (a link could point
    the lock's "pid host" line at any file; a FIFO would block); :class:`DirRefused` otherwise."""
    path = directory / LOCK_FILE
    try:
        descriptor = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise DirRefused(f"{path} is a symbolic link: fedrl locks only a regular file of its own; remove it") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise DirRefused(f"{path} is not a regular file: fedrl locks only a regular file of its own; remove it")
    return descriptor


def acquire(directory: Path) -> None:
    """Hold ``directory``'s lock until :func:`release` (or this process ends); :class:`DirRefused` naming the
    owner when a live process holds it. Re-entrant within this process."""
    directory = directory.resolve()
    if directory in _HELD:
        return
    try:
        descriptor = _open_lock(directory, os.O_RDWR | os.O_CREAT)
    except OSError as error:  # a dir fedrl cannot write: say which
        raise OSError(error.errno, error.strerror, str(directory)) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(os.pread(descriptor, 256, 0))
        os.close(descriptor)
        raise DirRefused(
            f"{directory} is being written by another fedrl process ({holder}): wait for it to end or stop it, "
            "or choose another dir"
        ) from None
    try:  # who holds it, for the message above; the lock works without it (e.g. on a full disk)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except OSError:
        pass
    _HELD[directory] = descriptor


def release(directory: Path) -> None:
    descriptor = _HELD.pop(directory.resolve(), None)
    if descriptor is not None:
        os.close(descriptor)  # closing the file releases the lock


def release_all() -> None:
    for directory in list(_HELD):
        release(directory)


@contextmanager
def held(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s lock for the block (a lock this process already holds stays held after it)."""
    already = directory.resolve() in _HELD
    acquire(directory)
    try:
        yield
    finally:
        if not already:
            release(directory)


def claim_new(directory: Path) -> Path:
    """``directory``, or ``directory_2``, ``_3``, ...: the first one this call creates, so that two runs that
    start in the same second never share a default dir."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    for attempt in itertools.count(1):
        candidate = directory if attempt == 1 else directory.with_name(f"{directory.name}_{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("unreachable")


def quoted(path: Path) -> str:
    """``path`` as a quoted Hydra override value (so commas or spaces in it are not read as a sweep)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def sweep_overrides(params: Mapping[str, Any] | None, task: list[str]) -> dict[str, Override]:
    """A sweep's overrides by key, from its sweeper params (a preset's) and its command line's (later wins)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [f"{key}={value}" for key, value in (params or {}).items()] + list(task)
    return {o.get_key_element().lstrip("+~"): o for o in OverridesParser.create().parse_overrides(overrides)}


def job_name(value: Any) -> str:
    """A config value as part of a folder name: lists comma-joined, anything but letters, digits and ``.,+-=`` as
    ``-``, at most 40 characters (the OmegaConf resolver ``fedrl_name``)."""
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return re.sub(r"[^\w.,+=-]", "-", text)[:40]


def job_subdir(params: Mapping[str, Any] | None, task: list[str]) -> str:
    """``hydra.sweep.subdir`` naming each job by the values it sweeps: ``3_fastfedpg_tabular_n_agents=4_seed=1``
    (the algorithm and environment are always there; keys of Hydra's own are left out)."""
    swept = [
        key
        for key, override in sweep_overrides(params, task).items()
        if override.is_sweep_override()
        and key not in ("algo", "env")
        and not key.startswith("hydra")
        and re.fullmatch(r"[\w.]+", key)  # a group path (e.g. ppo/...) has no value to name
    ]
    values = "".join(f"_{key.rsplit('.', 1)[-1]}=${{fedrl_name:${{{key}}}}}" for key in sorted(swept))
    return "${hydra.job.num}_${algo.name}_${env.name}" + values


def results_in(directory: Path) -> list[str]:
    """The result files of a run in ``directory`` (not in its subfolders)."""
    return [name for name in RESULT_FILES if (directory / name).exists()]


def refuse_results(directory: Path, what: str, found: str) -> None:
    """:class:`DirRefused` for a new run or sweep into ``directory``, which holds ``found``."""
    raise DirRefused(
        f"{directory} already holds {found}: choose another {what}, add ++overwrite=true to replace them, or, "
        f"to continue an unfinished run, use `fedrl resume {directory}`"
    )


def clear_results(directory: Path) -> None:
    """Remove a previous run's result files from ``directory`` (``overwrite=true``; the new run writes its own)."""
    for name in results_in(directory):
        (directory / name).unlink()
    events = directory / FOLDER
    if events.is_symlink():
        events.unlink()
    elif events.is_dir():
        shutil.rmtree(events)
