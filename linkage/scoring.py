"""Scoring with a saved Splink model: Splink's DuckDB linker over registered frames, and the same
scoring compiled once into SQL and replayed.

An incremental run scores its delivery with one Splink ``predict_between``. For one model and one
input schema Splink writes the same SQL every time, and spends ~0.1 s of Python and a database of
its own writing it (settings objects, comparison SQL through sqlglot, column lookups): a third of
the scoring at 1M persons. ``compiled_scoring`` therefore has Splink write it once, on empty
frames of the same schema, records the statements Splink executes (each step's query, in order),
and keeps them in memory and, given a folder, in a file beside the model (``scoring-<digest>.json``,
written by the full link for the incremental runs after it). ``CompiledScoring.run`` replays them
on the real frames in a DuckDB of its own: the same SQL, so the same pairs and weights (tested
against Splink's own ``predict_between``). The digest covers Splink's version, the model, the
frames' names and columns, the term-frequency columns and the threshold: any change compiles
again. The files hold the model's SQL only (parameters, no data).

The replay also splits its inputs into batches of ``_BATCH_ROWS``: DuckDB then scores them on
both cores (a delivery's ~70k blocked pairs fit in one batch, scanned by one thread).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from linkage import model as M

_FORMAT = 1  # of the compiled file; a change compiles again
_BATCH_ROWS = 8192


def register(db_api, frame: pl.DataFrame, name: str, *, with_source_dataset: bool = False):
    """``frame`` registered with Splink's ``db_api`` as table ``name``."""
    if with_source_dataset:  # the trained model is link_and_dedupe: its SQL expects source_dataset
        frame = frame.with_columns(source_dataset=pl.lit(name))
    return db_api.register(frame.to_arrow(), dataset_display_name=name)


def _scored_columns_sql(mw: list[str], source: str) -> str:
    return (f"SELECT CAST(unique_id_l AS VARCHAR) AS id_l, CAST(unique_id_r AS VARCHAR) AS id_r, match_probability, "
            f"match_weight{''.join(', ' + c for c in mw)} FROM {source}")


def _weight_columns(con, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0].startswith("mw_")]


def scored_frame(db_api, predictions) -> pl.DataFrame:
    """Splink's predictions as id_l, id_r, match_probability, match_weight, mw_*."""
    con = db_api.duckdb_con
    return con.execute(_scored_columns_sql(_weight_columns(con, predictions.physical_name),
                                           predictions.physical_name)).pl()


@functools.lru_cache(maxsize=1)
def scoring_classes():
    """Splink's DuckDB API and Linker, for scoring with a saved model:
    - the API reads the columns of the frames we register once: Splink asks for an input table's
      columns a dozen times per prediction (each an information_schema query and a sqlglot parse
      of every name, ~0.1 s in all for a delivery), and a registered frame never changes;
    - the Linker does not check a saved model's columns again (it was checked when it was
      trained): Splink runs those checks, ~9 ms of sqlglot per delivery, even with
      ``validate_settings=False``, which only silences their report."""
    from splink import DuckDBAPI, Linker
    from splink.internals.duckdb.dataframe import DuckDBDataFrame

    class RegisteredFrame(DuckDBDataFrame):
        @property
        def columns(self):
            if "_columns" not in self.__dict__:
                self.__dict__["_columns"] = super().columns
            return list(self.__dict__["_columns"])

    class ScoringAPI(DuckDBAPI):
        def _create_backend_table(self, input_table, templated_name, overwrite=False):
            frame = super()._create_backend_table(input_table, templated_name, overwrite)
            return RegisteredFrame(frame.templated_name, frame.physical_name, self)

    class ScoringLinker(Linker):
        def _validate_settings(self, validate_settings):
            if validate_settings:
                super()._validate_settings(validate_settings)

    return ScoringAPI, ScoringLinker


def scoring_linker(frames: dict[str, pl.DataFrame], model: dict, tfs: dict[str, pl.DataFrame], api_class=None):
    """A Splink linker over ``frames`` (name -> nodes) with the saved model and registered term
    frequencies, on its own DuckDB: (connection, db_api, linker, registered tables)."""
    import duckdb

    default_api, linker_class = scoring_classes()
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET memory_limit = '{M.DUCKDB_MEMORY_LIMIT}'")
    db_api = (api_class or default_api)(connection=con)
    tables = {name: register(db_api, frame, name) for name, frame in frames.items()}
    linker = linker_class(list(tables.values()), dict(model), log_level=M.SPLINK_LOG_LEVEL, validate_settings=False)
    for col, table in tfs.items():
        linker.table_management.register_term_frequency_lookup(register(db_api, table, f"tf_{col}"), col)
    return con, db_api, linker, tables


