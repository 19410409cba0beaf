"""The publishable marts, declared once, and every role's view of them, derived from the policy.

Each table in ``marts.*`` that may leave the lakehouse (``tapestry export``) or be shown (the
MASH picture) is declared in ``TABLES`` below: its kind, the agencies it draws on, and what
each column is (``Column.treat``). Nothing here names a role: who may have what, and in which
form, is asked of the sharing policy (``governance.policy.Policy.decide``) at run time, so a
change to ``governance/policy.yaml`` changes every export and view with it.

Kinds and the rules derived from the policy:

- ``aggregate``: an area table, already disclosure-controlled when it is published (counts 1-7
  suppressed, the rest rounded to 5, secondary suppression; ``governance.disclosure``). Not
  personal data. A role may have it when its level is at least ``aggregate`` for every agency
  the table draws on, for a purpose of the role. (A grant's purpose narrowing - e.g. probation
  data "for operational policing only" - limits the use of that agency's person-level data;
  published area tables carry none, so only the level and a purpose of the role are checked.)
- ``person``: pseudonymous person-level rows. Needs ``pseudonymous`` (or ``identifiable``) level
  for an agency *and* a purpose that agency's grant allows: ``decide(role, agency,
  "pseudonymous", purpose)``. A role that passes for no agency of the table is refused. Otherwise:

  * rows of an agency the role may not see are dropped (``treat="agency"``); a person row
    (``treat="agencies"``, the list of agencies that know the person) is kept when at least one
    of its agencies is visible, and the list keeps only visible agencies (``agency_count`` is
    recounted from it);
  * each detail value is ``decide(role, agency, field, purpose)`` for the agency it belongs to
    (the row's agency, or ``Column.agency``), with ``field`` the policy field it holds
    (``Column.fields``, else the column name): ``value`` keeps it, ``flag`` replaces it with
    ``Column.flag`` (a yes/no in words: the clinical detail is not shown), refused nulls it;
  * ``summary`` columns combine all the person's agencies (first/last event, indicator counts,
    link confidence): kept only when every agency of that person is visible to the role, since
    they would otherwise carry information from agencies it may not see; else null;
  * ``gateway`` columns are replaced by the legal gateway under which *this* role receives that
    agency's row (from the policy), not the one the mart was built with;
  * ``person`` and ``record`` columns are pseudonyms: exports replace them with recipient
    pseudonyms (``marts.export``), so two recipients' files cannot be joined.

Identifiers (names, dates of birth, addresses, reference numbers) are in no mart: they are only
ever shown through ``governance.reidentify``. ``validate`` refuses a declared column named as a
policy identifier.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import polars as pl

from governance.policy import PERSON_LEVELS, RANK, Decision, Policy, default_policy
from sources.registry import AGENCIES

SCHEMA = "marts"
KINDS = ("aggregate", "person")
# How a person-level table's column is treated by role views (see the module docstring).
TREATMENTS = ("person", "record", "agency", "agencies", "agency_count", "detail", "summary", "attribute",
              "gateway", "lineage", "published")
ALL_AGENCIES = tuple(a.name for a in AGENCIES)
PERSON_AGENCIES = tuple(a.name for a in AGENCIES if a.person_bearing)
HEALTH_FLAG = "recorded by the NHS (clinical detail for health professionals only)"


class CatalogError(ValueError):
    """The catalog does not fit the policy (a programming error, found by validate())."""


class MartMissing(LookupError):
    """A declared table or column is not in the lakehouse (yet)."""


@dataclass(frozen=True)
class Column:
    name: str
    treat: str = "detail"
    agency: str | None = None  # a detail of this agency (mash_person's per-agency columns)
    # agency -> the policy field this column holds in that agency's rows (default: the column name)
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    flag: str | None = None  # shown instead of the value where the policy gives a yes/no flag

    def field_for(self, agency: str) -> str:
        return self.fields.get(agency, self.name)


@dataclass(frozen=True)
class MartTable:
    name: str
    kind: str  # aggregate | person
    description: str
    agencies: tuple[str, ...]  # the agencies it draws on
    columns: tuple[Column, ...]
    order_by: tuple[str, ...] = ()  # row order of exports (a person column: by recipient, see marts.export)

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def _only(self, treat: str) -> str | None:
        found = [c.name for c in self.columns if c.treat == treat]
        return found[0] if found else None

    @property
    def person_column(self) -> str | None:
        return self._only("person")

    @property
    def agency_column(self) -> str | None:
        return self._only("agency")

    @property
    def agencies_column(self) -> str | None:
        return self._only("agencies")


def _published(*names: str) -> tuple[Column, ...]:
    return tuple(Column(n, "published") for n in names)


def _columns(spec: dict[str, str | Column]) -> tuple[Column, ...]:
    return tuple(c if isinstance(c, Column) else Column(name, c) for name, c in spec.items())


# NHS clinical detail in the person-level marts: the A&E attendance's injury intent, place and
# method (event_label), and an indicator and its reason drawn from it. They hold the policy's
# field-rule fields (condition text / code), so roles that are not health professionals see a
# flag in words instead (policy.yaml, field_rules.nhs_clinical_detail).
_NHS_TEXT = MappingProxyType({"nhs": "condition_text"})
_NHS_CODE = MappingProxyType({"nhs": "condition_code"})

TABLES: dict[str, MartTable] = {t.name: t for t in (
    MartTable(
        "area_risk", "aggregate",
        "Area risk measures per LSOA or local authority and month: published counts (null = suppressed), "
        "rate per 1,000 and IMD decile, after statistical disclosure control.",
        ALL_AGENCIES,
        _published("geography_level", "area_code", "area_name", "ward_code", "la_code", "la_name", "month",
                   "measure", "count", "status", "rate_per_1000", "imd_decile", "prev_12m_mean",
                   "change_vs_prev_12m_pct", "lake_snapshot_id"),
        ("geography_level", "la_code", "area_code", "month", "measure")),
    MartTable(
        "area_risk_index", "aggregate",
        "Composite area risk index per area and month, computed from the published rates only.",
        ALL_AGENCIES,
        _published("geography_level", "area_code", "area_name", "la_code", "month", "composite_index",
                   "components_published", "lake_snapshot_id"),
        ("geography_level", "la_code", "area_code", "month")),
    MartTable(
        "cohort_overlap", "aggregate",
        "How many people of each cohort and age band are known to 1, 2 or 3+ agencies, per local "
        "authority, after statistical disclosure control.",
        ALL_AGENCIES,
        _published("la_code", "la_name", "age_band", "cohort", "agencies_known", "count", "status",
                   "lake_snapshot_id"),
        ("la_code", "cohort", "age_band", "agencies_known")),
    MartTable(
        "mash_person", "person",
        "One row per linked person known to at least one agency: the agencies, open statuses per agency, "
        "indicator counts, first and last event, the weakest link confidence, coarse attributes.",
        PERSON_AGENCIES,
        _columns({
            "person_id": "person",
            "agencies": "agencies",
            "n_agencies": "agency_count",
            "open_cp_plan": Column("open_cp_plan", agency="childrens_social_care"),
            "cp_category": Column("cp_category", agency="childrens_social_care"),
            "child_in_need": Column("child_in_need", agency="childrens_social_care"),
            "mappa_category": Column("mappa_category", agency="probation"),
            "mappa_level": Column("mappa_level", agency="probation"),
            "rosh": Column("rosh", agency="probation"),
            "open_s42": Column("open_s42", agency="adult_social_care"),
            "victim_indicators": "summary",
            "perpetrator_indicators": "summary",
            "first_event": "summary",
            "last_event": "summary",
            "min_link_confidence": "summary",
            "birth_year": "attribute",
            "residence_lsoa_code": "attribute",
            "lake_snapshot_id": "lineage",
        }),
        ("person_id",)),
    MartTable(
        "mash_chronology", "person",
        "Every event of every linked person, across agencies, in date order, with its provenance "
        "(record, delivery, legal gateway) and the linkage's confidence.",
        PERSON_AGENCIES,
        _columns({
            "person_id": "person",
            "event_date": "detail",
            "agency": "agency",
            "entity": "detail",
            "event_type": "detail",
            "event_label": Column("event_label", fields=_NHS_TEXT, flag=HEALTH_FLAG),
            "person_role": "detail",
            "severity": "detail",
            "record_key": "record",
            "delivery_id": "lineage",
            "legal_gateway": "gateway",
            "match_confidence": "detail",
            "lake_snapshot_id": "lineage",
        }),
        ("person_id", "event_date", "agency", "record_key")),
    MartTable(
        "mash_indicators", "person",
        "Victim, perpetrator and vulnerability indicators per person, each with its plain-language reason "
        "and the record it comes from (no scores).",
        PERSON_AGENCIES,
        _columns({
            "person_id": "person",
            "side": "detail",
            "indicator": Column("indicator", fields=_NHS_CODE, flag="health_indicator"),
            "reason": Column("reason", fields=_NHS_TEXT, flag=HEALTH_FLAG),
            "agency": "agency",
            "event_date": "detail",
            "record_key": "record",
            "lake_snapshot_id": "lineage",
        }),
        ("person_id", "side", "event_date", "indicator", "record_key")),
)}


# -- access decisions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Access:
    """What `role` may have of `table` for `purpose`: allowed or not (with the reason), and for a
    person-level table the agencies whose data it sees, their gateways and each value's form."""

    table: MartTable
    role: str
    purpose: str | None
    allowed: bool
    reason: str  # plain language, for the user and the audit log; never personal data
    visible: tuple[str, ...] = ()  # agencies of the table whose rows/columns the role sees
    gateways: Mapping[str, str | None] = field(default_factory=dict)  # visible agency -> gateway
    # (column, agency) -> "value" | "flag" | None (null): only the cells that are not plain values
    forms: Mapping[tuple[str, str], str | None] = field(default_factory=dict)

    @property
    def hidden(self) -> tuple[str, ...]:
        return tuple(a for a in self.table.agencies if a not in self.visible) if self.allowed else self.table.agencies

    def form(self, column: str, agency: str) -> str | None:
        return self.forms.get((column, agency), "value") if agency in self.visible else None

    @property
    def flagged(self) -> list[str]:
        """'column (agency)' cells the role sees only as a flag."""
        return sorted(f"{c} ({a})" for (c, a), f in self.forms.items() if f == "flag" and a in self.visible)

    @property
    def withheld(self) -> list[str]:
        """Columns (or 'column (agency)' cells) the role sees as null."""
        out = {c.name for c in self.table.columns if c.agency and c.agency not in self.visible}
        out |= {f"{c} ({a})" for (c, a), f in self.forms.items() if f is None and a in self.visible}
        return sorted(out)

    def describe(self) -> str:
        """One line: what the role gets (for --list and the README)."""
        if not self.allowed:
            return f"refused: {self.reason}"
        if self.table.kind == "aggregate":
            return "whole table (published, disclosure-controlled)"
        parts = [f"rows of {', '.join(self.visible)}"]
        if self.flagged:
            parts.append(f"as flags: {', '.join(self.flagged)}")
        if self.withheld:
            parts.append(f"withheld: {', '.join(self.withheld)}")
        summaries = [c.name for c in self.table.columns if c.treat == "summary"]
        if summaries and self.hidden:
            parts.append(f"summary columns null where the person is also known to {', '.join(self.hidden)}")
        return "; ".join(parts)


