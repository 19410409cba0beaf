"""Deliveries as Dagster partitions: one dynamic partition per delivered file name, per agency.

The landing sensor, the daily schedules and `tapestry run` all plan the same way: register the
files waiting in landing/<agency>/ as partitions, then request ONE run of that agency's ingest
job over the range of those partitions (the raw assets use a single-run backfill policy).
Re-materialising a single partition from the UI re-tries that delivery (e.g. after a fix,
from the rejected area).
"""
from __future__ import annotations

import hashlib

import dagster as dg

from sources.agency import Agency
from sources.registry import AGENCIES
from tapestry.config import Settings

PARTITIONS = {a.name: dg.DynamicPartitionsDefinition(name=f"{a.name}_deliveries") for a in AGENCIES}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def ingest_job_name(agency: Agency) -> str:
    return f"ingest_{agency.name}"


def plan_run(instance: dg.DagsterInstance, agency: Agency, settings: Settings) -> dict[str, str] | None:
    """Register the agency's waiting files as partitions; return the run tags covering them."""
    waiting = [p.name for p in agency.deliveries(settings.landing)]
    if not waiting:
        return None
    name = PARTITIONS[agency.name].name
    known = instance.get_dynamic_partitions(name)
    new = [f for f in waiting if f not in set(known)]
    if new:
        instance.add_dynamic_partitions(name, new)
        known = known + new
    position = {key: i for i, key in enumerate(known)}
    ordered = sorted(waiting, key=position.__getitem__)
    return {RANGE_START: ordered[0], RANGE_END: ordered[-1]}


def run_key(agency: Agency, settings: Settings) -> str:
    prints = "\n".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in agency.deliveries(settings.landing))
    return f"{agency.name}:{hashlib.sha256(prints.encode()).hexdigest()[:16]}"
