"""Finding run dirs and reading how each run ended, from its ``summary.json`` (no pandas, so it is quick)."""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# what a summary.json that is not an object holds, in JSON's words
JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false"}


@dataclass(frozen=True)
class Run:
    path: Path
    status: str
    error: str | None
    config: dict[str, Any]
    error_type: str | None = None


def config_leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config's leaves by dotted key: ``{"algo": {"lr": 0.1}}`` → ``{"algo.lr": 0.1}``."""
    items: dict[str, Any] = {}
    for key, value in tree.items():
        items.update(config_leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return items


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Every folder under ``paths`` (or a path itself) that holds a ``summary.json``, sorted."""
    found: set[Path] = set()
    for path in paths:
        if (path / "summary.json").is_file():
            found.add(path)
        found.update(summary.parent for summary in path.rglob("summary.json"))
    return sorted(found)


def read_regular(path: Path) -> bytes:
    """The bytes of ``path`` when it is a regular file (links followed); :class:`OSError` for anything else, which
    is never read: a FIFO would block, a device might never end."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            return handle.read()
    finally:
        os.close(descriptor)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir/summary.json`` as a dict; None when it is missing, not a regular file or not valid JSON."""
    try:
        return json.loads(read_regular(run_dir / "summary.json"))
    except (OSError, ValueError):
        return None


def read_run(path: Path) -> Run:
    """How the run in ``path`` ended; status ``unreadable`` (the reason in ``error``) when its ``summary.json`` is
    missing, not valid JSON or not a JSON object."""
    summary = read_summary(path)
    if summary is None:
        return Run(path, "unreadable", "summary.json is missing, not a regular file or not valid JSON", {})
    if not isinstance(summary, dict):
        held = JSON_TYPES.get(type(summary), type(summary).__name__)
        return Run(path, "unreadable", f"summary.json is not a JSON object (it holds {held})", {})
    config = summary.get("config")
    return Run(
        path,
        str(summary.get("status", "unknown")),
        summary.get("error"),
        config if isinstance(config, dict) else {},
        summary.get("error_type"),
    )