def table(name: str) -> MartTable:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table '{name}' (tables: {', '.join(TABLES)})") from None


def access(role: str, table_name: str, purpose: str | None, policy: Policy | None = None) -> Access:
    """Decide what `role` may have of `table_name` for `purpose` (see the module docstring)."""
    policy = policy or default_policy()
    mart = table(table_name)
    if role not in policy.roles:
        return Access(mart, role, purpose, False, f"unknown role '{role}' (roles: {', '.join(policy.roles)})")
    role_purposes = sorted(policy.roles[role].purposes)
    if mart.kind == "person" and not any(policy.level(role, a) in PERSON_LEVELS for a in mart.agencies):
        return Access(mart, role, purpose, False,
                      f"{mart.qualified} is person-level and {role} has no person-level access to "
                      f"{', '.join(mart.agencies)} data")
    if not purpose:
        if mart.kind == "person":
            return Access(mart, role, purpose, False,
                          f"{mart.qualified} is person-level: state a purpose ({role} may act for "
                          f"{', '.join(role_purposes)})")
        if len(role_purposes) != 1:
            return Access(mart, role, purpose, False,
                          f"state a purpose ({role} may act for {', '.join(role_purposes)})")
        purpose = role_purposes[0]
    if purpose not in role_purposes:
        known = "" if purpose in policy.purposes else " (not a purpose in the policy)"
        return Access(mart, role, purpose, False,
                      f"{role} may not act for purpose '{purpose}'{known}; its purposes: {', '.join(role_purposes)}")
    if mart.kind == "aggregate":
        for agency in mart.agencies:
            if RANK[policy.level(role, agency)] < RANK["aggregate"]:
                return Access(mart, role, purpose, False,
                              f"{role} has no access to {agency} data, which {mart.qualified} draws on")
        return Access(mart, role, purpose, True,
                      f"{role} has at least aggregate access to every agency {mart.qualified} draws on")

    decisions = {a: policy.decide(role, a, "pseudonymous", purpose) for a in mart.agencies}
    visible = tuple(a for a, d in decisions.items() if d.allowed)
    if not visible:
        return Access(mart, role, purpose, False,
                      f"{mart.qualified} is person-level and no agency's person-level data is open to {role} "
                      f"for {purpose} ({_first_refusal(decisions)})")
    forms: dict[tuple[str, str], str | None] = {}
    for column in mart.columns:
        if column.treat != "detail":
            continue
        for agency in ([column.agency] if column.agency else visible):
            decision = policy.decide(role, agency, column.field_for(agency), purpose)
            form = decision.form if decision.allowed else None
            if form == "flag" and column.flag is None:
                form = None  # nothing declared to stand in for the value: withhold it
            if form != "value":
                forms[(column.name, agency)] = form
    gateways = {a: decisions[a].gateway for a in visible}
    hidden = [a for a in mart.agencies if a not in visible]
    reason = (f"{role} sees {', '.join(visible)} person-level data for {purpose}"
              + (f"; not {', '.join(hidden)}" if hidden else ""))
    return Access(mart, role, purpose, True, reason, visible, gateways, forms)


