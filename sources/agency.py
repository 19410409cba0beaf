"""What an agency package declares: its landing folder and, per entity, how files are
recognised, read and checked (the contract)."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sources.contract import Contract

# File stem minus a trailing delivery tag that starts with a digit:
# occurrences_2025-03 -> occurrences, Patient_001 -> patient, assessment_factors_2025-Q1 -> assessment_factors
_DELIVERY_TAG = re.compile(r"_\d.*$")


def entity_of(path: Path) -> str:
    return _DELIVERY_TAG.sub("", Path(path).stem).lower()


@dataclass(frozen=True)
class Entity:
    contract: Contract
    suffix: str  # file extension delivered, e.g. ".csv"
    read: Callable[[Path], pl.DataFrame]  # the delivered file as text columns
    pattern: str | None = None  # a file-name regex, when names do not follow <entity>_<tag><suffix>

    @property
    def name(self) -> str:
        return self.contract.entity

    def matches(self, path: Path) -> bool:
        path = Path(path)
        if self.pattern:
            return re.fullmatch(self.pattern, path.name, flags=re.IGNORECASE) is not None
        return entity_of(path) == self.name and path.suffix.lower() == self.suffix

    @property
    def file_pattern(self) -> str:
        return self.pattern or f"{self.name}_<tag>{self.suffix}"


@dataclass(frozen=True)
class Agency:
    name: str  # landing folder name and table prefix
    title: str
    entities: tuple[Entity, ...]
    cadence: str | None = None  # cron for agencies that deliver on a schedule

    def entity_for(self, path: Path) -> Entity | None:
        return next((e for e in self.entities if e.matches(path)), None)

    @property
    def person_bearing(self) -> bool:
        """Some extract describes persons (derived from the contracts, not declared twice)."""
        return any(e.contract.person_bearing for e in self.entities)

    @property
    def quarantine_table(self) -> str:
        return f"quarantine.{self.name}"

    def deliveries(self, landing: Path) -> list[Path]:
        """Files waiting in landing/<agency>/ in the order they arrived (modification time, then
        name), so that of two identical deliveries the later one is the duplicate. Hidden files
        (partial uploads) are ignored."""
        folder = Path(landing) / self.name
        if not folder.is_dir():
            return []
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))
