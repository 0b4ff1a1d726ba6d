"""Checkpoints: all a run needs to continue exactly where it was, written so that the last good one survives a kill.

``checkpoint.pkl`` in the run dir holds two pickles: a small :class:`Header` (format, fedrl version, round,
elapsed seconds, the CSVs' byte sizes), read alone to check compatibility, then the experiment's state
(:meth:`Experiment.state`: numpy arrays and generators, and the project's own state classes). Reading one never
runs code from the file: the unpickler loads only the types it allows and refuses the file otherwise. Objects
that the config rebuilds exactly (a tabular MDP family) are not stored: the experiment names them in
``rebuilt()`` and loading plugs the fresh ones back in. The file is written to a temp file, synced and renamed
over the previous one, so at any moment the run dir holds one complete checkpoint.
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from fedrl_cli.errors import ResumeError
from fedrl_cli.metrics import atomic_file
from fedrl_cli.runs import config_leaves

FILE = "checkpoint.pkl"
# bump whenever what an experiment saves changes shape: older checkpoints are then refused with a clear error
FORMAT = 4


@dataclass(frozen=True)
class Header:
    """When the checkpoint was taken: after ``round``'s row was written, ``elapsed_s`` seconds into the run,
    with ``csv_bytes`` the sizes of the run's CSV files at that moment (rows after it are cut on resume), and
    ``event_bytes`` those of its TensorBoard event files."""

    round: int
    elapsed_s: float
    csv_bytes: dict[str, int]
    format: int = FORMAT
    fedrl: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # the run's config (empty in older checkpoints)
    event_bytes: dict[str, int] = field(default_factory=dict)  # sizes of the TensorBoard event files, by name


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


# everything a checkpoint may name: the project's own state classes, and numpy's arrays, scalars and generators;
# anything else (os.system, builtins.eval, torch's nested loaders, ...) is refused before it is looked up
_NUMPY = [
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("numpy.random.bit_generator", "SeedSequence"),
    *((f"numpy.{core}.{module}", name) for core in ("_core", "core") for module, name in (
        ("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"),
    )),
]  # fmt: skip
_PROJECT = [
    ("fedrl_cli.algos.common", "Channel"),
    ("fedrl_cli.algos.common", "GradientOracle"),
    ("fedrl_cli.algos.common", "StepSizeSchedule"),
    ("fedrl_cli.algos.fastfedpg", "FastFedPG"),
    ("fedrl_cli.algos.fedavg_pg", "FedAvgPG"),
    ("fedrl_cli.algos.local_pg", "LocalPG"),
    ("fedrl_cli.algos.fedsubspace_ac", "FedSubspaceAC"),
    ("fedrl_cli.envs.mujoco", "RunningMoments"),
]
ALLOWED = frozenset([*_NUMPY, *_PROJECT])


class _Refused(pickle.UnpicklingError):
    """The file names something a checkpoint never holds."""


PLAIN_KINDS = "biuf"  # booleans, integers and floats: all that a checkpoint's arrays hold


def _plain_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype(*args)`` for plain numbers only: an object dtype would let the file's bytes be read as
    pointers, and a structured one could hold objects, so both are refused before any array is built."""
    dtype = np.dtype(*args)
    if dtype.kind not in PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"it holds an array of dtype {dtype}, which a fedrl checkpoint never holds")
    return dtype


class _Unpickler(pickle.Unpickler):
    """Loads only what :data:`ALLOWED` names, so reading a checkpoint never runs code from the file. With
    ``rebuilt`` None it only checks the file (the rebuilt objects are left as None)."""

    def __init__(self, file: Any, rebuilt: dict[str, object] | None) -> None:
        super().__init__(file)
        self.rebuilt = rebuilt

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise _Refused(f"it names {module}.{name}, which a fedrl checkpoint never holds")
        return _plain_dtype if (module, name) == ("numpy", "dtype") else super().find_class(module, name)

    def persistent_load(self, name: str) -> object:
        return None if self.rebuilt is None else self.rebuilt[name]


def save(run_dir: Path, header: Header, state: Any, rebuilt: dict[str, object]) -> None:
    """Write ``header`` and ``state`` to ``run_dir/checkpoint.pkl`` atomically (temp file, fsync, rename)."""
    header = Header(
        header.round, header.elapsed_s, header.csv_bytes, FORMAT, _version(), header.config, header.event_bytes
    )
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
            header = Header(**_Unpickler(handle, None).load())
    except Exception as error:
        raise ResumeError(f"{path} is not a fedrl checkpoint this version can read ({type(error).__name__})") from None
    if header.format != FORMAT:
        raise ResumeError(
            f"{path} was written by fedrl {header.fedrl or '?'} in checkpoint format {header.format}; this fedrl "
            f"({_version()}) reads format {FORMAT}: resume it with that version, or start the run again"
        )
    try:
        load_state(run_dir, None)
    except Exception as error:
        reason = str(error) if isinstance(error, _Refused) else f"it is cut short or damaged ({error})"
        raise ResumeError(
            f"{path} cannot be loaded: {reason}; nothing was run. Start the run again (or restore the file)"
        ) from None
    return header


# where a run computes and how it shows progress: a resumed run may change them (they do not change its numbers)
LAUNCH_KEYS = ("backend", "workers", "ray_address", "overwrite", "progress")


def other_config(header: Header, config: dict[str, Any]) -> str | None:
    """Where the config that wrote a checkpoint (``header.config``) differs from ``config``, the run's own: the
    first differing key as ``key: checkpoint's value ≠ run's value``; None when it matches (keys that only the
    run's config has, from a newer config tree, and :data:`LAUNCH_KEYS` aside)."""

    if not isinstance(header.config, dict):
        return f"config: {type(header.config).__name__} in the checkpoint"
    theirs, ours = config_leaves(header.config), config_leaves(config if isinstance(config, dict) else {})
    for key, value in theirs.items():
        if key not in LAUNCH_KEYS and ours.get(key, value) != value:
            return f"{key}: {value!r} in the checkpoint, {ours[key]!r} in the run"
    return None


def last_round(run_dir: Path) -> int | None:
    """The round of ``run_dir``'s checkpoint, from its header alone; None when there is none it can read."""
    try:
        with (run_dir / FILE).open("rb") as handle:
            return int(_Unpickler(handle, None).load()["round"])
    except Exception:
        return None


def discard(run_dir: Path) -> None:
    """Remove ``run_dir``'s checkpoint: a run starting afresh must not be resumed from an earlier run's state."""
    (run_dir / FILE).unlink(missing_ok=True)


def load_state(run_dir: Path, rebuilt: dict[str, object] | None) -> Any:
    """The experiment state of ``run_dir``'s checkpoint, with the ``rebuilt`` objects plugged back in (None: only
    check that it loads). Only the types of :data:`ALLOWED` are loaded: a file naming anything else is refused."""
    with (run_dir / FILE).open("rb") as handle:
        _Unpickler(handle, None).load()  # the header, checked by read_header
        return _Unpickler(handle, rebuilt).load()
