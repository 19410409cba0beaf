"""Great Expectations suites derived from the contracts (one place declares the rules: the
contract). Run on each delivery as delivered (text), through GX's pandas datasource in an
ephemeral context (GX 1.x has no working DuckDB datasource). Results are counts per
expectation: never values.
"""
from __future__ import annotations

import os
from functools import lru_cache

import polars as pl

from sources.contract import Contract

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

_STRFTIME_TO_REGEX = {"%Y": r"\d{4}", "%m": r"\d{2}", "%d": r"\d{2}", "%H": r"\d{2}", "%M": r"\d{2}",
                      "%S": r"\d{2}", "%.f": r"\.\d+", "T": "T", "Z": "Z"}


def _format_regex(formats: tuple[str, ...]) -> str:
    alternatives = []
    for fmt in formats:
        out, i = "", 0
        while i < len(fmt):
            token = fmt[i:i + 3] if fmt[i:i + 3] == "%.f" else fmt[i:i + 2] if fmt[i] == "%" else fmt[i]
            out += _STRFTIME_TO_REGEX.get(token, "\\" + token if token in "./-: " else token)
            i += len(token)
        alternatives.append(out)
    return "^(?:" + "|".join(alternatives) + ")$"


@lru_cache(maxsize=None)
def suite_for(contract: Contract):
    """The GX ExpectationSuite for a contract."""
    import great_expectations as gx  # lazy: importing GX takes seconds

    suite = gx.ExpectationSuite(name=f"{contract.agency}.{contract.entity}")
    for col in contract.columns:
        if not col.optional_column:
            suite.add_expectation(gx.expectations.ExpectColumnToExist(column=col.source))
        if col.required:
            suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=col.source))
        if col.formats:
            suite.add_expectation(gx.expectations.ExpectColumnValuesToMatchRegex(
                column=col.source, regex=_format_regex(col.formats)))
        if col.codes is not None and col.kind != "list":
            values = list(col.codes) + ([c.lower() for c in col.codes] + [c.title() for c in col.codes] if col.upper else [])
            suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column=col.source, value_set=values))
        if col.identifier == "nhs_number":
            suite.add_expectation(gx.expectations.ExpectColumnValuesToMatchRegex(column=col.source, regex=r"^\d{10}$"))
        if col.identifier == "pnc_id":
            suite.add_expectation(gx.expectations.ExpectColumnValuesToMatchRegex(
                column=col.source, regex=r"^\d{2}/\d{1,7}[A-Za-z]$"))
        if col.identifier == "upn":
            suite.add_expectation(gx.expectations.ExpectColumnValuesToMatchRegex(
                column=col.source, regex=r"^[A-Za-z]\d{12}$"))
    if contract.unique_record_id:
        source = next(c.source for c in contract.columns if c.name == contract.record_id)
        suite.add_expectation(gx.expectations.ExpectColumnValuesToBeUnique(column=source))
    return suite


@lru_cache(maxsize=1)
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # no bars in logs
    return context


def validate_delivery(contract: Contract, delivered: pl.DataFrame) -> list[dict]:
    """Run the contract's suite on one delivery; one summary dict per expectation."""
    context = _context()
    name = f"{contract.agency}__{contract.entity}"
    try:
        source = context.data_sources.get(name)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(name)
    try:
        asset = source.get_asset("delivery")
    except (LookupError, ValueError):
        asset = source.add_dataframe_asset(name="delivery")
    try:
        batch_def = asset.get_batch_definition("whole")
    except (KeyError, ValueError, LookupError):
        batch_def = asset.add_batch_definition_whole_dataframe("whole")
    # Empty strings are missing values, as the contract treats them.
    frame = delivered.with_columns(pl.all().cast(pl.String).str.strip_chars().replace("", None)).to_pandas()
    batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite_for(contract))
    summaries = []
    for r in result.results:
        config = r.expectation_config
        summaries.append({
            "expectation": config.type,
            "column": config.kwargs.get("column"),
            "success": bool(r.success),
            "unexpected": int((r.result or {}).get("unexpected_count") or 0),
            "checked": int((r.result or {}).get("element_count") or len(frame)),
        })
    return summaries


class ExpectationBatches:
    """Runs the suites over every delivery of a run, batched per entity (GX has a fixed cost per
    validation, so deliveries are concatenated up to `max_rows` before a suite runs)."""

    def __init__(self, max_rows: int = 500_000):
        self.max_rows = max_rows
        self.pending: dict[str, tuple[Contract, list[pl.DataFrame]]] = {}
        self.summaries: dict[str, list[dict]] = {}
        self.deliveries = 0
        self.rows = 0

    def add(self, entity, delivered: pl.DataFrame, delivery_id: str) -> None:
        contract, frames = self.pending.setdefault(entity.name, (entity.contract, []))
        frames.append(delivered)
        self.deliveries += 1
        self.rows += delivered.height
        if sum(f.height for f in frames) >= self.max_rows:
            self._run(entity.name)

    def flush(self) -> None:
        for name in list(self.pending):
            self._run(name)

    def _run(self, name: str) -> None:
        contract, frames = self.pending.pop(name)
        batch = pl.concat(frames, how="diagonal_relaxed")
        self.summaries.setdefault(name, []).extend(validate_delivery(contract, batch))
