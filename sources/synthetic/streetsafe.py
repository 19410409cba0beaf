"""StreetSafe: anonymous public reports of places that feel unsafe (no person identifiers).

Reports concentrate in deprived and hotspot LSOAs and in the evening; each carries a map
pin, an ISO 8601 UTC timestamp and lists of environmental and behavioural reasons.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sources.synthetic import config as C
from sources.synthetic.events import Period

ENVIRONMENTAL = [
    "Badly lit",
    "Absence of CCTV",
    "Isolated area",
    "Overgrown vegetation",
    "Graffiti or vandalism",
    "Litter and rubbish",
    "Empty or derelict buildings",
    "Underpass or alleyway",
    "No visible security or staff",
]
BEHAVIOURAL = [
    "Verbal harassment",
    "Being followed",
    "Groups loitering",
    "Drug dealing or use",
    "Anti-social behaviour",
    "Drunk people",
    "Sexual harassment",
    "Physical intimidation",
    "Catcalling",
]
COLUMNS = ["report_id", "submitted_at", "latitude", "longitude", "environmental_reasons", "behavioural_reasons"]
_HOURS = np.array([6, 5, 4, 2, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 4, 6, 8, 9, 10, 11, 11, 10, 8], float)


def streetsafe_reports(rng: np.random.Generator, gi, period: Period, persons: int, out: Path) -> dict[str, int]:
    k = int(rng.poisson(C.EVENT_RATES["streetsafe_reports"] * persons / 1000 * period.years))
    w = gi.weight * np.array(C.DEPRIVATION_MULTIPLIER)[gi.decile - 1] ** 1.5 * np.where(gi.hotspot, 3.0, 1.0)
    lsoa = rng.choice(w.size, size=k, p=w / w.sum())
    lat = gi.lsoa_lat[lsoa] + rng.normal(0, 0.003, k)
    lon = gi.lsoa_lon[lsoa] + rng.normal(0, 0.004, k)
    day = rng.integers(0, period.days, k)
    sec = rng.choice(24, size=k, p=_HOURS / _HOURS.sum()) * 3600 + rng.integers(0, 3600, k)
    ts = period.start.astype("datetime64[s]") + (day * 86400 + sec).astype("timedelta64[s]")
    order = np.argsort(ts, kind="stable")
    n_env = rng.integers(0, 3, k)
    n_beh = rng.integers(0, 3, k)
    n_env[(n_env == 0) & (n_beh == 0)] = 1
    by_month: dict[str, list[str]] = {}
    for j, i in enumerate(order):
        env = sorted(rng.choice(len(ENVIRONMENTAL), size=n_env[i], replace=False).tolist())
        beh = sorted(rng.choice(len(BEHAVIOURAL), size=n_beh[i], replace=False).tolist())
        rec = {
            "report_id": f"SS-{j + 1:08d}",
            "submitted_at": f"{ts[i]}Z",
            "latitude": round(float(lat[i]), 5),
            "longitude": round(float(lon[i]), 5),
            "environmental_reasons": [ENVIRONMENTAL[e] for e in env],
            "behavioural_reasons": [BEHAVIOURAL[b] for b in beh],
        }
        by_month.setdefault(str(ts[i])[:7], []).append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    counts = {}
    for month, items in sorted(by_month.items()):  # months without reports get no file
        rel = f"streetsafe/reports_{month}.json"
        (out / rel).write_text("[\n" + ",\n".join(items) + "\n]\n", encoding="utf-8")
        counts[rel] = len(items)
    return counts
