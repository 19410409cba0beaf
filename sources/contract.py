"""Data contracts: declared once per agency entity, they drive reading (header check and
typing), validation (hard rules -> quarantine, soft rules -> warnings), the Great
Expectations suite (sources/expectations.py) and the documentation (`describe()`).

Validation is vectorised (polars expressions over the whole delivery). Reasons name the
column and the rule, never the value: rows hold personal data.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from sources.identifiers import VALIDATORS
from sources.readers import ExtractError

KINDS = {"text": pl.String, "date": pl.Date, "datetime": pl.Datetime("us"), "int": pl.Int64,
         "float": pl.Float64, "flag": pl.Boolean, "list": pl.List(pl.String)}
DUCKDB_TYPES = {"text": "VARCHAR", "date": "DATE", "datetime": "TIMESTAMP", "int": "BIGINT",
                "float": "DOUBLE", "flag": "BOOLEAN", "list": "VARCHAR[]"}
FLAG_VALUES = {"Y": True, "YES": True, "TRUE": True, "1": True, "N": False, "NO": False, "FALSE": False, "0": False}
LINEAGE = ("_delivery_id", "_file_name", "_file_sha256", "_row_number", "_ingested_at")


@dataclass(frozen=True)
class Column:
    source: str  # name as delivered
    name: str  # normalised name in raw
    kind: str = "text"
    required: bool = False  # hard: a value must be present
    optional_column: bool = False  # the header may lack it
    formats: tuple[str, ...] = ()  # date / datetime formats, tried in order
    codes: tuple[str, ...] | None = None  # allowed values (for lists: of each element)
    codes_hard: bool = False  # an unknown code quarantines the row (else a warning)
    identifier: str | None = None  # nhs_number | pnc_id | upn | crn: format + check digit
    identifier_hard: bool = False
    upper: bool = False  # compare codes / identifiers upper-cased
    personal: bool = False  # identifies a person: goes to the vault, never into raw (governance)
    key: bool = False  # an id in the source system: raw holds its keyed pseudonym, the vault the value
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column {self.source}: unknown kind {self.kind!r}")
        if self.kind in ("date", "datetime") and not self.formats:
            raise ValueError(f"column {self.source}: a {self.kind} needs formats")
        if self.identifier and self.identifier not in VALIDATORS:
            raise ValueError(f"column {self.source}: unknown identifier {self.identifier!r}")


@dataclass(frozen=True)
class Rule:
    id: str  # "<column>:<rule>", stable, used in quarantine and check metadata
    hard: bool
    reason: str  # readable, names the column and the rule, never a value


@dataclass(frozen=True)
class Validation:
    valid: pl.DataFrame  # typed rows that passed every hard rule, with _row_number and _warnings
    quarantined: pl.DataFrame  # _row_number, rules, reason, original_row (JSON of the row as delivered)
    rule_counts: dict[str, int]  # rule id -> rows breaking it
    rules: dict[str, Rule]
    extra_columns: tuple[str, ...]  # delivered columns the contract does not know (not loaded)

    @property
    def rows_read(self) -> int:
        return self.valid.height + self.quarantined.height


@dataclass(frozen=True)
class Contract:
    agency: str
    entity: str
    columns: tuple[Column, ...]
    record_id: str  # normalised name of the column that identifies a row in the source system
    person_id: str | None = None  # the agency's own person id column, if any
    description: str = ""
    unique_record_id: bool = True  # a repeated record id within a delivery is a hard error
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self):
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.agency}/{self.entity}: repeated column name")
        if self.record_id not in names:
            raise ValueError(f"{self.agency}/{self.entity}: record_id {self.record_id!r} is not a column")

    @property
    def table(self) -> str:
        return f"raw.{self.agency}__{self.entity}"

    @property
    def personal_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.personal)

    @property
    def person_bearing(self) -> bool:
        """Rows describe persons (identifiers, or an agency person id such as an Encounter's
        patient): identifiers and source ids are split off to the vault at ingestion."""
        return self.person_id is not None or any(c.personal for c in self.columns)

    def key_columns(self) -> dict[str, str]:
        """Columns replaced in raw by keyed pseudonyms: column -> pseudonym column name."""
        if not self.person_bearing:
            return {}
        out = {self.record_id: "record_key"}
        if self.person_id and self.person_id != self.record_id:
            out[self.person_id] = "person_key"
        for c in self.columns:
            if c.key and c.name not in out:
                out[c.name] = c.name.removesuffix("_id") + "_key"
        return out

    def vault_columns(self) -> tuple[str, ...]:
        """What the vault keeps (encrypted) for each row: identifiers and the clear ids."""
        keys = self.key_columns()
        return tuple(c.name for c in self.columns if c.personal or c.name in keys)

    def coarse_columns(self) -> dict[str, str]:
        """Coarse attributes raw keeps in place of identifiers (name -> DuckDB type), as the
        sharing policy's ``coarse_attributes`` says (governance/policy.yaml)."""
        from governance.policy import default_policy

        kept = default_policy().coarse_attributes
        personal = {c.name for c in self.columns if c.personal}
        names = {c.name for c in self.columns}
        out = {}
        if "date_of_birth" in personal and "birth_year" in kept.get("date_of_birth", ()):
            out["birth_year"] = "INTEGER"
        if "postcode" in personal:
            out |= {name: "VARCHAR" for name in kept.get("postcode", ())}
        if {"latitude", "longitude"} <= names and "lsoa_code" not in names and "lsoa_code" in kept.get(
                "event_location", ()):
            out["lsoa_code"] = "VARCHAR"
        return out

    def check_header(self, path: Path, header: list[str]) -> None:
        missing = [c.source for c in self.columns if not c.optional_column and c.source not in header]
        if missing:
            raise ExtractError(path, f"missing required column(s): {', '.join(missing)}", 1)

    def raw_ddl(self) -> str:
        """raw.<agency>__<entity>: pseudonymous content (identifiers are in the vault)."""
        removed = set(self.vault_columns())
        cols = [f'"{name}" VARCHAR' for name in self.key_columns().values()]
        cols += [f'"{c.name}" {DUCKDB_TYPES[c.kind]}' for c in self.columns if c.name not in removed]
        cols += [f'"{name}" {kind}' for name, kind in self.coarse_columns().items()]
        cols += ['"_warnings" VARCHAR[]', '"_delivery_id" VARCHAR NOT NULL', '"_file_name" VARCHAR NOT NULL',
                 '"_file_sha256" VARCHAR NOT NULL', '"_row_number" BIGINT NOT NULL',
                 '"_ingested_at" TIMESTAMP WITH TIME ZONE NOT NULL']
        return f"CREATE TABLE IF NOT EXISTS {self.table} ({', '.join(cols)})"

    def validate(self, delivered: pl.DataFrame) -> Validation:
        """Type and check a delivery (all-text columns as delivered, header already checked)."""
        extra = tuple(c for c in delivered.columns if c not in {col.source for col in self.columns})
        frame = delivered.with_row_index("_row_number", offset=1).with_columns(pl.col("_row_number").cast(pl.Int64))
        for col in self.columns:
            if col.source not in frame.columns:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(col.source))
        cleaned = {c.name: _clean(c) for c in self.columns}
        typed = {c.name: _typed(c, cleaned[c.name]) for c in self.columns}
        rules: dict[str, Rule] = {}
        failures: dict[str, pl.Expr] = {}

        def rule(col: Column, kind: str, hard: bool, reason: str, fails: pl.Expr) -> None:
            rule_id = f"{col.name}:{kind}"
            rules[rule_id] = Rule(rule_id, hard, f"{col.source}: {reason}")
            failures[rule_id] = fails.fill_null(False)

        for col in self.columns:
            present = cleaned[col.name].is_not_null()
            if col.required:
                rule(col, "required", True, "a value is required", ~present)
            if col.kind not in ("text", "list"):
                expected = f" (expected {' or '.join(col.formats)})" if col.formats else ""
                rule(col, "type", col.required, f"not a valid {col.kind}{expected}", present & typed[col.name].is_null())
            if col.codes is not None:
                allowed = list(col.codes)
                if col.kind == "list":
                    bad = typed[col.name].list.eval(~pl.element().is_in(allowed)).list.any()
                else:
                    bad = ~cleaned[col.name].is_in(allowed)
                rule(col, "code", col.codes_hard, "value not in the contract's code list", present & bad)
            if col.identifier:
                valid = VALIDATORS[col.identifier](cleaned[col.name])
                rule(col, "check_digit", col.identifier_hard,
                     f"not a valid {col.identifier.replace('_', ' ')} (format or check character)", present & ~valid)
        if self.unique_record_id:
            record = next(c for c in self.columns if c.name == self.record_id)
            key = cleaned[record.name]
            rule(record, "duplicate", True, "record id repeated in this delivery (later rows quarantined)",
                 key.is_not_null() & key.is_duplicated() & (pl.int_range(pl.len()).over(key) > 0))

        checked = frame.with_columns(
            *(expr.alias(f"__fail__{rid}") for rid, expr in failures.items()),
            *(typed[c.name].alias(f"__typed__{c.name}") for c in self.columns),
        )
        fail_cols = [f"__fail__{rid}" for rid in failures]
        hard_cols = [f"__fail__{rid}" for rid in failures if rules[rid].hard]
        soft_cols = [f"__fail__{rid}" for rid in failures if not rules[rid].hard]
        counts = checked.select(pl.col(c).sum() for c in fail_cols).row(0) if fail_cols else ()
        rule_counts = {rid: int(n) for rid, n in zip(failures, counts)}
        is_hard = pl.any_horizontal(hard_cols) if hard_cols else pl.lit(False)
        broken = lambda cols: pl.concat_list(  # noqa: E731 - names of the rules a row breaks
            [pl.when(pl.col(c)).then(pl.lit(c.removeprefix("__fail__"))) for c in cols]).list.drop_nulls()

        valid = checked.filter(~is_hard).select(
            *(pl.col(f"__typed__{c.name}").alias(c.name) for c in self.columns),
            (broken(soft_cols) if soft_cols else pl.lit([], dtype=pl.List(pl.String))).alias("_warnings"),
            "_row_number",
        )
        delivered_cols = [c for c in delivered.columns]
        quarantined = checked.filter(is_hard).select(
            "_row_number",
            broken(hard_cols).alias("rules") if hard_cols else pl.lit([], dtype=pl.List(pl.String)).alias("rules"),
            pl.struct(delivered_cols).struct.json_encode().alias("original_row") if delivered_cols
            else pl.lit("{}").alias("original_row"),
        )
        reasons = {rid: r.reason for rid, r in rules.items()}
        quarantined = quarantined.with_columns(
            pl.col("rules").list.eval(pl.element().replace_strict(reasons, default=None)).list.join("; ").alias("reason")
        ).select("_row_number", "rules", "reason", "original_row")
        return Validation(valid, quarantined, rule_counts, rules, extra)

    def describe(self) -> str:
        """Markdown documentation of the contract (for the README / docs)."""
        lines = [f"### {self.agency} / {self.entity} → `{self.table}`", "", self.description, "",
                 "| delivered column | raw column | type | rules |", "|---|---|---|---|"]
        for c in self.columns:
            rules = []
            if c.required:
                rules.append("required (hard)")
            if c.optional_column:
                rules.append("column optional")
            if c.formats:
                rules.append("format " + " or ".join(f"`{f}`" for f in c.formats))
            if c.codes is not None:
                shown = ", ".join(c.codes[:12]) + (" …" if len(c.codes) > 12 else "")
                rules.append(f"codes {shown} ({'hard' if c.codes_hard else 'soft'})")
            if c.identifier:
                rules.append(f"{c.identifier} check ({'hard' if c.identifier_hard else 'soft'})")
            if c.personal:
                rules.append("identifier → vault")
            lines.append(f"| {c.source} | {c.name} | {c.kind} | {'; '.join(rules)} |")
        lines += ["", f"Record id: `{self.record_id}`" + (f"; person id: `{self.person_id}`" if self.person_id else ""), ""]
        return "\n".join(lines + list(self.notes))


def _clean(col: Column) -> pl.Expr:
    """Trimmed text, empty -> null, upper-cased where the contract says so."""
    expr = pl.col(col.source).cast(pl.String).str.strip_chars()
    expr = pl.when(expr == "").then(None).otherwise(expr)
    return expr.str.to_uppercase() if col.upper else expr


def _typed(col: Column, text: pl.Expr) -> pl.Expr:
    if col.kind == "text":
        return text
    if col.kind == "date":
        return pl.coalesce([text.str.strptime(pl.Date, f, strict=False, exact=True) for f in col.formats])
    if col.kind == "datetime":
        return pl.coalesce([text.str.strptime(pl.Datetime("us"), f, strict=False, exact=True) for f in col.formats])
    if col.kind == "int":
        return text.cast(pl.Int64, strict=False)
    if col.kind == "float":
        return text.cast(pl.Float64, strict=False)
    if col.kind == "flag":
        return text.str.to_uppercase().replace_strict(FLAG_VALUES, default=None, return_dtype=pl.Boolean)
    return text.str.json_decode(pl.List(pl.String))  # list: delivered as JSON text
