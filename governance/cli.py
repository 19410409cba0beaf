"""Governance subcommands for `tapestry`: keys, audit, policy.

tapestry/cli.py calls ``register(commands)`` with its argparse subparsers object. Each command
sets ``func(args) -> int``; problems print one line to stderr and return non-zero. Output
names key ids, counts and entry ids only: never key material or personal data.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from datetime import date

from tapestry.config import Settings


def register(subparsers) -> None:
    keys = subparsers.add_parser("keys", help="the keyring: status and master-key rotation")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    status = keys_commands.add_parser("status", help="key ids, data-key counts, permission problems (no key material)")
    status.set_defaults(func=_keys_status)
    rotate = keys_commands.add_parser(
        "rotate", help="re-wrap every data key under a new master key and destroy the old one",
        description="Re-wraps the per-delivery data keys and the pseudonymisation key under a new master key; "
                    "data is not touched. The old master key is destroyed (a tombstone with its id stays in "
                    "retired/). If TAPESTRY_MASTER_KEY supplies the master key, put the new one in "
                    "TAPESTRY_MASTER_KEY_NEW, then replace TAPESTRY_MASTER_KEY with it. The rotation is recorded "
                    "in the audit log.")
    rotate.add_argument("--actor", default=None, help="who rotates (default: the login name)")
    rotate.set_defaults(func=_keys_rotate)

    audit = subparsers.add_parser("audit", help="the tamper-evident audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    verify = audit_commands.add_parser(
        "verify", help="recompute the hash chain; exit 1 and name the first broken entry if tampered with")
    verify.set_defaults(func=_audit_verify)

    retention = subparsers.add_parser("retention", help="crypto-shred deliveries past their retention period")
    retention_commands = retention.add_subparsers(dest="retention_command", required=True, metavar="SUBCOMMAND")
    apply = retention_commands.add_parser(
        "apply", help="destroy the data keys of expired deliveries and remove their person-level rows",
        description="For every delivery older than its agency's retention (governance/policy.yaml), by the date "
                    "it was received: destroy its data key, delete its rows from raw, vault and quarantine and its "
                    "encrypted archive file, mark it expired in raw.deliveries, audit it. Snapshots before the run "
                    "are expired so deleted rows leave the lake's files too.")
    apply.add_argument("--as-of", type=date.fromisoformat, default=None, help="the day to judge on (YYYY-MM-DD; default today)")
    apply.add_argument("--dry-run", action="store_true", help="list what would be shredded, change nothing")
    apply.set_defaults(func=_retention_apply)

    policy = subparsers.add_parser("policy", help="the sharing policy")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True, metavar="SUBCOMMAND")
    check = policy_commands.add_parser("check", help="validate a policy file and print who may see what")
    check.add_argument("file", nargs="?", default=None, help="policy YAML (default: governance/policy.yaml)")
    check.set_defaults(func=_policy_check)


def _retention_apply(args) -> int:
    from governance.retention import apply_retention

    report = apply_retention(Settings.from_env(), as_of=args.as_of, dry_run=args.dry_run)
    verb = "would shred" if report.dry_run else "shredded"
    print(f"retention as of {report.as_of.isoformat()}: {verb} {len(report.expired)} deliveries"
          + ("" if report.dry_run else f", removed {report.rows_removed:,} person-level rows"))
    for did in report.expired:
        print(f"  {did}")
    return 0


def _fail(command: str, message: str, code: int = 2) -> int:
    print(f"tapestry {command}: {message}", file=sys.stderr)
    return code


def _keys_status(args: argparse.Namespace) -> int:
    from governance.keys import Keyring, KeyringError

    try:
        status = Keyring.open(Settings.from_env()).status()
    except KeyringError as exc:
        return _fail("keys status", str(exc))
    print(f"secrets folder:     {status.secrets}")
    print(f"master key:         {status.master_key_id} (from {status.master_source})")
    print(f"pseudonym key:      {status.pseudonym_key_id}")
    print(f"data keys:          {status.data_keys}"
          + "".join(f"\n  wrapped by {k}: {n}" for k, n in sorted(status.data_keys_by_master.items())))
    print(f"shredded deliveries: {status.shredded}")
    print(f"retired master keys: {', '.join(status.retired_master_keys) or 'none'}")
    if status.rotation_pending:
        print("rotation:           interrupted; run `tapestry keys rotate` to finish it")
    for problem in status.problems:
        print(f"problem: {problem}")
    return 1 if status.problems else 0


def _keys_rotate(args: argparse.Namespace) -> int:
    from governance import audit
    from governance.keys import Keyring, KeyringError
    from tapestry import lakehouse

    settings = Settings.from_env()
    actor = args.actor or getpass.getuser()
    try:
        report = Keyring.open(settings).rotate_master()
    except KeyringError as exc:
        return _fail("keys rotate", str(exc))
    print(f"master key rotated{' (finished an interrupted rotation)' if report.resumed else ''}: "
          f"{report.old_key_id} -> {report.new_key_id}")
    print(f"data keys re-wrapped: {report.data_keys_rewrapped}; pseudonymisation key re-wrapped: "
          f"{'yes' if report.pseudonym_key_rewrapped else 'already'}")
    print(f"old master key: {report.retired}")
    try:
        with lakehouse.connect(settings) as con:
            audit.record(con, actor=actor, role="data_engineer", purpose="pipeline_operations",
                         action="keys.rotate", object=f"master key {report.old_key_id} -> {report.new_key_id}",
                         row_count=report.data_keys_rewrapped, outcome="done", settings=settings)
    except audit.AuditError as exc:
        return _fail("keys rotate", f"rotated, but the audit entry could not be written: {exc}", 1)
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from governance import audit
    from tapestry import lakehouse

    settings = Settings.from_env()
    if settings.catalog_path is not None and not settings.catalog_path.exists():
        # No lakehouse yet: fine only if nothing was ever audited.
        if audit.read_anchor(settings) is None:
            print("audit log empty: no lakehouse yet")
            return 0
        return _fail("audit verify", f"the lakehouse catalog {settings.catalog_path} is missing but the audit "
                                     "anchor records entries", 1)
    with lakehouse.connect(settings, read_only=True) as con:
        result = audit.verify(con, settings)
    if result.ok:
        print(f"audit log intact: {result.entries} entries, head anchored"
              + (f" ({result.note})" if result.note else ""))
        return 0
    print(f"audit log BROKEN at entry {result.first_broken_entry_id}: {result.problem}")
    print(f"({result.entries} entries verified before it; the anchor records "
          f"{result.anchored_entries if result.anchored_entries is not None else 'none'})")
    return 1


def _policy_check(args: argparse.Namespace) -> int:
    from governance.policy import Policy, PolicyError

    try:
        policy = Policy.load(args.file)
    except PolicyError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"{policy.source}: valid. {len(policy.agencies)} agencies, {len(policy.roles)} roles, "
          f"{len(policy.gateways)} gateways, {len(policy.purposes)} purposes.\n")
    print(_table(policy.matrix()))
    print("\npurposes per role:")
    for role in policy.roles.values():
        health = " (health professional: sees clinical detail)" if role.health_professional else ""
        print(f"  {role.name}: {', '.join(sorted(role.purposes))}{health}")
    if policy.field_rules:
        print("\nfield rules:")
        for rule in policy.field_rules.values():
            print(f"  {rule.agency}: {', '.join(sorted(rule.fields))} -> others see {rule.others_see}")
    print("\nretention (then the delivery's data key is destroyed):")
    for agency in policy.agencies.values():
        print(f"  {agency.name}: {agency.retention}")
    return 0


def _table(rows: list[list[str]]) -> str:
    # One line per role and agency: a wide matrix does not fit a terminal.
    header, *body = rows
    width = max(len(r[0]) for r in body)
    lines = []
    for row in body:
        for i, (agency, cell) in enumerate(zip(header[1:], row[1:])):
            lines.append(f"{(row[0] if i == 0 else ''):<{width}}  {agency:<22} {cell}")
    return "\n".join(lines)
