"""Sharing policy as code: load and validate governance/policy.yaml, and answer access questions.

One enforcement API, used by marts, exports, re-identification and later the portal:

    policy = Policy.load()
    decision = policy.decide("safeguarding_lead", "nhs", "diagnosis", "safeguarding_assessment")
    decision.allowed, decision.form, decision.gateway, decision.reason

``field_or_level`` is either a level (``aggregate``, ``pseudonymous``, ``identifiable``) or a
field name: identifier fields need ``identifiable``, other fields ``pseudonymous``, and field
rules can reduce a field to a flag (``form="flag"``) or hide it for some roles.

Unknown roles, agencies or purposes are denied (with the reason), never guessed.
Validation collects every problem and names its place in the YAML, e.g.
``roles.commissioner.access.nhs.level: unknown level 'full' (expected one of ...)``.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).with_name("policy.yaml")
LEVELS = ("none", "aggregate", "pseudonymous", "identifiable")
PERSON_LEVELS = ("pseudonymous", "identifiable")  # personal data: a gateway is required
RANK = {level: i for i, level in enumerate(LEVELS)}
# Lakehouse zones each level reads. Identifiers are never read from a zone: only through
# governance.reidentify, so "identifiable" adds no zone.
LEVEL_ZONES = {"none": (), "aggregate": ("marts",), "pseudonymous": ("marts", "linked"),
               "identifiable": ("marts", "linked")}
ROLE_ZONES = ("raw", "quarantine", "staging", "linked", "marts", "audit")  # never "vault"
FIELD_RULE_FALLBACKS = ("flag", "none")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_RETENTION = re.compile(r"^\s*(\d+)\s*(day|days|month|months|year|years)\s*$")

_TOP_KEYS = {"version", "gateways", "purposes", "identifiers", "field_rules", "agencies", "roles", "coarse_attributes"}
_GATEWAY_KEYS = {"title", "basis", "covers"}
_AGENCY_KEYS = {"title", "retention"}
_ROLE_KEYS = {"description", "purposes", "access", "health_professional", "zones"}
_GRANT_KEYS = {"level", "gateway", "purposes"}
_RULE_KEYS = {"agency", "fields", "only_for", "others_see"}


# What ingestion knows how to derive, per source field (governance/split.py computes them).
COARSE_DERIVATIONS = {
    "date_of_birth": ("birth_year",),
    "postcode": ("postcode_district", "residence_lsoa_code"),
    "event_location": ("lsoa_code",),
}


class PolicyError(ValueError):
    """The policy file is invalid; ``problems`` lists each as 'path.in.yaml: what is wrong'."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s) in the sharing policy:\n  - " + "\n  - ".join(problems))


@dataclass(frozen=True)
class Gateway:
    name: str
    title: str
    basis: str
    covers: frozenset[str]


@dataclass(frozen=True)
class Retention:
    amount: int
    unit: str  # days | months | years

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}"

    def expires(self, delivered: date) -> date:
        """The first day the delivery is past retention (calendar arithmetic; 29 Feb -> 28 Feb)."""
        if self.unit == "days":
            return date.fromordinal(delivered.toordinal() + self.amount)
        months = self.amount * (12 if self.unit == "years" else 1)
        year, month = divmod(delivered.month - 1 + months, 12)
        year, month = delivered.year + year, month + 1
        for day in range(delivered.day, 27, -1):
            try:
                return date(year, month, day)
            except ValueError:
                continue
        return date(year, month, delivered.day)


@dataclass(frozen=True)
class Agency:
    name: str
    title: str
    retention: Retention


@dataclass(frozen=True)
class Grant:
    role: str
    agency: str
    level: str
    gateway: str | None
    purposes: frozenset[str]  # the role's purposes, possibly narrowed for this agency

    @property
    def zones(self) -> tuple[str, ...]:
        return LEVEL_ZONES[self.level]


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    purposes: frozenset[str]
    health_professional: bool
    zones: tuple[str, ...]
    grants: dict[str, Grant] = field(hash=False)


@dataclass(frozen=True)
class FieldRule:
    name: str
    agency: str
    fields: frozenset[str]
    others_see: str  # flag | none


@dataclass(frozen=True)
class Decision:
    allowed: bool
    level: str  # the level the role holds for the agency ("none" when unknown)
    gateway: str | None  # the legal gateway that allows it (None for aggregate or denied)
    reason: str  # plain language, for users and the audit log; never personal data
    form: str | None = None  # for a field: "value", "flag", or None when not allowed

    def __bool__(self) -> bool:
        return self.allowed


