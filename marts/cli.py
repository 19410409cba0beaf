"""`tapestry export` and `tapestry mash`: register with ``register(subparsers)``.

    tapestry export --role ROLE --table TABLE --format csv|parquet|xlsx --out FILE [--purpose P] [--actor NAME]
    tapestry export --role ROLE --list [--purpose P]
    tapestry export --list
    tapestry mash --person PERSON_ID --purpose P --case-ref REF [--role safeguarding_lead] [--identify]
                  [--format text|json]

Exit codes: 0 done; 2 refused by the sharing policy or bad input (the message says what and
why, never personal data). Refusals are in the audit log (`tapestry audit verify`).
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from tapestry.config import Settings

EXPORT_HELP = """Write one mart table for one role as CSV, Parquet or Excel. What the role may have, and in
which form, comes from the sharing policy (governance/policy.yaml) and the mart catalog
(marts/catalog.py): commissioners get only the published, disclosure-controlled area tables;
person-level tables need person-level access for an agency and a purpose its grant allows, and
then hold only the rows and values the role may see, with person and record ids replaced by
pseudonyms specific to the role. Every export and refusal is audited."""

MASH_HELP = """Show the MASH picture of one person for a safeguarding decision: agencies, what is open, link
confidence, victim / perpetrator / vulnerability indicators with their reasons and provenance,
and the chronology - only what the role may see. Names appear only with --identify, through the
audited re-identification (roles with identifiable access only). Needs a purpose and a case
reference; every view is audited."""


def register(subparsers) -> None:
    # Nothing heavy is imported here: every `tapestry` command pays for what register() imports.
    export = subparsers.add_parser("export", help="export a mart table for a role (policy-checked, audited)",
                                   description=EXPORT_HELP)
    export.add_argument("--role", help="the recipient's role in the sharing policy")
    export.add_argument("--table", help="a mart table (see --list)")
    export.add_argument("--format", default=None, metavar="csv|parquet|xlsx",
                        help="file format (default: from --out's suffix)")
    export.add_argument("--out", type=Path, help="the file to write")
    export.add_argument("--purpose", default=None,
                        help="why (a purpose of the role; required for person-level tables)")
    export.add_argument("--case-ref", default=None, help="case reference, recorded in the audit log")
    export.add_argument("--actor", default=None, help="who exports (default: the login name)")
    export.add_argument("--list", action="store_true",
                        help="list what the role may export (without --role: every role x table)")
    export.set_defaults(func=_export)

    mash = subparsers.add_parser("mash", help="the MASH picture of one person (policy-checked, audited)",
                                 description=MASH_HELP)
    mash.add_argument("--person", required=True, help="the person's id (marts.mash_person.person_id)")
    mash.add_argument("--purpose", required=True, help="why (e.g. safeguarding_assessment)")
    mash.add_argument("--case-ref", required=True, help="the case reference (recorded in the audit log)")
    mash.add_argument("--role", default="safeguarding_lead", help="the viewer's role (default: safeguarding_lead)")
    mash.add_argument("--identify", action="store_true",
                      help="also show names, through the audited re-identification (identifiable roles only)")
    mash.add_argument("--format", choices=("text", "json"), default="text")
    mash.add_argument("--actor", default=None, help="who looks (default: the login name)")
    mash.set_defaults(func=_mash)


def _fail(command: str, message: str, code: int = 2) -> int:
    print(f"tapestry {command}: {message}", file=sys.stderr)
    return code


def _export(args: argparse.Namespace) -> int:
    from governance.audit import AuditError
    from governance.policy import default_policy
    from marts import catalog
    from marts.export import ExportError, export, list_tables

    policy = default_policy()
    if args.list:
        if not args.role:
            width = max(len(r) for r in policy.roles)
            last = None
            for role, table, cell in catalog.matrix(policy):
                print(f"{(role if role != last else ''):<{width}}  {table:<16} {cell}")
                last = role
            return 0
        if args.role not in policy.roles:
            return _fail("export", f"unknown role '{args.role}' (roles: {', '.join(policy.roles)})")
        for row in list_tables(args.role, args.purpose, policy):
            purpose = f"for {row['purpose']}: " if row["purpose"] else ""
            print(f"{row['table']:<16} {row['kind']:<9} {purpose}{row['detail']}")
        return 0
    missing = [f"--{n}" for n, v in (("role", args.role), ("table", args.table), ("out", args.out)) if not v]
    if missing:
        return _fail("export", f"{', '.join(missing)} required (or --list)")
    try:
        result = export(Settings.from_env(), args.role, args.table, args.format, args.out, purpose=args.purpose,
                        actor=args.actor or getpass.getuser(), case_ref=args.case_ref, policy=policy)
    except (ExportError, AuditError) as exc:
        return _fail("export", str(exc))
    hidden = result.access.hidden
    print(f"wrote {result.rows:,} rows of {catalog.SCHEMA}.{result.table} for {result.role}"
          + (f" ({result.purpose})" if result.purpose else "") + f" to {result.out} [{result.fmt}], "
          f"lakehouse snapshot {result.snapshot_id}"
          + (f"; without {', '.join(hidden)} data (policy)" if hidden and result.access.table.kind == "person" else ""))
    return 0


def _mash(args: argparse.Namespace) -> int:
    from governance.audit import AuditError
    from marts.mash import MashError, mash_picture

    try:
        picture = mash_picture(Settings.from_env(), args.person, args.role, args.purpose, args.case_ref,
                               identify=args.identify, actor=args.actor or getpass.getuser())
    except (MashError, AuditError) as exc:
        return _fail("mash", str(exc))
    if args.format == "json":
        print(json.dumps(picture.to_dict(), indent=2))
    else:
        print(picture.to_text())
    return 0
