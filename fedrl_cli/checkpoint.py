"""Checkpoints: all a run needs to continue exactly where it was, written so that the last good one survives a kill.

``checkpoint.pkl`` in the run dir holds two pickles: a small :class:`Header` (format, fedrl version, round,
elapsed seconds, the CSVs' byte sizes), read alone to check compatibility, then the experiment's state
(:meth:`Experiment.state`). Objects that the config rebuilds exactly (a tabular MDP family) are not stored: the
experiment names them in ``rebuilt()`` and loading plugs the fresh ones back in. The file is written to a temp
file, synced and renamed over the previous one, so at any moment the run dir holds one complete checkpoint.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from fedrl_cli.errors import ResumeError
from fedrl_cli.metrics import atomic_file

FILE = "checkpoint.pkl"
# bump whenever what an experiment saves changes shape: older checkpoints are then refused with a clear error
FORMAT = 2


@dataclass(frozen=True)
class Header:
    """When the checkpoint was taken: after ``round``'s row was written, ``elapsed_s`` seconds into the run,
    with ``csv_bytes`` the sizes of the run's CSV files at that moment (rows after it are cut on resume)."""

    round: int
    elapsed_s: float
    csv_bytes: dict[str, int]
    format: int = FORMAT
    fedrl: str = ""


def _version() -> str:
    try:
        return metadata.version("fedrl")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, rebuilt: dict[str, object]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.names = {id(value): name for name, value in rebuilt.items()}

    def persistent_id(self, obj: object) -> str | None:
        return self.names.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, rebuilt: dict[str, object]) -> None:
        super().__init__(file)
        self.rebuilt = rebuilt

    def persistent_load(self, name: str) -> object:
        return self.rebuilt[name]


def save(run_dir: Path, header: Header, state: Any, rebuilt: dict[str, object]) -> None:
    """Write ``header`` and ``state`` to ``run_dir/checkpoint.pkl`` atomically (temp file, fsync, rename)."""
    header = Header(header.round, header.elapsed_s, header.csv_bytes, FORMAT, _version())
    with atomic_file(run_dir / FILE, binary=True) as handle:
        pickle.dump(asdict(header), handle, protocol=pickle.HIGHEST_PROTOCOL)
        _Pickler(handle, rebuilt).dump(state)


def read_header(run_dir: Path) -> Header | None:
    """The header of ``run_dir``'s checkpoint, None when it has none; :class:`ResumeError` when it cannot be
    used by this version of fedrl."""
    path = run_dir / FILE
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            header = Header(**pickle.load(handle))
    except Exception as error:
        raise ResumeError(f"{path} is not a fedrl checkpoint this version can read ({type(error).__name__})") from None
    if header.format != FORMAT:
        raise ResumeError(
            f"{path} was written by fedrl {header.fedrl or '?'} in checkpoint format {header.format}; this fedrl "
            f"({_version()}) reads format {FORMAT}: resume it with that version, or start the run again"
        )
    return header


def discard(run_dir: Path) -> None:
    """Remove ``run_dir``'s checkpoint: a run starting afresh must not be resumed from an earlier run's state."""
    (run_dir / FILE).unlink(missing_ok=True)


def load_state(run_dir: Path, rebuilt: dict[str, object]) -> Any:
    """The experiment state of ``run_dir``'s checkpoint, with the ``rebuilt`` objects plugged back in."""
    with (run_dir / FILE).open("rb") as handle:
        pickle.load(handle)  # the header, checked by read_header
        return _Unpickler(handle, rebuilt).load()
