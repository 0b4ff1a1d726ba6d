"""Run-dir writers: ``metrics.csv`` and ``agent_metrics.csv`` flushed row by row, ``summary.json`` atomically.

A run killed at any moment leaves complete CSV rows up to its last round and a valid ``summary.json``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from fedrl_cli.errors import ResumeError

# the columns every metrics.csv starts with, in this order (ARCHITECTURE.md, run-dir contract)
LEADING_COLUMNS = ("round", "samples", "samples_per_agent", "comm_floats", "wall_s")
_UMASK = os.umask(0o022)
os.umask(_UMASK)
VERSIONED_PACKAGES = ("fedrl", "numpy", "hydra-core", "omegaconf", "torch", "gymnasium")


def _cell(value: Any) -> Any:
    """Empty for unknown values (None, NaN is kept as 'nan' so a divergence stays visible)."""
    return "" if value is None else value


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """OS errors raised in the block name ``path`` (a failed ``write`` or ``fsync`` does not say which file)."""
    try:
        yield
    except OSError as error:
        if error.filename == str(path):
            raise
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


class CsvLog:
    """A CSV file written one row at a time; each row is flushed so a killed run keeps it."""

    def __init__(self, path: Path, columns: list[str], append: bool = False) -> None:
        self.path, self.columns, self._failed = path, columns, False
        with naming(path):
            self._file = open(path, "a" if append else "w", newline="")  # noqa: SIM115 - closed in close()
        self._writer = csv.writer(self._file)
        if not append:
            self._write(columns)

    @classmethod
    def reopen(cls, path: Path, size: int) -> CsvLog:
        """Continue ``path`` after cutting it back to its first ``size`` bytes (the rows of a checkpoint)."""
        if not path.is_file() or path.stat().st_size < size:
            raise ResumeError(f"{path} is shorter than when the checkpoint was written: it was changed since")
        os.truncate(path, size)
        with path.open(newline="") as handle:
            columns = next(csv.reader(handle))
        return cls(path, columns, append=True)

    def _write(self, cells: list[Any]) -> None:
        try:
            with naming(self.path):
                self._writer.writerow(cells)
                self._file.flush()
        except OSError:
            self._failed = True
            raise

    def write(self, row: dict[str, Any]) -> None:
        self._write([_cell(row.get(column)) for column in self.columns])

    def sync(self) -> int:
        """Make the rows written so far durable (fsync, so they survive the machine, not just the process);
        returns their size in bytes."""
        with naming(self.path):
            os.fsync(self._file.fileno())
        return self._file.tell()

    def close(self) -> None:
        """Close the file; after a failed write, what is still buffered is dropped (the error was raised once)."""
        try:
            self._file.close()
        except OSError:
            if not self._failed:
                raise


@contextmanager
def atomic_file(path: Path, binary: bool = False) -> Iterator[IO[Any]]:
    """A file to write ``path`` through: a temp file beside it, synced and renamed over ``path`` on success
    (removed on failure), so readers and a kill at any moment only ever see a complete file."""
    with naming(path):
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb" if binary else "w") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o666 & ~_UMASK)  # mkstemp makes it private; results are for the whole group to read
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` atomically (:func:`atomic_file`)."""
    with atomic_file(path) as handle:
        json.dump(_jsonable(data), handle, indent=2)
        handle.write("\n")


def write_json_in_place(path: Path, data: dict[str, Any]) -> None:
    """Overwrite ``path`` with ``data`` as JSON in place: needs no more space than the old file held (for a full
    disk, where :func:`write_json_atomic` cannot work), but a kill mid-write would leave it cut."""
    with naming(path), path.open("r+" if path.exists() else "w") as handle:
        handle.truncate(0)
        json.dump(_jsonable(data), handle, indent=2)
        handle.write("\n")


def _jsonable(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings; numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def environment_versions() -> dict[str, str]:
    """Python and the installed versions of the packages a result depends on."""
    versions = {"python": sys.version.split()[0]}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    """The commit of the fedrl source tree, when it is a git checkout (``+dirty`` with local changes). git runs with
    an environment of its own (PATH only, no system or global config, no fsmonitor), so that nothing a run's config
    puts into the environment (``hydra.job.env_set``) can make it run a command."""
    source = Path(__file__).resolve().parent
    environment = {
        "PATH": os.environ.get("PATH", os.defpath),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    git = ["git", "-c", "core.fsmonitor=false", "-C", str(source)]
    try:
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, env=environment)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            env=environment,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
