"""Linkage benchmark FROM THE VAULT: ingest -> full link -> 1% delivery -> incremental link,
with time and peak RSS per step, and (unless --speed-only) quality against generator truth.

    uv run python bench/bench_link.py --persons 100000                  # speed + quality + baselines
    uv run python bench/bench_link.py --persons 1000000 --speed-only
    uv run python bench/bench_link.py --persons 100000 --persons 1000000 --speed-only --keep
    # after a failed step (e.g. the Dagster definitions did not import): continue on the same lakehouse
    uv run python bench/bench_link.py --persons 1000000 --speed-only --resume
    # each link 3 times on the same lakehouse state; the share of the full link from the medians
    uv run python bench/bench_link.py --persons 1000000 --speed-only --repeat 3

Per size N (everything under bench/work/link_<N>/, git-ignored):

0. ``synth/``: ``tapestry synth --persons N --seed S`` (reused when its summary.json says the same
   N and seed). Hold-back: the newest police monthly file(s), as many as bring the held-back
   person-bearing rows closest to ``--holdback`` (1%) of all person-bearing rows (truth counts);
   the actual share is reported.
1. ``ingest``: a fresh lakehouse (``home/``, ``secrets/``, ``landing/`` = the other files,
   hard-linked) loaded by ``orchestration.run.run_all`` (what ``tapestry run`` does) with the
   downstream jobs (``link``, and transforms / marts) switched off (``DOWNSTREAM_JOBS = ()``), so
   ingestion is timed on its own and the link below is the lake's first. Not part of the link target.
2. ``full_link``: ``linkage.lake.link_lake(settings, full=True, truth=TRUTH)``, the function the
   Dagster ``link`` job runs: raw + vault (AES-GCM, decrypted in memory) -> standardise ->
   train -> predict -> cluster -> stable ids -> sealed features + linked.* written.
   ``link_seconds_excl_truth`` is link_lake's own total minus its truth evaluation (which runs
   after the write, on generated data only): the production path. The child imports Splink,
   pandas and scipy and opens the lakehouse once before timing (a warm process, as in a Dagster
   run or `tapestry run`): both links exclude these, and both are recorded.
3. ``incremental_ingest``: the held-back files into landing, ``run_all`` again (link job off).
4. ``incremental_link``: ``link_lake(settings, truth=TRUTH)``; mode must be ``incremental``.
   With ``--repeat K``, steps 2 and 4 run K times each on the lakehouse as it was before their
   first run (a copy put back), in pairs (full, incremental) after the first two, and the share
   of the full link is also given from the medians and per pair: on a shared 2-core machine one
   run can be off by a quarter, and a run's time drifts by ~10% within the hour.
5. ``quality`` (unless --speed-only): ``linkage.evaluation.evaluate_lake(settings, TRUTH,
   with_plain_splink=True)`` on the final lake: our model, the deterministic baseline and a plain
   docs-style Splink 5 model on the same (vault) records, blocking recall, recall per source pair.

Every step runs in its own child process (``python bench/bench_link.py _child STEP ...``); peak
RSS is that child's ``ru_maxrss`` (``os.wait4``), and inside link_lake a 0.1 s RSS sampler gives
the peak per phase of some wrapped linkage.lake functions (no code path changes); link_lake's own
phase timings come from its metrics. Results: bench/results/link_<N>.json; load average (1/5/15 min) before/after each
step, since other work may share the 2 cores.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The targets: speed, memory and the incremental share at 1M persons; quality (evaluate_lake) at 100k.
TARGETS = {"full_link_seconds_1m": 120, "full_link_peak_rss_mb_1m": 6 * 1024, "incremental_share_of_full_1m": 0.05,
           "pairwise_f1": 0.98, "recall_over_baseline": 0.10, "blocking_recall": 0.98}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------- child side
class _Sampler:
    """RSS every 0.1 s in a thread; ``peak(t0, t1)`` = highest sample in a time window."""

    def __init__(self, every: float = 0.1):
        import psutil
        self.proc, self.every, self.samples, self._stop = psutil.Process(), every, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self.proc.memory_info().rss))
            self._stop.wait(self.every)

    def peak_mb(self, t0: float, t1: float) -> int | None:
        inside = [rss for t, rss in self.samples if t0 <= t <= t1 + self.every]
        return round(max(inside) / 2**20) if inside else None

    def stop(self):
        self._stop.set()
        self.thread.join()


def _instrument(sampler: _Sampler) -> list[dict]:
    """Wrap some of linkage.lake's steps (and the vault decryption) to time them and sample
    their peak RSS; returns the log. link_lake's own phase timings are in its metrics."""
    import governance.identities as identities
    import linkage.lake as lake
    import linkage.stored_state as stored_state

    calls: list[dict] = []

    def wrap(module, name: str, label: str):
        original = getattr(module, name, None)
        if original is None:
            return

        @functools.wraps(original)
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                t1 = time.perf_counter()
                calls.append({"step": label, "seconds": round(t1 - t0, 2), "t0": t0, "t1": t1})

        setattr(module, name, timed)

    for name in ("person_records", "current_rows", "link_records", "link_increment", "evaluate_lake_assignment",
                 "_write"):
        wrap(lake, name, name)
    wrap(stored_state, "open_sealed", "open_sealed")  # the sealed population decrypted and read (incremental)
    wrap(identities, "decrypt_identifiers", "decrypt_identifiers")  # AES-GCM + JSON decode, per (agency, entity)
    return calls