def _first_refusal(decisions: dict[str, Decision]) -> str:
    return next(d.reason for d in decisions.values() if not d.allowed)


def grants(role: str, policy: Policy | None = None) -> list[Access]:
    """Every table with the role's access: an aggregate table once (its access is the same for
    every purpose of the role), a person-level table per purpose of the role."""
    policy = policy or default_policy()
    purposes = sorted(policy.roles[role].purposes) if role in policy.roles else [None]
    return [access(role, mart.name, purpose, policy)
            for mart in TABLES.values()
            for purpose in (purposes[:1] if mart.kind == "aggregate" else purposes)]


def matrix(policy: Policy | None = None) -> list[tuple[str, str, str]]:
    """(role, table, what it gets) for every role and table: derived from the policy, never listed."""
    policy = policy or default_policy()
    rows = []
    for role in policy.roles:
        by_table: dict[str, list[Access]] = {}
        for view in grants(role, policy):
            by_table.setdefault(view.table.name, []).append(view)
        for name, views in by_table.items():
            allowed = [v for v in views if v.allowed]
            if not allowed:
                cell = "-"
            elif views[0].table.kind == "aggregate":
                cell = "yes"
            else:
                cell = " | ".join(f"{v.purpose}: {v.describe()}" for v in allowed)
            rows.append((role, name, cell))
    return rows


