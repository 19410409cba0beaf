"""The MASH picture of one person: what every agency the viewer may see knows, in one place.

    picture = mash_picture(settings, "p-3f2a...", "safeguarding_lead", "safeguarding_assessment",
                           "MASH-2025-0042", actor="alice")
    print(picture.to_text())        # or json.dumps(picture.to_dict())

For a safeguarding lead deciding what happens next for a child or adult at risk:

- **header**: the agencies that know the person, what is open (child protection plan, child in
  need, MAPPA, risk of serious harm, s42 enquiry), how sure the linkage is (the weakest link of
  the records shown), first and last event, coarse attributes (birth year, home LSOA);
- **indicators** grouped victim / perpetrator / vulnerability (kept apart, never a score), each
  with its plain-language reason and provenance: agency, date, delivery, and the legal gateway
  under which *this role* receives that agency's data;
- **chronology**: every visible event in date order.

Everything comes through the role's view of the marts (``marts.catalog``): rows of agencies
the role may not see are absent, NHS clinical detail is a flag for roles that are not health
professionals, and cross-agency figures are computed from the visible rows only. The picture
shows no names: with ``identify=True`` the identity comes only from
``governance.reidentify`` (which refuses roles without identifiable level, and audits itself),
for the latest few records per agency the role may re-identify.

Every call is audited (action ``mash.view``, case reference required) before anything is
returned; a refusal is audited as ``denied: <reason>``.
"""
from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from governance import audit
from governance.identities import CANONICAL
from governance.keys import Keyring
from governance.policy import Policy, default_policy
from governance.reidentify import MAX_RECORDS, AccessDenied, reidentify
from marts import catalog
from marts.catalog import Access
from tapestry import lakehouse
from tapestry.config import Settings

ACTION = "mash.view"
DEFAULT_ROLE = "safeguarding_lead"
SIDES = ("victim", "perpetrator", "vulnerability")
IDENTIFY_PER_AGENCY = 3  # re-identify the latest records of each agency: enough to name, no more
# Plain-language labels for mash_person's per-agency status columns (shown when not null).
STATUS_LABELS = {
    "open_cp_plan": "open child protection plan", "cp_category": "child protection category",
    "child_in_need": "child in need", "mappa_category": "MAPPA category", "mappa_level": "MAPPA level",
    "rosh": "risk of serious harm (OASys)", "open_s42": "open section 42 enquiry",
}
_TABLES = ("mash_person", "mash_chronology", "mash_indicators")


class MashError(Exception):
    """The picture could not be made (bad input, nothing visible, marts missing). No personal data."""


class MashRefused(MashError):
    """The policy does not allow it (audited as denied)."""


@dataclass
class MashPicture:
    person_id: str
    role: str
    purpose: str
    case_ref: str
    snapshot_id: int
    header: dict
    indicators: dict[str, list[dict]]
    chronology: list[dict]
    not_visible_to_role: tuple[str, ...]  # agencies the policy keeps from this role (not about the person)
    identities: list[dict] | None = None
    gateways: dict[str, str] = field(default_factory=dict)  # gateway name -> title, for the text

    @property
    def rows_shown(self) -> int:
        return 1 + sum(len(v) for v in self.indicators.values()) + len(self.chronology)

    def to_dict(self) -> dict:
        return _jsonable({
            "person_id": self.person_id, "role": self.role, "purpose": self.purpose, "case_ref": self.case_ref,
            "lake_snapshot_id": self.snapshot_id, "not_visible_to_role": list(self.not_visible_to_role),
            "header": self.header, "indicators": self.indicators, "chronology": self.chronology,
            "identities": self.identities, "legal_gateways": self.gateways})

    def to_text(self) -> str:
        return _render(self)


def mash_picture(
    settings: Settings,
    person_id: str,
    role: str,
    purpose: str,
    case_ref: str,
    identify: bool = False,
    *,
    actor: str | None = None,
    policy: Policy | None = None,
    keyring: Keyring | None = None,
) -> MashPicture:
    """The role's MASH picture of `person_id` (see the module docstring)."""
    policy = policy or default_policy()
    actor = actor or getpass.getuser()
    person_id = (person_id or "").strip()
    case_ref = (case_ref or "").strip()
    obj = f"{catalog.SCHEMA}.mash_person[{person_id}]"

    def log(outcome: str, rows: int, what: str = obj) -> None:
        with lakehouse.connect(settings) as con:
            audit.record(con, actor=actor, role=role, purpose=purpose or None, case_ref=case_ref or None,
                         action=ACTION, object=what, row_count=rows, outcome=outcome, settings=settings)

    def refuse(reason: str) -> MashRefused:
        log(f"denied: {reason}", 0)
        return MashRefused(f"MASH view refused: {reason}")

    if not case_ref:
        raise refuse("a case reference is required")
    if not purpose:
        raise refuse("a purpose is required")
    if not person_id:
        raise refuse("no person id given")
    views = {name: catalog.access(role, name, purpose, policy) for name in _TABLES}
    refused = next((v for v in views.values() if not v.allowed), None)
    if refused is not None:
        raise refuse(refused.reason)

    try:
        snapshot, frames = _read(settings, person_id, views)
    except MashError as exc:
        log(f"error: {exc}", 0)
        raise
    if frames["mash_person"].is_empty():
        log("allowed: nothing visible", 0, obj + f"@{snapshot}")
        raise MashError(f"no person with that id has records visible to role '{role}' for {purpose}")

    picture = _picture(person_id, role, purpose, case_ref, snapshot, views, frames, policy)
    if identify:
        try:
            picture.identities = _identify(settings, actor, role, purpose, case_ref, frames["mash_chronology"],
                                           policy, keyring)
        except AccessDenied as exc:  # reidentify audited the refusal itself
            log(f"denied: {exc}", 0, obj + f"@{snapshot}")
            raise MashRefused(str(exc)) from None
    log("allowed" + ("; identified" if identify else ""), picture.rows_shown, obj + f"@{snapshot}")
    return picture