def _phases(calls: list[dict], sampler: _Sampler) -> dict:
    out: dict = {}
    for c in calls:
        entry = out.setdefault(c["step"], {"calls": 0, "seconds": 0.0, "peak_rss_mb": 0})
        entry["calls"] += 1
        entry["seconds"] = round(entry["seconds"] + c["seconds"], 2)
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], sampler.peak_mb(c["t0"], c["t1"]) or 0)
    return out


def _child_link(full: bool, truth: str, out: Path) -> None:
    import resource

    # A warm process, as in a Dagster run or `tapestry run`, where the definitions import these
    # before the asset runs: their import (~3 s: Splink, pandas, scipy) is not part of either link.
    t_import = time.perf_counter()
    import pandas  # noqa: F401
    import scipy.sparse  # noqa: F401
    import splink  # noqa: F401

    import linkage.pipeline  # noqa: F401
    from tapestry import lakehouse
    from tapestry.config import Settings
    import_seconds = round(time.perf_counter() - t_import, 2)
    # ... and that has opened the lakehouse before (`tapestry run` has loaded the deliveries): the
    # first connection of a process has DuckDB check the extensions' signatures (~0.25 s), once
    t_open = time.perf_counter()
    with lakehouse.connect(Settings.from_env(), read_only=True):
        pass
    first_open_seconds = round(time.perf_counter() - t_open, 2)

    sampler = _Sampler()
    calls = _instrument(sampler)
    from linkage.lake import link_lake

    settings = Settings.from_env()
    log = lambda line: print(f"    {line}", file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    result = link_lake(settings, full=full, truth=Path(truth), progress=log)
    t1 = time.perf_counter()
    sampler.stop()
    seconds = result.metrics["seconds_link_lake"]
    out.write_text(json.dumps({
        "mode": result.mode, "run_id": result.run_id,
        "link_lake_seconds": round(t1 - t0, 2),
        "truth_evaluation_seconds": seconds.get("truth_evaluation", 0.0),
        "link_seconds_excl_truth": seconds["total_excl_truth"],
        "phase_seconds": seconds,
        "imports_before_timing_seconds": import_seconds,
        "first_lakehouse_open_before_timing_seconds": first_open_seconds,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "phases": _phases(calls, sampler),
        "metrics": result.metrics,
    }, default=str))


def _child_ingest(out: Path) -> None:
    import orchestration.run as run
    from tapestry import lakehouse
    from tapestry.config import Settings

    run.DOWNSTREAM_JOBS = ()  # ingestion only: the link is measured on its own
    settings = Settings.from_env()
    t0 = time.perf_counter()
    with open(out.with_suffix(".log"), "a") as log, contextlib.redirect_stdout(log):  # run_all's report
        code = run.run_all(settings)
    seconds = time.perf_counter() - t0
    with lakehouse.connect(settings, read_only=True) as con:
        ledger = con.sql("SELECT status, count(*)::BIGINT AS files, sum(rows_read)::BIGINT AS rows_read, "
                         "sum(rows_loaded)::BIGINT AS rows_loaded FROM raw.deliveries GROUP BY ALL ORDER BY 1").pl()
    out.write_text(json.dumps({"exit_code": code, "run_all_seconds": round(seconds, 2),
                               "ledger_all_runs": ledger.to_dicts()}, default=str))
    if code:
        raise SystemExit(code)


def _child_quality(truth: str, run_dir: str, out: Path) -> None:
    from linkage.evaluation import evaluate_lake
    from tapestry.config import Settings

    log = lambda line: print(f"    {line}", file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    report = evaluate_lake(Settings.from_env(), Path(truth), run_dir=Path(run_dir), with_plain_splink=True,
                           progress=log)
    report["evaluate_lake_seconds"] = round(time.perf_counter() - t0, 2)
    out.write_text(json.dumps(report, default=str))


def child_main(argv: list[str]) -> None:
    step, out = argv[0], Path(argv[-1])
    if step == "ingest":
        _child_ingest(out)
    elif step in ("full_link", "incremental_link"):
        _child_link(step == "full_link", argv[1], out)
    elif step == "quality":
        _child_quality(argv[1], argv[2], out)
    else:
        raise SystemExit(f"unknown step {step}")


# --------------------------------------------------------------------------- parent side
def run_step(name: str, env: dict, folder: Path, *args: str, label: str | None = None, resume: bool = False) -> dict:
    """One step in a fresh child; wall time incl. interpreter start and imports, peak RSS of
    that child alone (os.wait4), load average around it. With ``resume``, a step whose result
    file a previous (interrupted) invocation left is taken from it."""
    label = label or name
    out = folder / f"step_{label}.json"
    done = folder / f"step_{label}.done.json"
    if resume and done.is_file():
        print(f"  {label}: taken from {done.relative_to(ROOT)} (--resume)", flush=True)
        return json.loads(done.read_text()) | {"resumed_from_earlier_invocation": True}
    out.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_child", name, *args, str(out)]
    print(f"  [{time.strftime('%H:%M:%S')}] {label} ...", flush=True)
    load_before = _load()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=sys.stderr, stderr=sys.stderr)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"step {label} failed (exit {proc.returncode}) after {wall:.1f} s")
    result = json.loads(out.read_text())
    result |= {"wall_seconds_incl_process_start": round(wall, 2), "child_peak_rss_mb": round(usage.ru_maxrss / 1024),
               "child_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
               "load_average_before": load_before, "load_average_after": _load(),
               "command": " ".join(["python bench/bench_link.py _child", name, *[os.path.relpath(a, ROOT)
                                                                              if a.startswith("/") else a
                                                                              for a in args]])}
    done.write_text(json.dumps(result, default=str))
    print(f"  [{time.strftime('%H:%M:%S')}] {label}: {wall:.1f} s, peak RSS {result['child_peak_rss_mb']:,} MB",
          flush=True)
    return result