def require_in_lake(con, mart: MartTable) -> None:
    """Raise MartMissing unless the lakehouse holds `mart` with every declared column."""
    found = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ?", [SCHEMA, mart.name]).fetchall()}
    if not found:
        raise MartMissing(f"{mart.qualified} does not exist in the lakehouse yet (build the marts first)")
    missing = [c for c in mart.column_names if c not in found]
    if missing:
        raise MartMissing(f"{mart.qualified} lacks column(s) {', '.join(missing)} that the catalog declares")


# -- applying a view --------------------------------------------------------------------------
def row_filter_sql(view: Access) -> tuple[str, list]:
    """A WHERE clause (and its parameters) that keeps the rows the role may see."""
    mart = view.table
    if mart.kind == "aggregate":
        return "TRUE", []
    if mart.agency_column:
        return f'"{mart.agency_column}" IN (SELECT unnest(?::VARCHAR[]))', [list(view.visible)]
    if mart.agencies_column:
        return f'len(list_intersect("{mart.agencies_column}", ?::VARCHAR[])) > 0', [list(view.visible)]
    raise CatalogError(f"{mart.qualified}: a person-level table needs an agency or agencies column")


def apply_view(frame: pl.DataFrame, view: Access) -> pl.DataFrame:
    """The role's view of rows of ``view.table`` (already filtered with row_filter_sql, or not:
    rows the role may not see are dropped here too). Pseudonym columns are left as they are."""
    if not view.allowed:
        raise PermissionError(view.reason)
    mart = view.table
    if mart.kind == "aggregate":
        return frame.select(mart.column_names)
    visible = list(view.visible)
    row_agency = pl.col(mart.agency_column) if mart.agency_column else None
    if row_agency is not None:
        frame = frame.filter(row_agency.is_in(visible))
    all_visible = pl.lit(True)
    if mart.agencies_column:
        agencies = pl.col(mart.agencies_column)
        kept = agencies.list.eval(pl.element().filter(pl.element().is_in(visible)))
        all_visible = kept.list.len() == agencies.list.len()
        frame = frame.filter(kept.list.len() > 0)
    exprs = []
    for column in mart.columns:
        col = pl.col(column.name)
        if column.treat == "agencies":
            expr = col.list.eval(pl.element().filter(pl.element().is_in(visible)))
        elif column.treat == "agency_count":
            expr = pl.col(mart.agencies_column).list.eval(
                pl.element().filter(pl.element().is_in(visible))).list.len().cast(frame.schema[column.name])
        elif column.treat == "summary":
            expr = pl.when(all_visible).then(col)
        elif column.treat == "gateway" and row_agency is not None:
            expr = pl.lit(None, dtype=pl.String)
            for agency, gateway in view.gateways.items():
                expr = pl.when(row_agency == agency).then(pl.lit(gateway, dtype=pl.String)).otherwise(expr)
        elif column.treat == "detail" and column.agency:
            form = view.form(column.name, column.agency)
            expr = col if form == "value" else _stand_in(column, form, frame.schema[column.name])
        elif column.treat == "detail" and row_agency is not None:
            expr = col
            for agency in visible:
                form = view.form(column.name, agency)
                if form != "value":
                    expr = pl.when(row_agency == agency).then(
                        _stand_in(column, form, frame.schema[column.name])).otherwise(expr)
        else:
            expr = col
        exprs.append(expr.alias(column.name))
    return frame.select(exprs)


