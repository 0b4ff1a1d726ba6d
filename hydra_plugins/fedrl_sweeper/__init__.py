"""fedrl's Hydra sweeper: Hydra's basic sweeper, validating each kind of job once (see :class:`FedrlSweeper`)."""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.config_repository import IConfigRepository
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override


class FedrlSweeper(BasicSweeper):
    """Hydra's basic sweeper (same jobs, order and batches), except that before a batch runs it composes one job of
    each kind instead of every job. Two jobs are of one kind when they override the same keys and choose the same
    config group options (``algo=...``, ``env=...``): composition fails or succeeds on those alone (which keys exist,
    which options and defaults load), not on a key's value, which the run itself checks. A sweep over seeds or step
    sizes is validated by one composition, not one per job (about 0.3 s each)."""

    @staticmethod
    def _choice(override: Override, repository: IConfigRepository) -> str | None:
        """The option a config group override chooses; None for a key's value."""
        return override.get_value_element_as_str() if repository.group_exists(override.key_or_group) else None

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        loader = self.hydra_context.config_loader
        parser = OverridesParser.create(config_loader=loader)
        kinds: dict[tuple, Sequence[str]] = {}
        for overrides in batch:
            kind = tuple(
                (o.key_or_group, o.package, o.type, self._choice(o, loader.repository))
                for o in parser.parse_overrides(list(overrides))
            )
            kinds.setdefault(kind, overrides)
        super().validate_batch_is_legal(list(kinds.values()))
