"""``tapestry link`` and ``tapestry link-eval``: register with ``register(subparsers)``.

    tapestry link INPUT [INPUT ...] --out OUT.parquet [--threshold P] [--run-dir DIR] [--review REVIEW.parquet]
    tapestry link-eval [--truth DIR] [--out REPORT.json] [--no-plain-splink]

INPUT: CSV or Parquet files in the canonical person-record schema (record_id required;
source, forename, middle_names, surname, dob, sex, postcode, nhs_number, pnc_id, upn, crn
optional, all text except dob: ISO YYYY-MM-DD or a date). Without a ``source`` column the
file name (stem) is the source. OUT: Parquet with record_id, person_id, match_confidence,
one row per input record.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl

from linkage.pipeline import InputError, link_records

CANONICAL = ("record_id", "source", "forename", "middle_names", "surname", "dob", "sex", "postcode",
             "nhs_number", "pnc_id", "upn", "crn")


def register(subparsers) -> None:
    link = subparsers.add_parser(
        "link", help="link person records (CSV/Parquet, canonical schema) into persons",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    link.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="CSV or Parquet file(s)")
    link.add_argument("--out", required=True, type=Path, help="output Parquet (record_id, person_id, match_confidence)")
    link.add_argument("--threshold", type=float, default=None, help="cluster match probability (default: config)")
    link.add_argument("--run-dir", type=Path, default=None, help="save the model JSON and charts here")
    link.add_argument("--review", type=Path, default=None,
                      help="write the review queue (uncertain pairs with per-field match weights) as Parquet")
    link.set_defaults(func=run_link)

    ev = subparsers.add_parser(
        "link-eval", help="link the lakehouse's person records afresh and score them against generator truth",
        description="Reads the current person records from the lakehouse (vault decrypted in memory), links them "
                    "with a fresh model and reports pairwise / B-cubed figures, blocking recall, recall per source "
                    "pair, the deterministic baseline and a plain Splink model. Writes nothing to the lake.")
    ev.add_argument("--truth", type=Path, default=None,
                    help="the generator's truth folder (default: TAPESTRY_TRUTH, else <landing>_truth)")
    ev.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    ev.add_argument("--run-dir", type=Path, default=None, help="save the model JSON and charts here")
    ev.add_argument("--no-plain-splink", action="store_true", help="skip the docs-style Splink comparison")
    ev.set_defaults(func=run_link_eval)


def read_inputs(paths: list[Path]) -> pl.DataFrame:
    """Read and check the input files; InputError names the file and column on bad input."""
    frames = []
    seen: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        suffix = path.suffix.lower()
        try:
            if suffix == ".parquet":
                frame = pl.read_parquet(path)
            elif suffix in (".csv", ".txt"):
                frame = pl.read_csv(path, infer_schema=False, encoding="utf8-lossy")
            else:
                raise InputError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")
        except pl.exceptions.PolarsError as exc:
            raise InputError(f"{path}: unreadable ({type(exc).__name__})") from None
        frame = frame.rename({c: c.strip().lower() for c in frame.columns})
        if "record_id" not in frame.columns:
            raise InputError(f"{path}: no record_id column (columns: {', '.join(frame.columns)})")
        for column in CANONICAL:
            if column in frame.columns and column != "dob" and frame.schema[column] != pl.String:
                frame = frame.with_columns(pl.col(column).cast(pl.String))
        if "dob" in frame.columns and frame.schema["dob"] not in (pl.String, pl.Date):
            if isinstance(frame.schema["dob"], pl.Datetime):
                frame = frame.with_columns(pl.col("dob").cast(pl.Date))
            else:
                raise InputError(f"{path}: column dob must be text (YYYY-MM-DD) or a date")
        if "dob" in frame.columns and frame.schema["dob"] == pl.Date:
            frame = frame.with_columns(pl.col("dob").dt.strftime("%Y-%m-%d"))
        nulls = frame["record_id"].null_count()
        if nulls:
            raise InputError(f"{path}: column record_id is empty in {nulls} row(s)")
        dup = frame.height - frame["record_id"].n_unique()
        if dup:
            raise InputError(f"{path}: column record_id has {dup} duplicate value(s)")
        ids = frame["record_id"].to_list()
        clash = next((i for i in ids if i in seen), None)
        if clash is not None:
            raise InputError(f"{path}: column record_id repeats ids of {seen[clash]} (record ids must be unique "
                             "across inputs)")
        seen.update(dict.fromkeys(ids, path))
        if "source" not in frame.columns:
            frame = frame.with_columns(source=pl.lit(path.stem))
        else:
            frame = frame.with_columns(pl.col("source").fill_null(path.stem))
        keep = [c for c in CANONICAL if c in frame.columns]
        frames.append(frame.select(keep))
    return pl.concat(frames, how="diagonal_relaxed")


def link_files(paths: list[Path], out: Path, *, threshold: float | None = None, run_dir: Path | None = None,
               review: Path | None = None, progress=print) -> dict:
    records = read_inputs(paths)
    progress(f"read {records.height:,} records from {len(paths)} file(s)")
    kwargs = {} if threshold is None else {"threshold": threshold}
    result = link_records(records, run_dir=run_dir, progress=progress, **kwargs)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result.assignments.select("record_id", "person_id", "match_confidence").write_parquet(out)
    progress(f"wrote {out}")
    if review is not None:
        Path(review).parent.mkdir(parents=True, exist_ok=True)
        result.review.write_parquet(review)
        progress(f"wrote {review} ({result.review.height:,} uncertain pairs)")
    return result.metrics


def run_link(args) -> int:
    try:
        link_files(args.inputs, args.out, threshold=args.threshold, run_dir=args.run_dir, review=args.review)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_link_eval(args) -> int:
    from linkage.evaluation import evaluate_lake
    from tapestry.config import Settings

    settings = Settings.from_env()
    truth = args.truth or settings.truth
    if truth is None or not (Path(truth) / "records.parquet").is_file():
        print("error: no generator truth found (give --truth DIR: the folder with records.parquet)", file=sys.stderr)
        return 2
    report = evaluate_lake(settings, truth, run_dir=args.run_dir, with_plain_splink=not args.no_plain_splink)
    summary = {k: report[k] for k in ("tapestry", "baseline_deterministic", "plain_splink") if k in report}
    for name, figures in summary.items():
        print(f"{name:24s} P {figures['pairwise_precision']:.4f}  R {figures['pairwise_recall']:.4f}  "
              f"F1 {figures['pairwise_f1']:.4f}  B3-F1 {figures['bcubed_f1']:.4f}")
    print(f"{'blocking recall':24s} {report['blocking']['blocking_recall']:.4f}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:  # stand-alone: python -m linkage.cli link ...
    parser = argparse.ArgumentParser(prog="tapestry")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