# -- reading --------------------------------------------------------------------------------------
def _read(settings: Settings, person_id: str, views: dict[str, Access]) -> tuple[int, dict[str, pl.DataFrame]]:
    """The person's rows of the three marts at one snapshot, through each role view."""
    frames = {}
    try:
        with lakehouse.connect(settings, read_only=True) as con:
            snapshot = lakehouse.current_snapshot(con)
            for name, view in views.items():
                mart = view.table
                catalog.require_in_lake(con, mart)
                where, params = catalog.row_filter_sql(view)
                columns = ", ".join(f'"{c}"' for c in mart.column_names)
                frame = con.execute(
                    f"SELECT {columns} FROM {mart.qualified} AT (VERSION => {int(snapshot)}) "
                    f'WHERE "{mart.person_column}" = ? AND {where}', [person_id, *params]).pl()
                frames[name] = catalog.apply_view(frame, view)
    except (lakehouse.LakehouseError, catalog.MartMissing) as exc:
        raise MashError(str(exc)) from None
    return snapshot, frames


# -- building the picture -------------------------------------------------------------------------
def _picture(person_id, role, purpose, case_ref, snapshot, views, frames, policy: Policy) -> MashPicture:
    person = frames["mash_person"].row(0, named=True)
    chronology = frames["mash_chronology"].sort("event_date", "agency", "record_key", nulls_last=True)
    indicators = frames["mash_indicators"]
    view = views["mash_chronology"]
    gateway_of = dict(view.gateways)

    statuses = []
    for column in catalog.TABLES["mash_person"].columns:
        value = person.get(column.name)
        if column.agency and value is not None and value is not False:
            statuses.append({"agency": column.agency, "status": STATUS_LABELS.get(column.name, column.name),
                             "value": value})
    links = chronology.filter(pl.col("match_confidence").is_not_null())
    weakest = links.sort("match_confidence").row(0, named=True) if links.height else None
    header = {
        "agencies": person["agencies"], "n_agencies": person["n_agencies"], "open": statuses,
        "link_confidence": None if weakest is None else {
            "weakest": weakest["match_confidence"], "agency": weakest["agency"],
            "records": links.height},
        "first_event": chronology["event_date"].min() if chronology.height else None,
        "last_event": chronology["event_date"].max() if chronology.height else None,
        "indicator_counts": {side: indicators.filter(pl.col("side") == side).height for side in SIDES},
        "birth_year": person["birth_year"], "residence_lsoa_code": person["residence_lsoa_code"],
    }

    provenance = (chronology.select("record_key", "agency", "delivery_id")
                  .unique(["record_key", "agency"], keep="first", maintain_order=True))
    grouped: dict[str, list[dict]] = {side: [] for side in SIDES}
    for row in (indicators.join(provenance, on=["record_key", "agency"], how="left")
                .sort("event_date", "indicator", nulls_last=True).iter_rows(named=True)):
        side = row["side"] if row["side"] in grouped else "vulnerability"
        grouped.setdefault(side, []).append({
            "indicator": row["indicator"], "reason": row["reason"], "agency": row["agency"],
            "event_date": row["event_date"], "delivery_id": row["delivery_id"],
            "legal_gateway": gateway_of.get(row["agency"]), "record_key": row["record_key"]})
    events = [{k: row[k] for k in ("event_date", "agency", "entity", "event_type", "event_label", "person_role",
                                   "severity", "match_confidence", "delivery_id", "legal_gateway", "record_key")}
              for row in chronology.iter_rows(named=True)]
    used = {e["legal_gateway"] for e in events} | {i["legal_gateway"] for v in grouped.values() for i in v}
    return MashPicture(person_id, role, purpose, case_ref, snapshot, header, grouped, events, view.hidden,
                       gateways={g: policy.gateways[g].title for g in sorted(used - {None}) if g in policy.gateways})


