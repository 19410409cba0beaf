"""Orchestrates chunked generation: population -> events -> noisy extracts -> files + truth."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from sources.synthetic import events as E
from sources.synthetic import extracts as X
from sources.synthetic.extracts import _str
from sources.synthetic.faults import inject_faults as _inject_faults
from sources.reference.writer import write_reference_folder
from sources.synthetic.geography import load_geography, reference_frames
from sources.synthetic.population import GeoIndex, make_chunk
from sources.synthetic.streetsafe import streetsafe_reports
from sources.synthetic.truth_readme import TRUTH_README

AGENCIES = ("police", "childrens_social_care", "adult_social_care", "probation", "nhs", "streetsafe")
REFERENCE_DIR = "reference"  # <landing>/reference/: the geography as public-format reference files
CHUNK_PERSONS = 50_000
NDJSON_PART_LINES = 100_000
MAX_PERSONS = 9_000_000
TRUTH_FILES = (
    "persons.parquet",
    "households.parquet",
    "records.parquet",
    "events.parquet",
    "lsoas.parquet",
    "faults.json",
    "README.md",
    "summary.json",
)
HIDDEN = [
    "_token",
    "_sort",
    "_record_id",
    "_person_id",
    "_pidx",
    "_errors",
    "_event_type",
    "_event_code",
    "_event_date",
    "_event_lsoa",
    "_event_role",
]


def _is_inside(child: Path, parent: Path) -> bool:
    try:
        child.relative_to(parent)
        return True
    except ValueError:
        return False


def _prepare_dirs(out: Path, truth: Path, overwrite: bool, reference: bool = False) -> None:
    out_r, truth_r = out.resolve(), truth.resolve()
    if _is_inside(truth_r, out_r):
        raise ValueError(
            f"the truth folder must be outside the landing folder (got truth={truth} inside out={out}); "
            "the pipeline reads everything under out"
        )
    if _is_inside(out_r, truth_r):
        raise ValueError(f"the landing folder must not be inside the truth folder (out={out}, truth={truth})")
    owned = AGENCIES + ((REFERENCE_DIR,) if reference else ())
    busy = [a for a in owned if (out / a).is_dir() and any(p.is_file() for p in (out / a).rglob("*"))]
    truth_busy = truth.is_dir() and any(truth.iterdir())
    if (busy or truth_busy) and not overwrite:
        where = ", ".join(str(out / a) for a in busy) or str(truth)
        raise ValueError(
            f"refusing to write: {where} already holds files; pick an empty folder or use overwrite/--force"
        )
    if overwrite:
        for a in owned:
            if (out / a).exists():
                shutil.rmtree(out / a)
        if truth.is_dir():
            foreign = [p.name for p in truth.iterdir() if p.name not in TRUTH_FILES]
            if foreign:
                raise ValueError(f"refusing to clear truth folder {truth}: it holds files the generator did not write")
            for name in TRUTH_FILES:
                (truth / name).unlink(missing_ok=True)
    for a in AGENCIES:
        (out / a).mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)


class _ParquetSink:
    def __init__(self, path: Path):
        self.path, self.writer, self.schema, self.rows = path, None, None, 0

    def write(self, df: pl.DataFrame) -> None:
        if df.height == 0 and self.writer is not None:
            return
        df = df.with_columns(
            [pl.col(c).cast(pl.String) for c, t in df.schema.items() if t == pl.Null or t == pl.Object]
        )
        table = df.to_arrow()
        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        else:
            table = table.cast(self.schema)
        self.writer.write_table(table)
        self.rows += df.height

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _Landing:
    """Appends rows to landing files and produces ground-truth record rows."""

    def __init__(self, out: Path, period: E.Period):
        self.out = out
        self.counts: dict[str, int] = {}
        self.nd_part = {"patient": 1, "encounter": 1}
        self.probation: list[pl.DataFrame] = []
        self.tracked_records: list[pl.DataFrame] = []
        first_month = str(period.start.astype("datetime64[M]"))
        self.tracked_file = f"police/occurrences_{first_month}.csv"

    def _records(self, rows: X.Rows, df: pl.DataFrame, files: list[str], row_numbers: np.ndarray) -> pl.DataFrame:
        extra = [c for c in ("_uid", "_event_id") if c in df.columns]
        return pl.DataFrame(
            {
                "agency": _str([rows.agency] * df.height),
                "file": _str([f.split("/", 1)[1] for f in files]),
                "entity": _str([rows.entity] * df.height),
                "row_number": pl.Series(row_numbers, dtype=pl.Int64),
                "source_record_id": df["_record_id"].cast(pl.String),
                "source_person_id": df["_person_id"].cast(pl.String),
                "_pidx": df["_pidx"],
                "_event_key": df["_event_key"],
                "errors": df["_errors"].cast(pl.String),
            }
        ).with_columns([df[c] for c in extra])

    def write_csv(self, rows: X.Rows) -> pl.DataFrame:
        cols = X.COLUMNS[(rows.agency, rows.entity)]
        out = []
        df = rows.df.sort("_token", "_sort", "_record_id")
        for (tok,), part in df.group_by("_token", maintain_order=True):
            rel = f"{rows.agency}/{rows.entity}_{tok}.csv"
            start = self.counts.get(rel, 0)
            with (self.out / rel).open("ab") as f:
                part.select(cols).write_csv(f, include_header=start == 0)
            self.counts[rel] = start + part.height
            out.append(self._records(rows, part, [rel] * part.height, np.arange(start + 1, start + part.height + 1)))
        return pl.concat(out)

    def write_ndjson(self, rows: X.Rows) -> pl.DataFrame:
        stem = {"patient": "Patient", "encounter": "Encounter"}[rows.entity]
        lines = rows.df["_line"].to_list()
        files, nums = [], []
        i = 0
        while i < len(lines):
            rel = f"nhs/{stem}_{self.nd_part[rows.entity]:03d}.ndjson"
            have = self.counts.get(rel, 0)
            room = NDJSON_PART_LINES - have
            if room <= 0:
                self.nd_part[rows.entity] += 1
                continue
            take = lines[i : i + room]
            with (self.out / rel).open("a", encoding="utf-8", newline="\n") as f:
                f.write("\n".join(take) + "\n")
            files += [rel] * len(take)
            nums.append(np.arange(have + 1, have + len(take) + 1))
            self.counts[rel] = have + len(take)
            i += len(take)
        return self._records(rows, rows.df, files, np.concatenate(nums) if nums else np.empty(0, np.int64))

    def write_probation(self, snapshots: list[str]) -> list[pl.DataFrame]:
        """One workbook per snapshot date (header only when nobody is under supervision)."""
        import datetime as dt

        import xlsxwriter

        cols = X.COLUMNS[("probation", "caseload")]
        df = (
            pl.concat(self.probation, how="vertical_relaxed").sort("_token", "_sort", "_record_id")
            if self.probation
            else None
        )
        recs = []
        for tok in snapshots:
            part = df.filter(pl.col("_token") == tok) if df is not None else None
            rel = f"probation/caseload_{tok}.xlsx"
            wb = xlsxwriter.Workbook(str(self.out / rel), {"strings_to_numbers": False})
            wb.set_properties(
                {
                    "title": "Probation caseload snapshot",
                    "author": "nDelius extract",
                    "created": dt.datetime.fromisoformat(f"{tok}T06:00:00"),
                }
            )
            ws = wb.add_worksheet("Caseload")
            bold = wb.add_format({"bold": True})
            dfmt = wb.add_format({"num_format": "dd/mm/yyyy"})
            ws.write_row(0, 0, cols, bold)
            n = 0 if part is None else part.height
            if n:
                for r, row in enumerate(part.select(cols).iter_rows(), start=1):
                    for c, v in enumerate(row):
                        if v is None:
                            continue
                        if isinstance(v, dt.date):
                            ws.write_datetime(r, c, dt.datetime(v.year, v.month, v.day), dfmt)
                        else:
                            ws.write_string(r, c, str(v))
            ws.set_column(0, len(cols) - 1, 16)
            wb.close()
            self.counts[rel] = n
            if n:
                recs.append(self._records(X.Rows("probation", "caseload", part), part, [rel] * n, np.arange(1, n + 1)))
        return recs


def generate(
    persons: int,
    seed: int,
    out: Path,
    truth: Path | None = None,
    geography: Path | None = None,
    inject_faults: bool = False,
    error_scale: float = 1.0,
    start: str = "2024-10-01",
    months: int = 24,
    progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
    write_reference: bool = False,
) -> dict:
    """Generate a synthetic population and its agency extracts. See sources/synthetic/README.md.

    ``write_reference=True`` also writes the geography it used (built-in or ``geography``)
    as public-format reference files into ``out/reference/`` (LSOA centroids, LA codes, the
    LSOA 2011->2021 lookup, IMD 2019 File_1 / File_6, an NSPL-style postcode lookup), so a
    demo loads it like real downloads (``sources.reference.load_reference``).
    """
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    if not 1 <= persons <= MAX_PERSONS:
        raise ValueError(f"persons must be between 1 and {MAX_PERSONS:,}")
    if months < 1 or error_scale < 0:
        raise ValueError("months must be >= 1 and error_scale >= 0")
    try:
        np.datetime64(start, "D")
    except ValueError as exc:
        raise ValueError(f"start must be an ISO date YYYY-MM-DD (got {start!r})") from exc
    out = Path(out)
    truth = Path(truth) if truth is not None else out.parent / f"{out.name}_truth"
    _prepare_dirs(out, truth, overwrite, write_reference)

    period = E.Period(start, months)
    geo = load_geography(Path(geography) if geography else None, seed)
    gi = GeoIndex(geo)
    say(f"geography: {geo.lsoas.height:,} LSOAs, {geo.postcodes.height:,} postcodes ({geo.mode})")
    geo.lsoas.write_parquet(truth / "lsoas.parquet")
    reference_files = (
        write_reference_folder(out / REFERENCE_DIR, *reference_frames(geo, seed)) if write_reference else []
    )
    salt = seed % 1_000_003
    counters = X.Counters({})
    landing = _Landing(out, period)
    sinks = {k: _ParquetSink(truth / f"{k}.parquet") for k in ("persons", "households", "records", "events")}
    root = np.random.SeedSequence([seed, 20241001])
    n_chunks = (persons + CHUNK_PERSONS - 1) // CHUNK_PERSONS
    chunk_seeds = root.spawn(n_chunks + 1)
    chunk0_rows: list[X.Rows] = []
    la_of_lsoa = dict(zip(gi.lsoa_code, gi.la_code))
    hh_total = 0
    done = 0
    event_counter = 0
    for ci in range(n_chunks):
        n = min(CHUNK_PERSONS, persons - done)
        rng = np.random.Generator(np.random.PCG64(chunk_seeds[ci]))
        P, H, A = make_chunk(rng, gi, done, n, hh_total, period.start, salt)
        occ, inv = E.police_events(rng, A, period)
        refs, facs, cps = E.csc_events(rng, A, period, occ, inv)
        s42 = E.asc_events(rng, A, period)
        sup = E.probation_events(rng, A, period)
        ed = E.nhs_events(rng, A, period, occ, inv)
        rows: list[X.Rows] = []
        rows += X.police_rows(rng, P, A, occ, inv, counters, error_scale, gi)
        rows += X.csc_rows(rng, P, A, refs, facs, cps, counters, error_scale)
        rows += X.asc_rows(rng, P, A, s42, counters, error_scale)
        rows += X.probation_rows(rng, P, A, sup, counters, error_scale, period)
        rows += X.nhs_rows(rng, P, A, ed, counters, error_scale)
        recs = []
        ev_frames = []
        pending_probation = []
        for r in rows:
            df = r.df.with_columns(
                _event_key=(pl.col("_pidx").cast(pl.String) if r.agency == "probation" else pl.col("_record_id"))
            )
            r = X.Rows(r.agency, r.entity, df)
            if ci == 0:
                chunk0_rows.append(r)
            if r.agency == "nhs":
                recs.append(landing.write_ndjson(r))
            elif r.agency == "probation":
                pending_probation.append(df)
            else:
                recs.append(landing.write_csv(r))
            ev = df.filter(pl.col("_event_type").is_not_null()).unique("_event_key", keep="first", maintain_order=True)
            if ev.height:
                ev_frames.append(
                    ev.select(
                        pl.lit(r.agency).alias("agency"),
                        pl.col("_event_type").alias("event_type"),
                        pl.col("_event_code").alias("code"),
                        pl.col("_event_date").alias("event_date"),
                        pl.col("_event_lsoa").alias("lsoa_code"),
                        pl.col("_pidx"),
                        pl.col("_event_role").alias("role"),
                        pl.col("_event_key"),
                    )
                )
        pu = P["person_uid"].to_numpy()
        lsoa = P["lsoa_code"].to_numpy()
        if ci == 0:
            landing.chunk0_uid = pu
        if ev_frames:
            ev = pl.concat(ev_frames)
            eid = np.arange(event_counter, event_counter + ev.height)
            event_counter += ev.height
            pidx = ev["_pidx"].to_numpy()
            ev_lsoa = np.where(ev["lsoa_code"].is_null().to_numpy(), lsoa[pidx], ev["lsoa_code"].to_numpy())
            ev = ev.with_columns(
                event_id=_str([f"EV{i:09d}" for i in eid]),
                lsoa_code=_str(ev_lsoa),
                la_code=_str([la_of_lsoa[c] for c in ev_lsoa]),
                person_uid=_str(pu[pidx]),
            )
            key_to_event = ev.select("agency", "_event_key", "event_id")
            sinks["events"].write(
                ev.select(
                    "event_id",
                    "agency",
                    "event_type",
                    "code",
                    "event_date",
                    "lsoa_code",
                    "la_code",
                    "person_uid",
                    "role",
                )
            )
        else:
            key_to_event = pl.DataFrame(schema={"agency": pl.String, "_event_key": pl.String, "event_id": pl.String})
        for rec in recs:
            fin = _finish_records(rec, pu, key_to_event)
            tracked_name = landing.tracked_file.split("/", 1)[1]
            if fin.height and fin["agency"][0] == "police" and tracked_name in set(fin["file"].unique().to_list()):
                landing.tracked_records.append(fin.filter(pl.col("file") == tracked_name))
            sinks["records"].write(fin)
        for df in pending_probation:
            k2e = key_to_event.filter(pl.col("agency") == "probation").select(
                "_event_key", pl.col("event_id").alias("_event_id")
            )
            landing.probation.append(
                df.with_columns(_uid=_str(pu[df["_pidx"].to_numpy()])).join(
                    k2e, on="_event_key", how="left", maintain_order="left"
                )
            )
        sinks["persons"].write(P.drop("person_index"))
        sinks["households"].write(H)
        hh_total += H.height
        done += n
        say(f"persons {done:,}/{persons:,} ({time.perf_counter() - t0:.1f} s)")

    for df in landing.write_probation([str(d) for d in X.snapshot_dates(period)]):
        sinks["records"].write(_finish_records_uid(df))
    ss_rng = np.random.Generator(np.random.PCG64(chunk_seeds[-1]))
    ss_counts = streetsafe_reports(ss_rng, gi, period, persons, out)
    landing.counts.update(ss_counts)

    faults: list[dict] = []
    if inject_faults:
        faults, fault_records = _inject_faults(out, chunk0_rows, landing, period, seed)
        for fr in fault_records:
            sinks["records"].write(fr)
    for s in sinks.values():
        s.close()
    (truth / "faults.json").write_text(json.dumps(faults, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (truth / "README.md").write_text(TRUTH_README, encoding="utf-8")

    files: dict[str, list[dict]] = {}
    for rel, n in sorted(landing.counts.items()):
        a, f = rel.split("/", 1)
        files.setdefault(a, []).append({"file": f, "rows": n})
    person_rows = sum(n for rel, n in landing.counts.items() if not rel.startswith("streetsafe/"))
    summary = {
        "persons": persons,
        "households": hh_total,
        "seed": seed,
        "start": start,
        "months": months,
        "geography": geo.mode,
        "error_scale": error_scale,
        "files": files,
        "person_bearing_rows": person_rows,
        "rows_per_person": round(person_rows / persons, 3),
        "records": sinks["records"].rows,
        "events": sinks["events"].rows,
        "faults_injected": len(faults),
        **({"reference": [f"{REFERENCE_DIR}/{f}" for f in reference_files]} if write_reference else {}),
        "landing": str(out),
        "truth": str(truth),
    }
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    (truth / "summary.json").write_text(
        json.dumps({k: v for k, v in summary.items() if k not in ("seconds", "landing", "truth")}, indent=2) + "\n",
        encoding="utf-8",
    )
    say(
        f"done: {person_rows:,} person rows in {sum(len(v) for v in files.values())} files ({summary['seconds']:.1f} s)"
    )
    return summary


def _finish_records(rec: pl.DataFrame, pu: np.ndarray, key_to_event: pl.DataFrame) -> pl.DataFrame:
    rec = rec.with_columns(person_uid=_str(pu[rec["_pidx"].to_numpy()]))
    return _attach_events(rec, key_to_event)


def _attach_events(rec: pl.DataFrame, key_to_event: pl.DataFrame) -> pl.DataFrame:
    rec = rec.join(key_to_event, on=["agency", "_event_key"], how="left", maintain_order="left")
    return rec.select(
        "agency",
        "file",
        "entity",
        "row_number",
        "source_record_id",
        "source_person_id",
        "person_uid",
        "event_id",
        "errors",
    )


def _finish_records_uid(rec: pl.DataFrame) -> pl.DataFrame:
    return rec.select(
        "agency",
        "file",
        "entity",
        "row_number",
        "source_record_id",
        "source_person_id",
        pl.col("_uid").alias("person_uid"),
        pl.col("_event_id").alias("event_id"),
        "errors",
    )
