"""Benchmark ingestion: generate N persons, then time `tapestry run` (every agency's ingest job,
in process, on a fresh embedded lakehouse): wall time, rows/s, peak RSS.

    uv run python bench/bench_ingest.py --persons 100000 [--persons 1000000] [--keep]

Each size runs in a fresh subprocess with its own TAPESTRY_HOME under bench/work/ingest_<N>/
(git-ignored, deleted afterwards unless --keep), so peak RSS (ru_maxrss of that subprocess)
is the load's own. Results go to bench/results/ingest_<N>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"


# `tapestry run` in a child that reports its own peak RSS (ru_maxrss, KiB) as its last stderr line
_RUN = """
import resource, sys
from tapestry.cli import main
code = main(["run"])
print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def run(persons: int, seed: int, keep: bool) -> dict:
    base = WORK / f"ingest_{persons}"
    shutil.rmtree(base, ignore_errors=True)
    env = {**os.environ, "TAPESTRY_HOME": str(base / "home"), "TAPESTRY_SECRETS": str(base / "secrets"),
           "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}
    landing = base / "home" / "landing"
    tapestry = [sys.executable, "-m", "tapestry.cli"]
    subprocess.run([*tapestry, "synth", "--persons", str(persons), "--seed", str(seed), "--out", str(landing)],
                   env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    files = sum(1 for p in landing.rglob("*") if p.is_file())
    landing_mb = sum(p.stat().st_size for p in landing.rglob("*") if p.is_file()) / 2**20
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _RUN], env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"tapestry run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    ledger = json.loads(subprocess.run(
        [*tapestry, "sql", "SELECT status, count(*)::BIGINT files, sum(rows_read)::BIGINT rows_read, "
         "sum(rows_loaded)::BIGINT rows_loaded, sum(rows_quarantined)::BIGINT rows_quarantined "
         "FROM raw.deliveries GROUP BY ALL ORDER BY 1", "--format", "json"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    rows_read = sum(r["rows_read"] or 0 for r in ledger)
    result = {
        "persons": persons, "seed": seed, "files": files, "landing_mb": round(landing_mb, 1),
        "rows_read": rows_read, "ledger": ledger,
        "seconds": round(seconds, 1), "rows_per_second": round(rows_read / seconds),
        "peak_rss_mb": round(int(proc.stderr.strip().splitlines()[-1].split()[-1]) / 1024, 1),
        # other work on this 2-core machine slows the figures: the load average says how much
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "date": dt.date.today().isoformat()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ingest_{persons}.json").write_text(json.dumps(result, indent=2) + "\n")
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, action="append", help="population size (repeatable)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    for n in args.persons or [100_000]:
        r = run(n, args.seed, args.keep)
        print(f"{n:>10,} persons: {r['rows_read']:,} rows in {r['files']} files, {r['seconds']} s "
              f"({r['rows_per_second']:,} rows/s), peak RSS {r['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