def _stand_in(column: Column, form: str | None, dtype: pl.DataType) -> pl.Expr:
    """What replaces a value the role may not see as recorded: the flag in words where the
    value is present, else null (nothing to flag)."""
    if form == "flag" and column.flag is not None:
        return pl.when(pl.col(column.name).is_not_null()).then(pl.lit(column.flag)).cast(dtype)
    return pl.lit(None, dtype=dtype)


# -- checks -----------------------------------------------------------------------------------
def validate(policy: Policy | None = None) -> list[str]:
    """Problems of the catalog against the policy (empty = fine). Run by the tests."""
    policy = policy or default_policy()
    problems = []
    for mart in TABLES.values():
        where = mart.qualified
        if mart.kind not in KINDS:
            problems.append(f"{where}: unknown kind '{mart.kind}'")
        for agency in mart.agencies:
            if agency not in policy.agencies:
                problems.append(f"{where}: agency '{agency}' is not in the policy")
        for column in mart.columns:
            if column.treat not in TREATMENTS:
                problems.append(f"{where}.{column.name}: unknown treatment '{column.treat}'")
            if column.name in policy.identifiers or any(f in policy.identifiers for f in column.fields.values()):
                problems.append(f"{where}.{column.name}: identifiers never go into a mart (only via reidentify)")
            if column.agency and column.agency not in mart.agencies:
                problems.append(f"{where}.{column.name}: agency '{column.agency}' is not one the table draws on")
            if mart.kind == "aggregate" and column.treat != "published":
                problems.append(f"{where}.{column.name}: aggregate tables hold published columns only")
            for agency in ([column.agency] if column.agency else mart.agencies):
                name = column.field_for(agency)
                flagged = any(r.agency == agency and name in r.fields and r.others_see == "flag"
                              for r in policy.field_rules.values())
                if flagged and column.flag is None:
                    problems.append(f"{where}.{column.name}: the policy flags {agency} '{column.field_for(agency)}' "
                                    "for some roles; declare the flag text")
        if mart.kind == "person":
            if mart.person_column is None:
                problems.append(f"{where}: a person-level table needs a person column")
            if (mart.agency_column is None) == (mart.agencies_column is None):
                problems.append(f"{where}: a person-level table needs exactly one of an agency or agencies column")
            if mart.agencies_column is None and any(c.treat in ("summary", "agency_count") for c in mart.columns):
                problems.append(f"{where}: summary and agency_count columns need an agencies column")
            for name in mart.order_by:
                if name not in mart.column_names:
                    problems.append(f"{where}: order_by names unknown column '{name}'")
            if any(c.treat == "detail" and not c.agency for c in mart.columns) and mart.agency_column is None:
                problems.append(f"{where}: detail columns need a row agency column or Column.agency")
    return problems
