"""Finding run dirs and reading how each run ended, from its ``summary.json`` (no pandas, so it is quick)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Run:
    path: Path
    status: str
    error: str | None
    config: dict[str, Any]
    error_type: str | None = None


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Every folder under ``paths`` (or a path itself) that holds a ``summary.json``, sorted."""
    found: set[Path] = set()
    for path in paths:
        if (path / "summary.json").is_file():
            found.add(path)
        found.update(summary.parent for summary in path.rglob("summary.json"))
    return sorted(found)


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """``run_dir/summary.json`` as a dict; None when it is missing or not valid JSON."""
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def read_run(path: Path) -> Run:
    summary = read_summary(path)
    if summary is None:
        return Run(path, "unreadable", "summary.json is missing or not valid JSON", {})
    return Run(
        path,
        summary.get("status", "unknown"),
        summary.get("error"),
        summary.get("config") or {},
        summary.get("error_type"),
    )
