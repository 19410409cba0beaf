"""Linkage benchmark: quality against generator truth and time / peak RSS of the full link.

    uv run python bench/bench_link.py --persons 100000            # quality + baselines + timing
    uv run python bench/bench_link.py --persons 1000000 --speed-only
    # reuse a landing folder already generated with the same --persons/--seed:
    uv run python bench/bench_link.py --persons 1000000 --speed-only --landing DIR --truth DIR_truth

Each size generates ``tapestry synth --persons N --seed 1`` into bench/work/link_<N>/ (kept
with --keep), then runs in a fresh subprocess (so peak RSS is that run's own):
* ``link``: canonical records -> standardise -> train -> predict -> cluster -> person ids,
  timed, with pairwise figures against truth;
* ``eval`` (unless --speed-only): ``linkage.evaluation.evaluate_landing`` with the
  deterministic baseline and the plain (docs-style) Splink 5 model.
Results: bench/results/link_<N>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"

LINK_CHILD = r"""
import json, os, sys, time, resource
from pathlib import Path
import polars as pl
from sources.person_records import canonical_records
from linkage.pipeline import link_records
from linkage.evaluation import pairwise_metrics
landing, truth = Path(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
# argv[3]: a Parquet of the canonical records (what the vault holds) instead of the agency files
records = pl.read_parquet(sys.argv[3]) if len(sys.argv) > 3 else canonical_records(landing)
t_read = time.perf_counter() - t0
result = link_records(records, progress=lambda line: print(line, file=sys.stderr, flush=True))
total = time.perf_counter() - t0
rows = pl.read_parquet(truth / "records.parquet", columns=["agency", "file", "row_number", "person_uid"])
scored = records.select("record_id", "agency", "file", "row_number").join(
    result.assignments.select("record_id", "person_id"), on="record_id").join(
    rows, on=["agency", "file", "row_number"])
print("BENCH_JSON " + json.dumps({"read_seconds": round(t_read, 2), "link_seconds": result.metrics["seconds"],
                  "load_average_after_link": [round(x, 2) for x in os.getloadavg()],
                  "read_from": "canonical Parquet" if len(sys.argv) > 3 else "landing folder (agency readers)",
                  "peak_rss_mb_self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "total_seconds": round(total, 2), "metrics": result.metrics,
                  "quality": pairwise_metrics(scored["person_id"], scored["person_uid"])}, default=str))
"""

PREP_CHILD = r"""
import sys
from pathlib import Path
from sources.person_records import canonical_records
canonical_records(Path(sys.argv[1])).write_parquet(sys.argv[2])
print("BENCH_JSON {}")
"""

# 1% delivery: full link of the other 99% (keeping the state), then link_increment of the 1%.
INC_CHILD = r"""
import json, os, sys, time, resource
import polars as pl
from linkage.pipeline import link_records
from linkage.incremental import link_increment
from linkage.evaluation import pairwise_metrics
records = pl.read_parquet(sys.argv[2])
rows = pl.read_parquet(sys.argv[1] + "/records.parquet", columns=["agency", "file", "row_number", "person_uid"])
is_new = (pl.col("record_id").hash(seed=3) % 100) == 0
quiet = lambda line: print(line, file=sys.stderr, flush=True)
t0 = time.perf_counter()
full = link_records(records.filter(~is_new), keep_state=True, progress=quiet)
t_full = time.perf_counter() - t0
t1 = time.perf_counter()
inc = link_increment(full.state, records.filter(is_new), progress=quiet)
t_inc = time.perf_counter() - t1
scored = records.select("record_id", "agency", "file", "row_number").join(inc.state.assignments, on="record_id").join(
    rows, on=["agency", "file", "row_number"])
print("BENCH_JSON " + json.dumps({"full_link_99pct_seconds": round(t_full, 2), "increment_1pct_seconds": round(t_inc, 2),
    "increment_share_of_full": round(t_inc / t_full, 4), "increment_metrics": inc.metrics,
    "quality_after_increment": pairwise_metrics(scored["person_id"], scored["person_uid"]),
    "load_average_after": [round(x, 2) for x in os.getloadavg()],
    "peak_rss_mb_self": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}, default=str))
"""

EVAL_CHILD = r"""
import json, sys
from pathlib import Path
from linkage.evaluation import evaluate_landing
report = evaluate_landing(Path(sys.argv[1]), Path(sys.argv[2]), run_dir=Path(sys.argv[3]),
                          progress=lambda line: print(line, file=sys.stderr, flush=True))
print("BENCH_JSON " + json.dumps(report, default=str))
"""


def run_child(code: str, *args: str) -> tuple[dict, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"child failed ({proc.returncode})")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far: run the biggest last, or
    # read it per size from a fresh bench process (one --persons per invocation).
    line = [x for x in proc.stdout.splitlines() if x.startswith("BENCH_JSON ")][-1]
    return json.loads(line[len("BENCH_JSON "):]), wall, max(peak_kb, before)


def bench(persons: int, *, speed_only: bool, keep: bool, seed: int = 1, landing: Path | None = None,
          truth: Path | None = None, incremental: bool = False) -> dict:
    folder = WORK / f"link_{persons}"
    if landing is None:
        landing, truth = folder / "landing", folder / "landing_truth"
    else:
        keep = True  # never delete a folder we did not generate
    if not (truth / "records.parquet").is_file():
        subprocess.run([sys.executable, "-m", "tapestry.cli", "synth", "--persons", str(persons), "--seed", str(seed),
                        "--out", str(landing), "--force"], cwd=ROOT, check=True, capture_output=True)
    out: dict = {"persons": persons, "seed": seed, "python": platform.python_version(),
                 "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "load_average_before": [round(x, 2) for x in os.getloadavg()],
                 "note": "load average = other work on the 2-core machine during the run (1/5/15 min)"}
    link, wall, peak = run_child(LINK_CHILD, str(landing), str(truth))
    out["link"] = link | {"wall_seconds_incl_imports": round(wall, 2), "peak_rss_mb": round(peak / 1024)}
    canonical = folder / "canonical.parquet"
    if not canonical.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        run_child(PREP_CHILD, str(landing), str(canonical))
    link, wall, _ = run_child(LINK_CHILD, str(landing), str(truth), str(canonical))
    out["link_from_canonical_parquet"] = link | {"wall_seconds_incl_imports": round(wall, 2)}
    if incremental:
        inc, wall, _ = run_child(INC_CHILD, str(truth), str(canonical))
        out["incremental"] = inc | {"wall_seconds_incl_imports": round(wall, 2)}
    if not speed_only:
        report, wall, peak = run_child(EVAL_CHILD, str(landing), str(truth), str(folder / "run"))
        out["evaluation"] = report | {"wall_seconds": round(wall, 2), "peak_rss_mb_max_so_far": round(peak / 1024)}
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, required=True)
    parser.add_argument("--speed-only", action="store_true", help="skip the evaluation with baselines")
    parser.add_argument("--keep", action="store_true", help="keep bench/work/link_<N>/")
    parser.add_argument("--incremental", action="store_true", help="also time a 1%% delivery (link_increment)")
    parser.add_argument("--landing", type=Path, help="an existing landing folder (tapestry synth output)")
    parser.add_argument("--truth", type=Path, help="its truth folder (default: LANDING_truth)")
    args = parser.parse_args()
    truth = args.truth or (args.landing.with_name(args.landing.name + "_truth") if args.landing else None)
    result = bench(args.persons, speed_only=args.speed_only, keep=args.keep, landing=args.landing, truth=truth,
                   incremental=args.incremental)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"link_{args.persons}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    link = result["link"]
    print(f"{args.persons:,} persons: {link['metrics']['records']:,} records, total {link['total_seconds']} s, "
          f"peak RSS {link['peak_rss_mb']} MB, F1 {link['quality']['pairwise_f1']}")
    pq = result["link_from_canonical_parquet"]
    print(f"  from canonical Parquet: total {pq['total_seconds']} s, peak RSS {pq['peak_rss_mb_self']} MB")
    if "incremental" in result:
        inc = result["incremental"]
        print(f"  1% delivery: {inc['increment_1pct_seconds']} s = {inc['increment_share_of_full']:.1%} of the full link")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