def synthesise(persons: int, seed: int, synth: Path) -> tuple[Path, Path, dict]:
    landing, truth = synth / "landing", synth / "landing_truth"
    summary = truth / "summary.json"
    reused = False
    if summary.is_file() and (truth / "records.parquet").is_file():
        s = json.loads(summary.read_text())
        reused = s.get("persons") == persons and s.get("seed") == seed
    seconds = None
    if not reused:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tapestry.cli", "synth", "--persons", str(persons), "--seed", str(seed),
                        "--out", str(landing), "--force"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        seconds = round(time.perf_counter() - t0, 1)
    return landing, truth, {"reused": reused, "seconds": seconds,
                            "command": f"tapestry synth --persons {persons} --seed {seed} --out {landing.relative_to(ROOT)}"}


def choose_holdback(truth: Path, share: float) -> tuple[list[tuple[str, str]], dict]:
    """Newest police monthly files whose person-bearing rows come closest to ``share``."""
    import polars as pl

    per_file = pl.read_parquet(truth / "records.parquet", columns=["agency", "file"]).group_by("agency", "file").len()
    total = int(per_file["len"].sum())
    police = per_file.filter(pl.col("agency") == "police").sort("file", descending=True)
    chosen, rows = [], 0
    for file, n in police.select("file", "len").iter_rows():
        if chosen and abs(rows + n - share * total) >= abs(rows - share * total):
            break
        chosen.append(("police", file))
        rows += n
    return chosen, {"files": [f"{a}/{f}" for a, f in chosen], "person_bearing_rows": rows,
                    "person_bearing_rows_total": total, "share_of_rows": round(rows / total, 5),
                    "target_share": share}


