"""`tapestry`: the user's entry point. Each subcommand's --help explains it."""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

from tapestry.config import ConfigError, Settings

EPILOG = """Settings come from environment variables: TAPESTRY_HOME (lakehouse, Dagster storage,
run artefacts; default ./.tapestry in the checkout), TAPESTRY_SECRETS (keys; default
./.tapestry-secrets), TAPESTRY_LANDING (default $TAPESTRY_HOME/landing), TAPESTRY_CATALOG
(sqlite | duckdb | postgres, default sqlite), TAPESTRY_CATALOG_PATH, TAPESTRY_POSTGRES_DSN,
TAPESTRY_DATA_PATH. See README.md."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tapestry",
        description="Tapestry: multi-agency safeguarding data lakehouse.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser(
        "synth", help="generate a synthetic multi-agency population and its agency extracts",
        description="Write a deterministic synthetic population's agency extracts into a landing folder "
        "laid out as OUT/<agency>/..., and its ground truth into a separate folder the pipeline never reads.",
    )
    synth.add_argument("--persons", type=int, default=2000, help="number of persons (default 2000)")
    synth.add_argument("--seed", type=int, default=42, help="random seed; same seed and N give identical files")
    synth.add_argument("--out", type=Path, help="landing folder to write (default $TAPESTRY_LANDING)")
    synth.add_argument("--truth", type=Path, help="ground-truth folder (default <out>_truth, outside the landing)")
    synth.add_argument("--geography", type=Path,
                       help="folder with real ONS LSOA GeoJSON and IMD 2019 files (as in shared/data); "
                       "default: a built-in synthetic geography")
    synth.add_argument("--inject-faults", action="store_true", help="add the documented set of bad files and rows")
    synth.add_argument("--error-scale", type=float, default=1.0, help="multiply every data-error rate (default 1.0)")
    synth.add_argument("--start", default="2024-10-01", help="first day of the period covered (default 2024-10-01)")
    synth.add_argument("--months", type=int, default=24, help="months covered (default 24)")
    synth.add_argument("--force", action="store_true", help="empty the landing and truth folders first")
    synth.set_defaults(func=_synth)

    run = commands.add_parser(
        "run", help="run the pipeline (the Dagster jobs) in process and print a summary",
        description="Load every delivery waiting in the landing folder: for each agency, its files are "
        "registered as partitions and one run of its ingest job loads them, in this process, recorded in "
        "the Dagster instance under TAPESTRY_HOME (so runs show in the UI).",
    )
    run.add_argument("--landing", type=Path, help="landing folder (default $TAPESTRY_LANDING)")
    run.add_argument("--agency", action="append", help="only this agency (repeatable)")
    run.add_argument("--ingest-only", action="store_true",
                     help="load deliveries only; skip linkage, transforms and marts (run later without this flag)")
    run.set_defaults(func=_run)

    sql = commands.add_parser(
        "sql", help="run a read-only SQL query against the lakehouse",
        description="Query the lakehouse read-only. Tables are <zone>.<table>, e.g. raw.deliveries. "
        "Time travel: SELECT ... FROM raw.deliveries AT (VERSION => 12).",
    )
    sql.add_argument("query", help="a SQL query (SELECT / WITH / FROM / DESCRIBE / SHOW / SUMMARIZE)")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    sql.add_argument("--max-rows", type=int, default=50, help="rows shown in table format (default 50)")
    sql.set_defaults(func=_sql)

    ui = commands.add_parser("ui", help="start the Dagster UI (dagster dev) on this machine",
                             description="Start `dagster dev` with the instance under TAPESTRY_HOME.")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=_ui)

    from governance import cli as governance_cli
    from linkage import cli as linkage_cli
    from marts import cli as marts_cli

    governance_cli.register(commands)
    linkage_cli.register(commands)
    marts_cli.register(commands)

    info = commands.add_parser("info", help="show where the lakehouse, landing, Dagster storage and keys live")
    info.set_defaults(func=_info)

    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except ConfigError as exc:
        print(f"tapestry: configuration error: {exc}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"tapestry {args.command}: {exc}", file=sys.stderr)
        return 2


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _synth(args: argparse.Namespace) -> int:
    from sources.synthetic import generate

    settings = Settings.from_env()
    out = (args.out or settings.landing).resolve()
    started = time.monotonic()
    try:
        summary = generate(
            persons=args.persons, seed=args.seed, out=out, truth=args.truth, geography=args.geography,
            inject_faults=args.inject_faults, error_scale=args.error_scale, start=args.start,
            months=args.months, progress=print, overwrite=args.force, write_reference=True,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    print(f"\nGenerated {summary['persons']:,} persons in {time.monotonic() - started:.1f}s")
    print(f"  landing: {out}")
    print(f"  truth:   {summary.get('truth', '')} (never read by the pipeline)")
    if summary.get("reference"):
        print(f"  reference geography: {len(summary['reference'])} public-format file(s) in {out / 'reference'}")
    for agency, files in sorted(summary.get("files", {}).items()):
        rows = sum(f.get("rows", 0) for f in files) if isinstance(files, list) else files
        count = len(files) if isinstance(files, list) else ""
        print(f"  {agency:<22} {count} file(s), {rows:,} rows")
    print("\nNext: tapestry run" + ("" if out == settings.landing else f" --landing {out}"))
    return 0


def _run(args: argparse.Namespace) -> int:
    from orchestration.run import run_all
    from sources.registry import BY_NAME

    import os

    if args.landing:
        if not args.landing.is_dir():
            raise UserError(f"landing folder {args.landing} does not exist")
        os.environ["TAPESTRY_LANDING"] = str(args.landing.resolve())
    unknown = sorted(set(args.agency or []) - set(BY_NAME))
    if unknown:
        raise UserError(f"unknown agency {', '.join(unknown)}; agencies: {', '.join(BY_NAME)}")
    settings = Settings.from_env()
    return run_all(settings, args.agency, downstream=not args.ingest_only)


def _sql(args: argparse.Namespace) -> int:
    import duckdb
    import polars as pl

    from tapestry import lakehouse
    from tapestry.output import print_frame

    settings = Settings.from_env()
    first = args.query.lstrip().split(None, 1)[0].upper() if args.query.strip() else ""
    if first not in {"SELECT", "WITH", "FROM", "DESCRIBE", "SHOW", "SUMMARIZE", "VALUES", "TABLE"}:
        raise UserError("only read-only queries are allowed (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE)")
    try:  # one statement: "SELECT 1; LOAD ..." would run both
        statements = len(duckdb.extract_statements(args.query))
    except duckdb.Error as exc:
        raise UserError(str(exc).splitlines()[0]) from None
    if statements != 1:
        raise UserError("one query at a time: the text holds several statements")
    try:
        with lakehouse.connect(settings, read_only=True) as con:
            try:
                relation = con.sql(args.query)
                try:
                    frame = relation.pl()
                except pl.exceptions.PolarsError:  # a type polars cannot import (e.g. INTERVAL): as text
                    names = [f'"{c}"::VARCHAR AS "{c}"' for c in relation.columns]
                    frame = con.sql(f"SELECT {', '.join(names)} FROM ({args.query})").pl()
            except duckdb.Error as exc:
                raise UserError(str(exc).splitlines()[0]) from None
    except lakehouse.LakehouseError as exc:
        raise UserError(str(exc)) from None
    print_frame(frame, args.format, args.max_rows)
    return 0


def _ui(args: argparse.Namespace) -> int:
    import os

    from orchestration.instance import prepare_dagster_home

    settings = Settings.from_env()
    prepare_dagster_home(settings)
    dagster = shutil.which("dagster") or str(Path(sys.executable).parent / "dagster")
    print(f"Dagster UI on http://127.0.0.1:{args.port} (instance: {settings.dagster_home})")
    os.execv(dagster, [dagster, "dev", "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", str(args.port)])


def _info(args: argparse.Namespace) -> int:
    from tapestry import lakehouse

    settings = Settings.from_env()
    print(f"TAPESTRY_HOME     {settings.home}")
    print(f"landing           {settings.landing}")
    print(f"lakehouse         {lakehouse.describe(settings)}")
    print(f"Dagster instance  {settings.dagster_home}")
    print(f"secrets           {settings.secrets}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
