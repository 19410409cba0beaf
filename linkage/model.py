"""The Splink 5 person-linkage model (DuckDB backend): comparisons, blocking, training.

Works on the features of ``linkage.standardise`` (one table per source, link_and_dedupe;
a single source is dedupe_only). Comparisons are built only for features that are present
in the data, so a file with only names and dates of birth gets a sensible model.

Blocking rules (``PREDICTION_BLOCKING_RULES``) were chosen by measured blocking recall and
comparison counts on generated data (see ``linkage/README.md`` and
``bench/results/link_*.json``); ``blocking_measurement`` recomputes the figures.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

# Splink logs at INFO per step and warns per untrainable level; our own progress lines say what runs.
SPLINK_LOG_LEVEL = logging.ERROR

# --------------------------------------------------------------------------- configuration
# Training sample sizes: u by random sampling, m by EM over capped samples of blocked pairs
# (full EM over large blocks grows quadratically; sampled EM gives the same parameters).
U_MAX_PAIRS = 1e6
EM_MAX_PAIRS = 4e5
SEED = 42
DUCKDB_MEMORY_LIMIT = "2500MB"
# Above this many distinct records, train on a uniform sample of them and score everything
# with the trained model (training cost then stays flat as the population grows).
TRAIN_SAMPLE_NODES = 300_000

# Prediction blocking rules: (name, SQL on l./r.). A pair is scored if any rule holds.
_FS = "l.forename_canon = r.forename_canon AND l.surname_sx = r.surname_sx"
_FSA = f"{_FS} AND l.postcode_area = r.postcode_area"
PREDICTION_BLOCKING_RULES: tuple[tuple[str, str], ...] = (
    ("nhs_number", "l.nhs_number = r.nhs_number"),
    ("pnc_id", "l.pnc_id = r.pnc_id"),
    ("upn", "l.upn = r.upn"),
    ("crn", "l.crn = r.crn"),
    ("source_person_id", "l.source_person_id = r.source_person_id"),
    ("dob+forename_sx", "l.dob = r.dob AND l.forename_sx = r.forename_sx"),
    ("dob+surname_sx", "l.dob = r.dob AND l.surname_sx = r.surname_sx"),
    # forename + surname sound-key alone grows quadratically with the population (2.1M record
    # pairs at 100k persons, 45M node pairs at 1M); split by the part of the dob that agrees,
    # plus records without a dob on either side (measured: recall 0.9980 vs 0.9982 for the
    # unsplit rule, 4.5M instead of 47M pairs at 1M persons).
    ("forename_canon+surname_sx+dob_year", f"{_FS} AND l.dob_year = r.dob_year"),
    ("forename_canon+surname_sx+dob_month_day", f"{_FS} AND substr(l.dob, 6, 5) = substr(r.dob, 6, 5)"),
    # records without a dob: the name key within the same postcode area. The name key alone paired
    # each such record with every namesake (2.4M of 4.8M node pairs at 1M persons) for no measured
    # gain: recall 0.99715 vs 0.99714, blocking recall 0.99794 vs 0.99648 at 100k persons
    # (linkage/README.md). Data without postcodes keeps the name key alone (usable_rules).
    ("forename_canon+surname_sx+postcode_area+no_dob_left", f"l.dob IS NULL AND {_FSA}"),
    ("forename_canon+surname_sx+postcode_area+no_dob_right", f"r.dob IS NULL AND {_FSA}"),
    ("dob+postcode", "l.dob = r.dob AND l.postcode_std = r.postcode_std"),
    ("dob_swapped+surname_sx", "l.dob_swapped = r.dob AND l.surname_sx = r.surname_sx"),
    ("name_swap+dob_year", "l.forename_sx = r.surname_sx AND l.surname_sx = r.forename_sx AND l.dob_year = r.dob_year"),
    ("forename_canon+postcode", "l.forename_canon = r.forename_canon AND l.postcode_std = r.postcode_std"),
)
# EM training blocks: each leaves the compared fields of the others free to be estimated.
EM_BLOCKING_RULES: tuple[str, ...] = (
    "l.forename_canon = r.forename_canon AND l.surname_std = r.surname_std",
    "l.dob = r.dob",
    "l.postcode_std = r.postcode_std AND l.dob_year = r.dob_year",
)

IDENTIFIERS = ("nhs_number", "pnc_id", "upn", "crn")


def _level(sql: str, label: str, **extra) -> dict:
    return {"sql_condition": sql, "label_for_charts": label, **extra}


def _null(sql: str) -> dict:
    return _level(sql, "null", is_null_level=True)


def comparisons(present: set[str]) -> list[dict]:
    """Splink comparison dicts for the features present (non-null somewhere)."""
    out: list[dict] = []
    swap = "(forename_std_l = surname_std_r AND surname_std_l = forename_std_r)"
    if "forename_std" in present:
        out.append({
            "output_column_name": "forename",
            "comparison_description": "forename: exact (tf), name swap, nickname/alias, fuzzy, phonetic",
            "comparison_levels": [
                _null("forename_std_l IS NULL OR forename_std_r IS NULL"),
                _level("forename_std_l = forename_std_r", "exact", tf_adjustment_column="forename_std",
                       tf_adjustment_weight=1.0),
                _level(swap, "forename and surname swapped"),
                _level("len(list_intersect(forename_aliases_l, forename_aliases_r)) > 0", "nickname / alias"),
                _level("jaro_winkler_similarity(forename_std_l, forename_std_r) >= 0.92", "jaro-winkler >= 0.92"),
                _level("jaro_winkler_similarity(forename_std_l, forename_std_r) >= 0.8 "
                       "OR forename_sx_l = forename_sx_r", "jaro-winkler >= 0.8 or phonetic"),
                _level("forename_std_l = split_part(middle_std_r, ' ', 1) "
                       "OR split_part(middle_std_l, ' ', 1) = forename_std_r", "forename = other's middle name"),
                _level("ELSE", "else"),
            ],
        })
    if "surname_std" in present:
        out.append({
            "output_column_name": "surname",
            "comparison_description": "surname: exact (tf), name swap, fuzzy, part of a double surname, phonetic",
            "comparison_levels": [
                _null("surname_std_l IS NULL OR surname_std_r IS NULL"),
                _level("surname_std_l = surname_std_r", "exact", tf_adjustment_column="surname_std",
                       tf_adjustment_weight=1.0),
                _level(swap, "forename and surname swapped"),
                _level("jaro_winkler_similarity(surname_std_l, surname_std_r) >= 0.92", "jaro-winkler >= 0.92"),
                _level("surname_std_l IN (surname_first_r, surname_last_r) "
                       "OR surname_std_r IN (surname_first_l, surname_last_l)", "part of a double surname"),
                _level("jaro_winkler_similarity(surname_std_l, surname_std_r) >= 0.8 "
                       "OR surname_sx_l = surname_sx_r", "jaro-winkler >= 0.8 or phonetic"),
                _level("ELSE", "else"),
            ],
        })
    if "dob" in present:
        out.append({
            "output_column_name": "dob",
            "comparison_description": "date of birth: exact, day/month swapped, one character, <= 10 days, same year",
            "comparison_levels": [
                _null("dob_l IS NULL OR dob_r IS NULL"),
                _level("dob_l = dob_r", "exact", tf_adjustment_column="dob", tf_adjustment_weight=0.5),
                _level("dob_swapped_l = dob_r", "day and month swapped"),
                _level("damerau_levenshtein(dob_l, dob_r) <= 1", "one character different"),
                _level("abs(date_diff('day', CAST(dob_l AS DATE), CAST(dob_r AS DATE))) <= 10", "within 10 days"),
                _level("dob_year_l = dob_year_r", "same year"),
                _level("ELSE", "else"),
            ],
        })
    if "sex" in present:
        out.append({
            "output_column_name": "sex",
            "comparison_levels": [
                _null("sex_l IS NULL OR sex_r IS NULL"),
                _level("sex_l = sex_r", "exact"),
                _level("ELSE", "else"),
            ],
        })
    if "postcode_std" in present:
        out.append({
            "output_column_name": "postcode",
            "comparison_description": "postcode: exact (tf), sector, district (outward code), area",
            "comparison_levels": [
                _null("postcode_std_l IS NULL OR postcode_std_r IS NULL"),
                _level("postcode_std_l = postcode_std_r", "exact", tf_adjustment_column="postcode_std",
                       tf_adjustment_weight=0.5),
                _level("postcode_sector_l = postcode_sector_r", "same sector"),
                _level("postcode_district_l = postcode_district_r", "same district (outward code)"),
                _level("ELSE", "else"),
            ],
        })
    for name in IDENTIFIERS:
        if name in present:
            out.append({
                "output_column_name": name,
                "comparison_levels": [
                    _null(f"{name}_l IS NULL OR {name}_r IS NULL"),
                    _level(f"{name}_l = {name}_r", "exact"),
                    _level("ELSE", "different"),
                ],
            })
    if "source_person_id" in present:
        out.append({
            "output_column_name": "source_person_id",
            "comparison_description": "the agency's own person id (only comparable within one agency)",
            "comparison_levels": [
                _null("source_person_id_l IS NULL OR source_person_id_r IS NULL "
                      "OR source_l IS DISTINCT FROM source_r"),
                _level("source_person_id_l = source_person_id_r", "exact"),
                _level("ELSE", "different"),
            ],
        })
    return out


def _rule_columns(sql: str) -> set[str]:
    import re

    return set(re.findall(r"[lr]\.(\w+)", sql))


# When a column is absent from the data, the rules that split the name key by it fall back to:
NAME_RULE = ("forename_canon+surname_sx", _FS)  # no date of birth at all
NO_DOB_NAME_RULES = (("forename_canon+surname_sx+no_dob_left", f"l.dob IS NULL AND {_FS}"),  # no postcodes
                     ("forename_canon+surname_sx+no_dob_right", f"r.dob IS NULL AND {_FS}"))


def usable_rules(rules, present: set[str]):
    """Blocking rules whose columns are all present. Without any date of birth, the split
    forename + surname rules collapse back into the plain one; without any postcode, records
    without a dob are blocked on the name key alone."""
    out = [(name, sql) for name, sql in rules if _rule_columns(sql) <= present]
    if rules is PREDICTION_BLOCKING_RULES and {"forename_canon", "surname_sx"} <= present:
        if "dob" not in present:
            out.append(NAME_RULE)
        elif "postcode_area" not in present:
            out += NO_DOB_NAME_RULES
    return out


def settings(present: set[str], *, link_type: str) -> dict:
    rules = usable_rules(PREDICTION_BLOCKING_RULES, present)
    if not rules:
        raise ValueError("no usable blocking rule: the input needs at least names, a date of birth or an identifier")
    return {
        "link_type": link_type,
        "unique_id_column_name": "unique_id",
        "comparisons": comparisons(present),
        "blocking_rules_to_generate_predictions": [{"blocking_rule": sql} for _, sql in rules],
        "retain_matching_columns": False,
        # per-field match weights (mw_*) for the review queue; only pairs above the predict
        # threshold are materialised, so the cost is small
        "retain_intermediate_calculation_columns": True,
        "additional_columns_to_retain": [],
        "probability_two_random_records_match": 1e-5,
        "max_iterations": 20,
        "em_convergence": 0.001,
    }


@dataclass
class TrainedModel:
    linker: object  # splink Linker
    db_api: object
    present: set[str]
    settings_json: dict


def present_features(nodes: pl.DataFrame) -> set[str]:
    present = {c for c in nodes.columns if nodes[c].null_count() < nodes.height}
    if "forename_aliases" in present and "forename_std" not in present:
        present.discard("forename_aliases")
    return present


def training_sample(nodes: pl.DataFrame, ids: pl.Series, size: int | None = None, seed: int = SEED) -> pl.DataFrame:
    """A uniform random sample of ``size`` nodes (all of them when fewer), drawn and ordered by
    their ``ids`` (aligned with ``nodes``: ids that do not depend on the input's order, e.g. the
    record ids), with fresh compact ``unique_id``s. Uniform sampling keeps the share of matching
    pairs among all pairs (both scale with the square of the sampling rate), so the prior, u and m
    trained on the sample hold for the whole population. The same records give the same sample in
    the same order whatever order they came in: Splink's u sampling and EM caps draw from the
    table's rows, so a table in another order trained another model (1M persons: 345-353k pairs
    and precision 0.976-0.983 from one input)."""
    size = TRAIN_SAMPLE_NODES if size is None else size
    # by a hash of the id (a shuffle), ties (rare) by the id itself
    order = pl.DataFrame({"h": ids.hash(seed=seed), "id": ids}).select(pl.arg_sort_by("h", "id")).to_series()
    if nodes.height > size:
        picks = np.sort(np.random.default_rng(seed).choice(nodes.height, size=size, replace=False))
        order = order.gather(picks)
    return nodes[order].with_columns(unique_id=pl.format("t{}", pl.int_range(pl.len(), dtype=pl.Int64)))


def splink_database(threads: int | None = None):
    """An in-memory DuckDB for Splink's linkage SQL: row order not kept (Splink never relies on
    it), and bounded memory (DuckDB spills joins and aggregates to disk instead of growing past
    ``DUCKDB_MEMORY_LIMIT``)."""
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    return con


def build_linker(nodes: pl.DataFrame, *, threads: int | None = None, present: set[str] | None = None,
                 model: dict | None = None):
    """Register the standardised nodes (one table per source) and make a Linker; with ``model``
    (a trained Splink model dict, e.g. from ``save_model``) instead of fresh settings."""
    from splink import DuckDBAPI, Linker

    present = present if present is not None else present_features(nodes)
    db_api = DuckDBAPI(connection=splink_database(threads))
    sources = nodes["source"].unique().sort().to_list()
    if len(sources) > 1:
        frames = [
            db_api.register(nodes.filter(pl.col("source") == s).to_arrow(), dataset_display_name=_table_name(s, i))
            for i, s in enumerate(sources)
        ]
        link_type = "link_and_dedupe"
    else:
        frames = db_api.register(nodes.to_arrow(), dataset_display_name="records")
        link_type = "dedupe_only"
    if model is not None:
        model = dict(model) | {"link_type": link_type}
    linker = Linker(frames, model if model is not None else settings(present, link_type=link_type),
                    log_level=SPLINK_LOG_LEVEL)
    return linker, db_api, present


def _table_name(source: str, index: int) -> str:
    import re

    return f"src_{index}_" + re.sub(r"\W+", "_", source)[:40]


def train(linker, present: set[str], *, progress=print) -> dict:
    """u by random sampling, lambda from deterministic rules, m by EM over capped samples."""
    from splink import block_on  # noqa: F401  (keeps the import-time check that splink is usable)

    training = linker.training
    deterministic = [sql for name, sql in usable_rules(PREDICTION_BLOCKING_RULES[:4], present)]
    strict_name_dob = "l.forename_std = r.forename_std AND l.surname_std = r.surname_std AND l.dob = r.dob"
    if {"forename_std", "surname_std", "dob"} <= present:
        deterministic.append(strict_name_dob)
    if deterministic:
        try:  # the prior from near-certain rules; small or odd inputs can make it undefined
            training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
        except (ValueError, ZeroDivisionError):
            progress("  training: prior from deterministic rules undefined here; EM estimates it")
        prior = linker._settings_obj._probability_two_random_records_match
        if not 0.0 < prior < 0.5:  # the rules found more pairs than they could: keep a sane prior
            linker._settings_obj._probability_two_random_records_match = 1e-4
    progress("  training: u by random sampling")
    training.estimate_u_using_random_sampling(max_pairs=U_MAX_PAIRS, seed=SEED)
    sessions = 0
    for rule in EM_BLOCKING_RULES:
        if not _rule_columns(rule) <= present:
            continue
        progress(f"  training: m by EM on blocks {rule}")
        try:
            training.estimate_parameters_using_expectation_maximisation(
                rule, max_pairs=EM_MAX_PAIRS, estimate_without_term_frequencies=True
            )
            sessions += 1
        except Exception as exc:  # a block with too few pairs cannot train; others still can
            progress(f"  training: EM on {rule!r} skipped ({type(exc).__name__})")
    return {"em_sessions": sessions}


def model_dict(linker) -> dict:
    """The trained model as a Splink settings dict (what ``save_model`` writes)."""
    return linker.misc.save_model_to_json()


def save_model(linker, path: Path) -> dict:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = linker.misc.save_model_to_json(str(path), overwrite=True)
    return model if isinstance(model, dict) else json.loads(path.read_text())


def save_charts(linker, folder: Path) -> list[Path]:
    """Match-weights and m/u charts as stand-alone HTML with the vega libraries inlined
    (Splink ships them: works offline), and the chart specs as JSON beside them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, make in (("match_weights", linker.visualisations.match_weights_chart),
                       ("m_u_parameters", linker.visualisations.m_u_parameters_chart)):
        try:
            chart = make()
            (folder / f"{name}.json").write_text(json.dumps(chart.chart_dict, default=str))
            (folder / f"{name}.html").write_text(chart.to_html(inline=True))
            written += [folder / f"{name}.json", folder / f"{name}.html"]
        except Exception as exc:  # charts are a convenience, never fail a link run
            (folder / f"{name}.error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
    return written