def _place(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # ingestion unlinks landed files: the synth copy stays
    except OSError:
        shutil.copy2(src, dst)


def _copy_state(state: dict, folder: Path, name: str) -> None:
    """Copy of the lakehouse (home and secrets) as ``<folder>/<name>_<home|secrets>``."""
    for key in ("home", "secrets"):
        target = folder / f"{name}_{key}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(state[key], target, symlinks=True)
    os.sync()  # the copy's write-back must not run into a timed step


def _put_back(state: dict, folder: Path, name: str, *, move: bool = False) -> None:
    for key in ("home", "secrets"):
        shutil.rmtree(state[key])
        (shutil.move if move else functools.partial(shutil.copytree, symlinks=True))(folder / f"{name}_{key}", state[key])
    os.sync()


def _interleaved_repeats(full: dict, inc: dict, env: dict, folder: Path, truth: str, state: dict,
                         times: int) -> tuple[dict, dict]:
    """The full and the incremental link ``times`` times each, in pairs (full, incremental), each
    on the lakehouse as it was before its first run (copies ``repeat_before_full_*`` and
    ``repeat_before_incremental_*``, put back before every run). The target is a ratio of the two:
    on this shared machine a run's time drifts by ~10% within the hour, and runs minutes apart
    (all the full links, then all the incremental ones) carried that drift into the share."""
    runs = {"full_link": [full["link_seconds_excl_truth"]], "incremental_link": [inc["link_seconds_excl_truth"]]}
    if times > 1 and not (full.get("resumed_from_earlier_invocation") or inc.get("resumed_from_earlier_invocation")):
        _copy_state(state, folder, "repeat_after")  # the state the first incremental run left
        for i in range(2, times + 1):
            for name, before, first in (("full_link", "repeat_before_full", full),
                                        ("incremental_link", "repeat_before_incremental", inc)):
                _put_back(state, folder, before)
                again = run_step(name, env, folder, truth, label=f"{name}_repeat{i}")
                if again["mode"] != first["mode"]:
                    raise SystemExit(f"{name} repeat {i} ran {again['mode']}, the first run {first['mode']}")
                runs[name].append(again["link_seconds_excl_truth"])
        _put_back(state, folder, "repeat_after", move=True)
    pairs = [round(i / f, 4) for f, i in zip(runs["full_link"], runs["incremental_link"])]
    out = tuple({"runs": len(seconds), "seconds_excl_truth": seconds,
                 "median_seconds_excl_truth": round(statistics.median(seconds), 2),
                 "min_seconds_excl_truth": min(seconds)} for seconds in runs.values())
    out[1]["share_of_full_per_pair"] = pairs
    return out


def bench(persons: int, *, seed: int, speed_only: bool, keep: bool, holdback: float, resume: bool = False,
          repeat: int = 1) -> dict:
    folder = WORK / f"link_{persons}"
    landing_src, truth, synth_info = synthesise(persons, seed, folder / "synth")
    state = {"home": folder / "home", "secrets": folder / "secrets", "landing": folder / "landing"}
    resume = resume and (folder / "step_ingest.done.json").is_file()
    if not resume:  # a fresh lakehouse
        for path in (*state.values(), *folder.glob("step_*")):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    env = {**os.environ, "TAPESTRY_HOME": str(state["home"]), "TAPESTRY_SECRETS": str(state["secrets"]),
           "TAPESTRY_LANDING": str(state["landing"]), "TAPESTRY_TRUTH": str(truth),
           "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}
    env.pop("TAPESTRY_CATALOG", None)
    held, held_info = choose_holdback(truth, holdback)
    held_paths = {landing_src / a / f for a, f in held}
    files = [p for p in landing_src.rglob("*") if p.is_file()]
    for p in files:
        if p not in held_paths and not resume:
            _place(p, state["landing"] / p.relative_to(landing_src))
    out: dict = {
        "persons": persons, "seed": seed,
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "date": dt.datetime.now().isoformat(timespec="seconds")},
        "load_average_before": _load(),
        "note": "load average = all work on the machine (1/5/15 min); other processes may share the 2 cores",
        "synth": synth_info, "holdback": held_info,
        "landing": {"files": len(files), "mb": round(sum(p.stat().st_size for p in files) / 2**20, 1)},
    }
    out["ingest"] = run_step("ingest", env, folder, resume=resume)
    if repeat > 1:
        _copy_state(state, folder, "repeat_before_full")
    out["full_link"] = run_step("full_link", env, folder, str(truth), resume=resume)
    if not (resume and (folder / "step_incremental_ingest.done.json").is_file()):
        for p in held_paths:
            _place(p, state["landing"] / p.relative_to(landing_src))
    out["incremental_ingest"] = run_step("ingest", env, folder, label="incremental_ingest", resume=resume)
    if repeat > 1:
        _copy_state(state, folder, "repeat_before_incremental")
    out["incremental_link"] = run_step("incremental_link", env, folder, str(truth), resume=resume)
    out["full_link"]["repeats"], out["incremental_link"]["repeats"] = _interleaved_repeats(
        out["full_link"], out["incremental_link"], env, folder, str(truth), state, repeat)
    inc, full = out["incremental_link"], out["full_link"]
    inc["incremental_triggered"] = inc["mode"] == "incremental"
    out["incremental_link"]["share_of_full"] = {
        "link_lake_excl_truth": round(inc["link_seconds_excl_truth"] / full["link_seconds_excl_truth"], 4),
        "median_of_repeats_excl_truth": round(inc["repeats"]["median_seconds_excl_truth"]
                                              / full["repeats"]["median_seconds_excl_truth"], 4),
        "median_of_pairs_excl_truth": round(statistics.median(inc["repeats"]["share_of_full_per_pair"]), 4),
        "link_lake": round(inc["link_lake_seconds"] / full["link_lake_seconds"], 4),
        "wall_incl_process_start": round(inc["wall_seconds_incl_process_start"]
                                         / full["wall_seconds_incl_process_start"], 4)}
    if not speed_only:
        out["quality"] = run_step("quality", env, folder, str(truth), str(folder / "quality_run"), resume=resume)
    out["targets"] = target_status(out)
    out["load_average_after"] = _load()
    out["commands"] = {"bench": "uv run python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
                       "synth": synth_info["command"]}
    for name in ("repeat_before_full", "repeat_before_incremental"):
        for key in ("home", "secrets"):
            shutil.rmtree(folder / f"{name}_{key}", ignore_errors=True)
    if not keep:
        for path in (*state.values(), folder / "quality_run"):
            shutil.rmtree(path, ignore_errors=True)
        for path in folder.glob("step_*"):
            path.unlink()
    return out


def _breakdown_line(step: dict) -> str:
    phases = " | ".join(f"{k} {v} s" for k, v in step["phase_seconds"].items() if not k.startswith("total"))
    inner = step["metrics"].get("seconds", {})
    return phases + (" (link: " + " / ".join(f"{k} {v}" for k, v in inner.items() if k != "total") + ")"
                     if inner else "")


def target_status(r: dict) -> dict:
    """Each target this bench measures: {name: {target, measured, met}} (the medians of repeats;
    the slowest incremental run's share too, since a median can hide a run over the line)."""
    full, inc = r["full_link"], r["incremental_link"]
    out = {}

    def check(name: str, measured: float, *, at_least: bool = False, **extra) -> None:
        target = TARGETS[name]
        out[name] = {"target": target, "measured": measured,
                     "met": measured >= target if at_least else measured < target, **extra}

    if r["persons"] == 1_000_000:
        full_median = full["repeats"]["median_seconds_excl_truth"]
        check("full_link_seconds_1m", full_median)
        check("full_link_peak_rss_mb_1m", full["child_peak_rss_mb"])
        check("incremental_share_of_full_1m", inc["share_of_full"]["median_of_repeats_excl_truth"],
              slowest_run_share=round(max(inc["repeats"]["seconds_excl_truth"]) / full_median, 4),
              median_of_pairs=inc["share_of_full"].get("median_of_pairs_excl_truth"))
    if "quality" in r:
        q = r["quality"]
        ours, baseline = q["tapestry"], q["baseline_deterministic"]
        check("pairwise_f1", ours["pairwise_f1"], at_least=True)
        check("recall_over_baseline", round(ours["pairwise_recall"] - baseline["pairwise_recall"], 5), at_least=True,
              above_plain_splink=ours["pairwise_recall"] > q["plain_splink"]["pairwise_recall"]
              if "plain_splink" in q else None)
        check("blocking_recall", q["blocking"]["blocking_recall"], at_least=True)
    return out


def summary(r: dict) -> str:
    full, inc = r["full_link"], r["incremental_link"]
    fm, im = full["metrics"], inc["metrics"]
    lines = [
        f"{r['persons']:,} persons (seed {r['seed']}), {fm['records']:,} person records, "
        f"{fm.get('nodes', 0):,} distinct, {fm['persons']:,} persons linked",
        f"  ingest (run_all, no link)        {r['ingest']['wall_seconds_incl_process_start']:8.1f} s  "
        f"peak RSS {r['ingest']['child_peak_rss_mb']:,} MB",
        f"  full link from vault (link_lake) {full['link_lake_seconds']:8.1f} s  "
        f"(excl. truth evaluation {full['link_seconds_excl_truth']:.1f} s; child wall "
        f"{full['wall_seconds_incl_process_start']:.1f} s)  peak RSS {full['child_peak_rss_mb']:,} MB",
        "    full:        " + _breakdown_line(full),
        f"  1% delivery: {r['holdback']['share_of_rows']:.2%} of rows ({', '.join(r['holdback']['files'])}), "
        f"ingest {r['incremental_ingest']['wall_seconds_incl_process_start']:.1f} s",
        f"  incremental link (mode {inc['mode']}, {im.get('new_records', '?'):,} new records) "
        f"{inc['link_lake_seconds']:.1f} s (excl. truth {inc['link_seconds_excl_truth']:.1f} s) = "
        f"{inc['share_of_full']['link_lake_excl_truth']:.1%} of the full link; peak RSS {inc['child_peak_rss_mb']:,} MB",
    ]
    lines.append("    incremental: " + _breakdown_line(inc))
    if inc.get("repeats", {}).get("runs", 1) > 1 or full.get("repeats", {}).get("runs", 1) > 1:
        fr, ir = full["repeats"], inc["repeats"]
        lines.append(f"  repeated on the same lakehouse state (excl. truth): full {fr['seconds_excl_truth']} s, "
                     f"incremental {ir['seconds_excl_truth']} s; medians {fr['median_seconds_excl_truth']} / "
                     f"{ir['median_seconds_excl_truth']} s = "
                     f"{inc['share_of_full']['median_of_repeats_excl_truth']:.1%}; per (full, incremental) pair "
                     f"{', '.join(f'{x:.1%}' for x in ir.get('share_of_full_per_pair', []))}")
    if "evaluation" in fm:
        t = fm["evaluation"]["tapestry"]
        lines.append(f"  stored assignment vs truth: P {t['pairwise_precision']} R {t['pairwise_recall']} "
                     f"F1 {t['pairwise_f1']} B3-F1 {t['bcubed_f1']}")
    if "quality" in r:
        q = r["quality"]
        lines.append("  quality (evaluate_lake)        P       R       F1      B3-F1")
        for name in ("tapestry", "baseline_deterministic", "plain_splink"):
            if name in q:
                m = q[name]
                lines.append(f"    {name:<26} {m['pairwise_precision']:.4f}  {m['pairwise_recall']:.4f}  "
                             f"{m['pairwise_f1']:.4f}  {m['bcubed_f1']:.4f}")
        lines.append(f"    blocking recall {q['blocking']['blocking_recall']} over {q['blocking']['true_pairs']:,} "
                     f"true pairs")
    for name, t in r.get("targets", {}).items():
        extra = "".join(f", {k} {v}" for k, v in t.items() if k not in ("target", "measured", "met"))
        verdict = "met" if t["met"] else "NOT met"
        lines.append(f"  target {name}: {t['measured']} against {t['target']}: {verdict}{extra}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, action="append", help="population size (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--speed-only", action="store_true", help="skip evaluate_lake with the baselines")
    parser.add_argument("--keep", action="store_true",
                        help="keep the lakehouse (bench/work/link_<N>/home, secrets, landing); the synth output "
                             "is always kept for reuse")
    parser.add_argument("--holdback", type=float, default=0.01, help="share of person-bearing rows held back "
                        "for the incremental delivery (default 0.01)")
    parser.add_argument("--repeat", type=int, default=1, help="run the full and the incremental link this many "
                        "times each, on the same lakehouse state, and compare medians (default 1)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted invocation on its "
                        "lakehouse (steps already done are taken from bench/work/link_<N>/step_*.done.json)")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for persons in args.persons or [100_000]:
        print(f"{persons:,} persons:", flush=True)
        result = bench(persons, seed=args.seed, speed_only=args.speed_only, keep=args.keep, holdback=args.holdback,
                       resume=args.resume, repeat=args.repeat)
        path = RESULTS / f"link_{persons}.json"
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(summary(result))
        print(f"wrote {path.relative_to(ROOT)}", flush=True)


if __name__ == "__main__":
    main()
