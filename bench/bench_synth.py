"""Benchmark the synthetic generator: wall time and peak RSS per population size.

    uv run python bench/bench_synth.py --persons 100000 [--persons 1000000] [--seed 1] [--keep]

Each size runs in a fresh subprocess (so peak RSS is that run's own), writing into
bench/work/synth_<N>/ (git-ignored; deleted afterwards unless --keep). Results go to
bench/results/synth_<N>.json.
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

_CHILD = """
import json, sys, time, resource
from pathlib import Path
sys.path.insert(0, {root!r})
from sources.synthetic import generate
t = time.perf_counter()
s = generate({persons}, {seed}, Path({out!r}), inject_faults={faults}, progress=lambda m: print(m, file=sys.stderr, flush=True))
s["wall_seconds"] = time.perf_counter() - t
s["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(s))
"""


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def run(persons: int, seed: int, keep: bool, faults: bool) -> dict:
    base = WORK / f"synth_{persons}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    out = base / "landing"
    code = _CHILD.format(root=str(ROOT), persons=persons, seed=seed, out=str(out), faults=faults)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=True)
    wall = time.perf_counter() - t0
    s = json.loads(proc.stdout.strip().splitlines()[-1])
    n_files = sum(len(v) for v in s["files"].values())
    result = {
        "persons": persons,
        "seed": seed,
        "households": s["households"],
        "records": s["records"],
        "person_bearing_rows": s["person_bearing_rows"],
        "rows_per_person": s["rows_per_person"],
        "events": s["events"],
        "files": n_files,
        "rows_by_agency": {a: sum(f["rows"] for f in v) for a, v in s["files"].items()},
        "landing_mb": round(_dir_size(out) / 2**20, 1),
        "truth_mb": round(_dir_size(base / "landing_truth") / 2**20, 1),
        "seconds": round(s["wall_seconds"], 1),
        "process_seconds": round(wall, 1),
        "peak_rss_mb": round(s["peak_rss_mb"], 1),
        "inject_faults": faults,
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "date": dt.date.today().isoformat(),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"synth_{persons}.json").write_text(json.dumps(result, indent=2) + "\n")
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, action="append", help="population size (repeatable)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep bench/work/synth_<N>/ afterwards")
    ap.add_argument("--no-faults", action="store_true", help="do not inject faults")
    args = ap.parse_args(argv)
    for n in args.persons or [100_000]:
        r = run(n, args.seed, args.keep, not args.no_faults)
        print(
            f"{n:>10,} persons: {r['seconds']:7.1f} s, peak RSS {r['peak_rss_mb']:7.1f} MB, "
            f"{r['person_bearing_rows']:,} person rows ({r['rows_per_person']}/person), {r['files']} files, "
            f"landing {r['landing_mb']} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