def _identify(settings, actor, role, purpose, case_ref, chronology: pl.DataFrame, policy: Policy,
              keyring: Keyring | None) -> list[dict]:
    """Names for the picture, only through governance.reidentify (which audits and may refuse).

    The latest IDENTIFY_PER_AGENCY records of each agency the role may re-identify for the
    purpose. When there are none, the visible records are asked for anyway, so that
    reidentify itself refuses - and audits - with the policy's reason."""
    records = chronology.filter(pl.col("record_key").is_not_null()).sort("event_date", descending=True,
                                                                          nulls_last=True)
    identifiable = policy.agencies_for(role, "identifiable", purpose)
    wanted = (records.filter(pl.col("agency").is_in(identifiable))
              .unique("record_key", keep="first", maintain_order=True)
              .group_by("agency", maintain_order=True).head(IDENTIFY_PER_AGENCY))
    if wanted.is_empty():
        wanted = records.unique("record_key", keep="first", maintain_order=True).head(MAX_RECORDS)
    keys = wanted["record_key"].to_list()
    with lakehouse.connect(settings) as con:
        found = reidentify(settings, actor, role, purpose, case_ref, keys, policy=policy, keyring=keyring, con=con)
    fields = [c for c in CANONICAL if c in found.columns]
    identities = []
    for row in found.iter_rows(named=True):
        values = {CANONICAL[c]: row[c] for c in fields if row[c] not in (None, "")}
        identities.append({"agency": row["agency"], "record_key": row["record_key"],
                           "delivery_id": row["delivery_id"], "vault_status": row["vault_status"], **values})
    order = {k: i for i, k in enumerate(keys)}
    return sorted(identities, key=lambda r: order.get(r["record_key"], len(order)))


# -- output ---------------------------------------------------------------------------------------
def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def _text(value) -> str:
    if value is None:
        return "-"
    if value is True:
        return "yes"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _render(p: MashPicture) -> str:
    h = p.header
    lines = [f"MASH picture - person {p.person_id}",
             f"role {p.role}, purpose {p.purpose}, case {p.case_ref}, lakehouse snapshot {p.snapshot_id}"]
    if p.not_visible_to_role:
        lines.append(f"not shown to this role by the sharing policy: {', '.join(p.not_visible_to_role)} data")
    lines += ["", "KNOWN TO", f"  {', '.join(h['agencies'])} ({h['n_agencies']} agencies visible)"]
    lines.append(f"  events {_text(h['first_event'])} to {_text(h['last_event'])}; birth year "
                 f"{_text(h['birth_year'])}; home LSOA {_text(h['residence_lsoa_code'])}")
    link = h["link_confidence"]
    if link:
        lines.append(f"  link confidence: weakest {link['weakest']:.2f} ({link['agency']}) over "
                     f"{link['records']} linked record(s)")
    lines += ["", "OPEN NOW"]
    lines += [f"  {s['agency']}: {s['status']}" + ("" if s["value"] is True else f" {_text(s['value'])}")
              for s in h["open"]] or ["  nothing open in the agencies shown"]
    if p.identities is not None:
        lines += ["", "IDENTITY (re-identified for this case; the access is audited)"]
        for ident in p.identities:
            detail = ", ".join(f"{k} {v}" for k, v in ident.items()
                               if k not in ("agency", "record_key", "delivery_id", "vault_status"))
            status = "" if ident["vault_status"] == "ok" else f" [{ident['vault_status']}]"
            lines.append(f"  {ident['agency']}: {detail or '-'}{status}  (record {ident['record_key'][:12]}...)")
    counts = h["indicator_counts"]
    lines += ["", "INDICATORS (" + ", ".join(f"{counts[s]} {s}" for s in SIDES) + ")"]
    for side in SIDES:
        lines.append(f"  {side.upper()}")
        items = p.indicators.get(side, [])
        lines += [f"    {_text(i['event_date'])}  {i['agency']}: {i['indicator']} - {_text(i['reason'])}\n"
                  f"      from delivery {_text(i['delivery_id'])}, gateway {_text(i['legal_gateway'])}, "
                  f"record {_text(i['record_key'])[:12]}..." for i in items] or ["    none"]
    lines += ["", f"CHRONOLOGY ({len(p.chronology)} events)"]
    for e in p.chronology:
        extra = "; ".join(x for x in (f"role {e['person_role']}" if e["person_role"] else "",
                                      f"severity {e['severity']}" if e["severity"] else "",
                                      f"link {e['match_confidence']:.2f}" if e["match_confidence"] is not None else "")
                          if x)
        lines.append(f"  {_text(e['event_date'])}  {e['agency']:<22} {e['event_type']}: {_text(e['event_label'])}"
                     + (f" ({extra})" if extra else ""))
    if p.gateways:
        lines += ["", "LEGAL GATEWAYS (under which this role receives each agency's data)"]
        lines += [f"  {name}: {title}" for name, title in p.gateways.items()]
    return "\n".join(lines)