@dataclass(frozen=True)
class CompiledScoring:
    """Splink's ``predict_between`` of a model, as the queries it runs: ``steps`` (table name,
    query), each materialised under its name for the next, then ``select`` (the scored pairs as
    ``scored_frame`` gives them)."""
    steps: tuple[tuple[str, str], ...]
    select: str

    def run(self, frames: dict[str, pl.DataFrame], tfs: dict[str, pl.DataFrame]) -> pl.DataFrame:
        """The scored pairs of ``frames`` (the names and columns it was compiled for)."""
        con = _database().cursor()  # its registrations are its own: runs may overlap
        try:
            for name, frame in (*frames.items(), *((f"tf_{c}", t) for c, t in tfs.items())):
                con.register(name, _batched(frame.to_arrow()))
            for name, query in self.steps:
                con.register(name, _batched(con.execute(query).to_arrow_table()))
            return con.execute(self.select).pl()
        finally:
            con.close()


def _batched(table: pa.Table) -> pa.Table:
    return pa.Table.from_batches(table.to_batches(max_chunksize=_BATCH_ROWS), schema=table.schema)


@functools.lru_cache(maxsize=1)
def _database():
    """The replay's in-memory DuckDB, one per process (opening one costs ~7 ms, closing it ~9):
    each run works on a cursor of its own."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET memory_limit = '{M.DUCKDB_MEMORY_LIMIT}'")
    return con


_compiled: dict[str, CompiledScoring] = {}
_compiling = threading.Lock()


def compiled_scoring(model: dict, frames: dict[str, pl.DataFrame], tfs: dict[str, pl.DataFrame], threshold: float,
                     cache_dir: Path | None = None) -> CompiledScoring:
    """``predict_between(frames["existing"], frames["delivery"])`` of ``model`` at ``threshold``
    (match probability), compiled for frames of these names and columns and these
    term-frequency columns: from memory, from ``cache_dir``, or by Splink on empty frames (then
    kept in both)."""
    import splink

    digest = hashlib.sha256(json.dumps({
        "format": _FORMAT, "splink": splink.__version__, "model": model, "threshold": threshold,
        "frames": {name: frame.columns for name, frame in frames.items()}, "tf": sorted(tfs)},
        sort_keys=True, default=str).encode()).hexdigest()[:24]
    with _compiling:
        if digest in _compiled:
            return _compiled[digest]
        path = Path(cache_dir) / f"scoring-{digest}.json" if cache_dir is not None else None
        compiled = _read(path) if path is not None else None
        if compiled is None:
            compiled = _compile(model, frames, tfs, threshold)
            if path is not None:  # written whole, then renamed: a reader never sees half a file
                tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps({"splink": splink.__version__, "steps": compiled.steps,
                                           "select": compiled.select}, indent=1))
                tmp.replace(path)
        _compiled[digest] = compiled
        return compiled


def _read(path: Path) -> CompiledScoring | None:
    """The compiled scoring kept in ``path``; None when there is none (or not a readable one: it is
    then compiled again and rewritten)."""
    try:
        stored = json.loads(path.read_text())
        return CompiledScoring(tuple((name, query) for name, query in stored["steps"]), stored["select"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _compile(model: dict, frames: dict[str, pl.DataFrame], tfs: dict[str, pl.DataFrame],
             threshold: float) -> CompiledScoring:
    """Splink's own ``predict_between`` on empty frames of the same schema, its queries recorded."""
    recorded: list[tuple[str, str]] = []
    api_class, _ = scoring_classes()

    class RecordingAPI(api_class):
        def _setup_for_execute_sql(self, sql, physical_name):
            recorded.append((physical_name, sql))
            return super()._setup_for_execute_sql(sql, physical_name)

    con, db_api, linker, tables = scoring_linker({name: frame.head(0) for name, frame in frames.items()}, model,
                                                 {c: t.head(0) for c, t in tfs.items()}, RecordingAPI)
    try:
        predictions = linker.inference.predict_between(tables["existing"], tables["delivery"],
                                                       threshold_match_probability=threshold, warning_mode="never")
        mw = _weight_columns(con, predictions.physical_name)
    finally:
        con.close()
    if not recorded or recorded[-1][0] != predictions.physical_name:
        raise RuntimeError("Splink's predict_between ran no query that made its predictions: cannot compile it")
    *steps, (_, last) = recorded
    return CompiledScoring(tuple(steps), _scored_columns_sql(mw, f"({last})"))