@dataclass
class Policy:
    source: str
    gateways: dict[str, Gateway]
    purposes: dict[str, str]
    identifiers: frozenset[str]
    field_rules: dict[str, FieldRule]
    agencies: dict[str, Agency]
    roles: dict[str, Role]
    # identifier (or event location) -> coarse attributes the pseudonymous zones keep in its place
    coarse_attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    # -- loading -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> "Policy":
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            text = path.read_text()
        except OSError as exc:
            raise PolicyError(str(path), [f"cannot read the file ({exc.strerror})"]) from None
        return cls.from_text(text, str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<policy>") -> "Policy":
        try:
            document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise PolicyError(source, [f"not valid YAML: {exc}"]) from None
        return _Validator(source).build(document)

    # -- questions -----------------------------------------------------------------------
    def level(self, role: str, agency: str) -> str:
        grant = self.roles.get(role) and self.roles[role].grants.get(agency)
        return grant.level if grant else "none"

    def decide(self, role: str, agency: str, field_or_level: str, purpose: str) -> Decision:
        """May `role` see `field_or_level` of `agency`'s data for `purpose`?"""
        if role not in self.roles:
            return Decision(False, "none", None, f"unknown role '{role}'")
        if agency not in self.agencies:
            return Decision(False, "none", None, f"unknown agency '{agency}'")
        grant = self.roles[role].grants[agency]
        if not purpose:
            return Decision(False, grant.level, None, "no purpose stated")
        if purpose not in self.purposes:
            return Decision(False, grant.level, None, f"unknown purpose '{purpose}'")
        if purpose not in grant.purposes:
            return Decision(False, grant.level, None,
                            f"{role} may not use {agency} data for {purpose} "
                            f"(allowed: {', '.join(sorted(grant.purposes)) or 'nothing'})")
        if field_or_level in RANK:
            needed, subject, form = field_or_level, f"{field_or_level} data", None
        else:
            needed = "identifiable" if field_or_level in self.identifiers else "pseudonymous"
            subject, form = f"field '{field_or_level}'", "value"
        if RANK[grant.level] < RANK[needed]:
            return Decision(False, grant.level, None,
                            f"{role} has {grant.level} access to {agency} data; {subject} needs {needed}")
        if form == "value":
            rule = self._rule_for(agency, field_or_level)
            if rule is not None and not self.roles[role].health_professional:
                if rule.others_see == "none":
                    return Decision(False, grant.level, None,
                                    f"{agency}.{field_or_level} is restricted to health professionals ({rule.name})")
                form = "flag"
        gateway = grant.gateway if needed in PERSON_LEVELS else None
        reason = f"{role} has {grant.level} access to {agency} data for {purpose}"
        if gateway:
            reason += f" under {self.gateways[gateway].title}"
        if form == "flag":
            reason += f"; {field_or_level} only as a yes/no flag ({rule.name})"
        return Decision(True, grant.level, gateway, reason, form)

    def _rule_for(self, agency: str, field_name: str) -> FieldRule | None:
        return next((r for r in self.field_rules.values() if r.agency == agency and field_name in r.fields), None)

    def grants_for(self, role: str, purpose: str | None = None, min_level: str = "aggregate") -> list[Grant]:
        """The role's grants at or above `min_level` (for `purpose` if given), by agency."""
        if role not in self.roles:
            return []
        return [g for g in self.roles[role].grants.values()
                if RANK[g.level] >= RANK[min_level] and (purpose is None or purpose in g.purposes)]

    def agencies_for(self, role: str, min_level: str, purpose: str | None = None) -> list[str]:
        return [g.agency for g in self.grants_for(role, purpose, min_level)]

    def zones_for(self, role: str) -> tuple[str, ...]:
        """Lakehouse zones (schemas) the role may read: from its levels plus its listed zones."""
        if role not in self.roles:
            return ()
        zones = {z for g in self.roles[role].grants.values() for z in g.zones} | set(self.roles[role].zones)
        return tuple(z for z in ROLE_ZONES if z in zones)

    def retention(self, agency: str) -> Retention:
        return self.agencies[agency].retention

    def matrix(self) -> list[list[str]]:
        """Rows for display: role, then one cell per agency ("identifiable (gateway)")."""
        rows = [["role \\ agency", *self.agencies]]
        for role in self.roles.values():
            cells = []
            for agency in self.agencies:
                grant = role.grants[agency]
                narrowed = "" if grant.purposes == role.purposes else f" [{', '.join(sorted(grant.purposes))}]"
                cells.append(grant.level + (f" ({grant.gateway})" if grant.gateway else "") + narrowed)
            rows.append([role.name, *cells])
        return rows


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys: a second `police:` silently overriding the first
    is exactly the kind of policy error nobody would spot."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


class _Validator:
    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value, path: str, allowed: set[str] | None = None, required: set[str] = frozenset()) -> dict:
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, found {type(value).__name__}")
            return {}
        for key in value:
            if not isinstance(key, str) or not _NAME.match(key):
                self.problem(f"{path}.{key}", "names must be lower_case_with_underscores")
            elif allowed is not None and key not in allowed:
                self.problem(f"{path}.{key}", f"unknown key (expected {', '.join(sorted(allowed))})")
        for key in sorted(required - set(value)):
            self.problem(path, f"missing '{key}'")
        return value

    def text(self, value, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, "expected non-empty text")
            return ""
        return value.strip()

    def names(self, value, path: str, known: dict | set, what: str, allow_empty: bool = False) -> frozenset[str]:
        if not isinstance(value, list) or (not value and not allow_empty):
            self.problem(path, f"expected a {'' if allow_empty else 'non-empty '}list of {what}")
            return frozenset()
        for i, item in enumerate(value):
            if item not in known:
                singular = {"agencies": "agency", "purposes": "purpose", "zones": "zone"}.get(what, what)
                self.problem(f"{path}[{i}]", f"unknown {singular} '{item}'"
                             f" (expected one of {', '.join(sorted(known))})")
        return frozenset(v for v in value if v in known)

    def build(self, document) -> Policy:
        top = self.mapping(document, "policy", _TOP_KEYS, {"version", "gateways", "purposes", "agencies", "roles"})
        if top and top.get("version") != 1:
            self.problem("version", f"unsupported version {top.get('version')!r} (expected 1)")

        agencies: dict[str, Agency] = {}
        for name, spec in self.mapping(top.get("agencies", {}), "agencies").items():
            path = f"agencies.{name}"
            spec = self.mapping(spec, path, _AGENCY_KEYS, _AGENCY_KEYS)
            agencies[name] = Agency(name, self.text(spec.get("title"), f"{path}.title"),
                                    self.retention(spec.get("retention"), f"{path}.retention"))
        if not agencies and isinstance(top.get("agencies"), dict):
            self.problem("agencies", "no agencies declared")

        gateways: dict[str, Gateway] = {}
        for name, spec in self.mapping(top.get("gateways", {}), "gateways").items():
            path = f"gateways.{name}"
            spec = self.mapping(spec, path, _GATEWAY_KEYS, _GATEWAY_KEYS)
            gateways[name] = Gateway(name, self.text(spec.get("title"), f"{path}.title"),
                                     self.text(spec.get("basis"), f"{path}.basis"),
                                     self.names(spec.get("covers"), f"{path}.covers", agencies, "agencies"))

        purposes = {name: self.text(text, f"purposes.{name}")
                    for name, text in self.mapping(top.get("purposes", {}), "purposes").items()}

        identifiers = frozenset()
        if "identifiers" in top:
            raw = top["identifiers"]
            if not isinstance(raw, list) or not all(isinstance(f, str) and _NAME.match(f) for f in raw):
                self.problem("identifiers", "expected a list of field names (lower_case_with_underscores)")
            else:
                identifiers = frozenset(raw)

        rules: dict[str, FieldRule] = {}
        for name, spec in self.mapping(top.get("field_rules", {}) or {}, "field_rules").items():
            path = f"field_rules.{name}"
            spec = self.mapping(spec, path, _RULE_KEYS, _RULE_KEYS)
            if spec.get("agency") not in agencies:
                self.problem(f"{path}.agency", f"unknown agency '{spec.get('agency')}'")
            if spec.get("only_for") != "health_professionals":
                self.problem(f"{path}.only_for", "expected 'health_professionals'")
            if spec.get("others_see") not in FIELD_RULE_FALLBACKS:
                self.problem(f"{path}.others_see", f"expected one of {', '.join(FIELD_RULE_FALLBACKS)}")
            fields = spec.get("fields")
            if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
                self.problem(f"{path}.fields", "expected a non-empty list of field names")
                fields = []
            clash = sorted(set(fields) & identifiers)
            if clash:
                self.problem(f"{path}.fields", f"{', '.join(clash)} are identifiers (always identifiable-only)")
            rules[name] = FieldRule(name, str(spec.get("agency")), frozenset(fields), str(spec.get("others_see")))

        roles: dict[str, Role] = {}
        for name, spec in self.mapping(top.get("roles", {}), "roles").items():
            roles[name] = self.role(name, spec, agencies, gateways, purposes)

        coarse: dict[str, tuple[str, ...]] = {}
        for name, kept in self.mapping(top.get("coarse_attributes", {}) or {}, "coarse_attributes").items():
            path = f"coarse_attributes.{name}"
            allowed = COARSE_DERIVATIONS.get(name)
            if allowed is None:
                self.problem(path, f"no coarse attribute can be derived from '{name}' "
                                   f"(known: {', '.join(COARSE_DERIVATIONS)})")
            elif not isinstance(kept, list) or not all(isinstance(k, str) for k in kept):
                self.problem(path, "expected a list of attribute names (may be empty)")
            elif set(kept) - set(allowed):
                self.problem(path, f"unknown attribute(s) {', '.join(sorted(set(kept) - set(allowed)))} "
                                   f"(from {name}: {', '.join(allowed)})")
            else:
                coarse[name] = tuple(kept)

        if self.problems:
            raise PolicyError(self.source, self.problems)
        return Policy(self.source, gateways, purposes, identifiers, rules, agencies, roles, coarse)

    def retention(self, value, path: str) -> Retention:
        match = _RETENTION.match(str(value)) if isinstance(value, (str, int)) else None
        if not match or int(match.group(1)) <= 0:
            self.problem(path, f"expected a period such as '6 years', '18 months' or '90 days', found {value!r}")
            return Retention(0, "days")
        unit = match.group(2) if match.group(2).endswith("s") else match.group(2) + "s"
        return Retention(int(match.group(1)), unit)

    def role(self, name, spec, agencies, gateways, purposes) -> Role:
        path = f"roles.{name}"
        spec = self.mapping(spec, path, _ROLE_KEYS, {"description", "purposes", "access"})
        role_purposes = self.names(spec.get("purposes"), f"{path}.purposes", purposes, "purposes")
        health = spec.get("health_professional", False)
        if not isinstance(health, bool):
            self.problem(f"{path}.health_professional", "expected true or false")
        zones = spec.get("zones", [])
        zone_set = self.names(zones, f"{path}.zones", set(ROLE_ZONES), "zones", allow_empty=True)
        access = self.mapping(spec.get("access", {}), f"{path}.access")
        for agency in agencies:
            if agency not in access:
                self.problem(f"{path}.access", f"no entry for agency '{agency}' (write `{agency}: none` if intended)")
        grants: dict[str, Grant] = {}
        for agency, grant_spec in access.items():
            gpath = f"{path}.access.{agency}"
            if agency not in agencies:
                self.problem(gpath, f"unknown agency '{agency}' (expected one of {', '.join(agencies)})")
                continue
            shorthand = isinstance(grant_spec, str)  # `police: aggregate`
            if shorthand:
                grant_spec = {"level": grant_spec}
            grant_spec = self.mapping(grant_spec, gpath, _GRANT_KEYS, {"level"})
            level = grant_spec.get("level")
            if level not in LEVELS:
                self.problem(gpath if shorthand or "level" not in grant_spec else f"{gpath}.level",
                             f"unknown level {level!r} (expected one of {', '.join(LEVELS)})")
                continue
            gateway = grant_spec.get("gateway")
            if level in PERSON_LEVELS:
                if not gateway:
                    self.problem(gpath, f"{level} access needs a legal gateway (add `gateway: <name>`)")
                elif gateway not in gateways:
                    self.problem(f"{gpath}.gateway", f"unknown gateway '{gateway}' (expected one of {', '.join(gateways)})")
                elif agency not in gateways[gateway].covers:
                    self.problem(f"{gpath}.gateway", f"gateway '{gateway}' does not cover {agency} data")
            elif gateway:
                self.problem(f"{gpath}.gateway", f"{level} access needs no gateway; remove it (only person-level access cites one)")
            narrowed = role_purposes
            if "purposes" in grant_spec:
                narrowed = self.names(grant_spec["purposes"], f"{gpath}.purposes", purposes, "purposes")
                extra = sorted(narrowed - role_purposes)
                if extra:
                    self.problem(f"{gpath}.purposes", f"{', '.join(extra)} not among the role's purposes")
                narrowed &= role_purposes
            grants[agency] = Grant(name, agency, level, gateway if level in PERSON_LEVELS else None, narrowed)
        return Role(name, self.text(spec.get("description"), f"{path}.description"), role_purposes,
                    health is True, tuple(z for z in ROLE_ZONES if z in zone_set), grants)


@functools.lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The policy file shipped with this checkout (governance/policy.yaml), loaded once."""
    return Policy.load()
