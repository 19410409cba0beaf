"""What an agency package declares: its landing folder and how each entity's files are read."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

# File stem minus a trailing delivery tag that starts with a digit:
# occurrences_2025-03 -> occurrences, Patient_001 -> patient, assessment_factors_2025-Q1 -> assessment_factors
_DELIVERY_TAG = re.compile(r"_\d.*$")


def entity_of(path: Path) -> str:
    return _DELIVERY_TAG.sub("", Path(path).stem).lower()


@dataclass(frozen=True)
class Entity:
    name: str  # raw table is raw.<agency>__<name>
    suffix: str  # file extension delivered, e.g. ".csv"
    read: Callable[[Path], pl.DataFrame]
    description: str = ""


@dataclass(frozen=True)
class Agency:
    name: str  # landing folder name and table prefix
    title: str
    entities: tuple[Entity, ...]
    cadence: str | None = None  # cron for agencies that deliver on a schedule
    person_bearing: bool = True
    extra: dict = field(default_factory=dict)

    def entity_for(self, path: Path) -> Entity | None:
        name, suffix = entity_of(path), Path(path).suffix.lower()
        return next((e for e in self.entities if e.name == name and e.suffix == suffix), None)

    def table(self, entity: Entity) -> str:
        return f"raw.{self.name}__{entity.name}"

    def deliveries(self, landing: Path) -> list[Path]:
        """Files waiting in landing/<agency>/ in the order they arrived (modification time, then
        name), so that of two identical deliveries the later one is the duplicate. Hidden files
        (partial uploads) are ignored."""
        folder = Path(landing) / self.name
        if not folder.is_dir():
            return []
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))
