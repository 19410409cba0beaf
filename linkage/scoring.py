"""Scoring with a saved Splink model: Splink's DuckDB linker over registered frames, and the same
scoring compiled once into SQL and replayed.

An incremental run scores its delivery with one Splink ``predict_between``. For one model and one
input schema Splink writes the same SQL every time, and spends ~0.1 s writing it (settings
objects, comparison SQL through sqlglot, column lookups, a DuckDB opened for it): a third of the
scoring at 1M persons. ``compiled_scoring`` therefore has Splink write it once, on empty frames of
the same schema, records the queries Splink executes (each step's, in order), and keeps them in
memory and, given a folder, in a file beside the model (``scoring-<digest>.json``, written by the
full link for the incremental runs after it). ``CompiledScoring.run`` replays them on the real
frames, on a cursor of one in-memory DuckDB per process: the same SQL, so the same pairs and
weights (tested against Splink's own ``predict_between``). The digest covers Splink's and
sqlglot's versions, the model, the frames' names and columns, the term-frequency columns and the
threshold: any change compiles again. The file holds the model's SQL (its parameters and column
names), no data: as sensitive to tampering as the model file beside it, and no more.

The replay feeds DuckDB its inputs in batches of ``_BATCH_ROWS`` rows, which DuckDB scores on
both cores: without re-batching, a delivery's ~70k blocked pairs come back from DuckDB as one
Arrow batch, which the next query scans on one thread.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from linkage import model as M

_FORMAT = 2  # of the compiled file; a change compiles again
_BATCH_ROWS = 8192
logger = logging.getLogger(__name__)


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
    default_api, linker_class = scoring_classes()
    con = M.splink_database()
    db_api = (api_class or default_api)(connection=con)
    tables = {name: register(db_api, frame, name) for name, frame in frames.items()}
    linker = linker_class(list(tables.values()), dict(model), log_level=M.SPLINK_LOG_LEVEL, validate_settings=False)
    for col, table in tfs.items():
        linker.table_management.register_term_frequency_lookup(register(db_api, table, f"tf_{col}"), col)
    return con, db_api, linker, tables


@dataclass(frozen=True)
class CompiledScoring:
    """Splink's ``predict_between`` of a model, as the queries it runs: ``steps`` (table name,
    query), each materialised under its name for the next, then ``predictions`` (the scored pairs,
    with the weight columns ``weights``)."""
    steps: tuple[tuple[str, str], ...]
    predictions: str
    weights: tuple[str, ...]

    def run(self, frames: dict[str, pl.DataFrame], tfs: dict[str, pl.DataFrame]) -> pl.DataFrame:
        """The scored pairs of ``frames`` (the names and columns it was compiled for), as
        ``scored_frame`` gives Splink's."""
        con = _database().cursor()  # its registrations are its own: runs may overlap
        try:
            for name, frame in (*frames.items(), *((f"tf_{c}", t) for c, t in tfs.items())):
                con.register(name, _batched(frame.to_arrow()))
            # Splink keeps these steps as DuckDB tables; here they pass through Arrow, exact for
            # the types its comparisons make (text, numbers, booleans; not UUID or INTERVAL)
            for name, query in self.steps:
                con.register(name, _batched(con.execute(query).to_arrow_table()))
            return con.execute(_scored_columns_sql(list(self.weights), f"({self.predictions})")).pl()
        finally:
            con.close()


def _batched(table: pa.Table) -> pa.Table:
    return pa.Table.from_batches(table.to_batches(max_chunksize=_BATCH_ROWS), schema=table.schema)


_opening = threading.Lock()
_replay_db = None


def _database():
    """The replay's in-memory DuckDB, one per process (opening one costs ~7 ms, closing it ~9):
    each run works on a cursor of its own."""
    global _replay_db
    with _opening:
        if _replay_db is None:
            _replay_db = M.splink_database()
        return _replay_db


_compiled: dict[str, CompiledScoring] = {}
_compiling = threading.Lock()


def compiled_scoring(model: dict, frames: dict[str, pl.DataFrame], tfs: dict[str, pl.DataFrame], threshold: float,
                     cache_dir: Path | None = None) -> CompiledScoring:
    """``predict_between(frames["existing"], frames["delivery"])`` of ``model`` at ``threshold``
    (match probability), compiled for frames of these names and columns and these
    term-frequency columns: from memory, from ``cache_dir``, or by Splink on empty frames; kept in
    memory and, with a ``cache_dir``, in its file there."""
    import splink
    import sqlglot

    digest = hashlib.sha256(json.dumps({
        "format": _FORMAT, "splink": splink.__version__, "sqlglot": sqlglot.__version__, "model": model,
        "threshold": threshold, "frames": {name: frame.columns for name, frame in frames.items()},
        "tf": sorted(tfs)}, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"scoring-{digest}.json" if cache_dir is not None else None
    with _compiling:
        compiled = _compiled.get(digest)
        kept = path is not None and compiled is not None and path.is_file()
        if compiled is None and path is not None:
            compiled = _read(path)
            kept = compiled is not None
        if compiled is None:
            compiled = _compile(model, frames, tfs, threshold)
        _compiled[digest] = compiled
        if path is not None and not kept:
            _write(path, compiled)
        return compiled


def _read(path: Path) -> CompiledScoring | None:
    """The compiled scoring kept in ``path``; None when there is none (or not a readable one: it is
    then compiled again and rewritten)."""
    try:
        stored = json.loads(path.read_text())
        return CompiledScoring(tuple((name, query) for name, query in stored["steps"]), stored["predictions"],
                               tuple(stored["weights"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(path: Path, compiled: CompiledScoring) -> None:
    """Keep ``compiled`` in ``path``: written whole, then renamed (a reader never sees half a file).
    A folder that cannot be written only costs the next process a compile: a warning, not an error."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps({"steps": compiled.steps, "predictions": compiled.predictions,
                                   "weights": compiled.weights}, indent=1))
        tmp.replace(path)
    except OSError as error:
        with contextlib.suppress(OSError):
            tmp.unlink()
        logger.warning("compiled scoring not kept in %s (%s): the next process compiles it again", path.parent,
                       type(error).__name__)


def _compile(model: dict, frames: dict[str, pl.DataFrame], tfs: dict[str, pl.DataFrame],
             threshold: float) -> CompiledScoring:
    """Splink's own ``predict_between`` on empty frames of the same schema, its queries recorded."""
    recorded: list[tuple[str, str]] = []
    api_class, _ = scoring_classes()

    class RecordingAPI(api_class):
        def _setup_for_execute_sql(self, sql, physical_name):  # gets each step's query before Splink runs it
            recorded.append((physical_name, sql))
            return super()._setup_for_execute_sql(sql, physical_name)

    con, db_api, linker, tables = scoring_linker({name: frame.head(0) for name, frame in frames.items()}, model,
                                                 {c: t.head(0) for c, t in tfs.items()}, RecordingAPI)
    try:
        predictions = linker.inference.predict_between(tables["existing"], tables["delivery"],
                                                       threshold_match_probability=threshold, warning_mode="never")
        weights = _weight_columns(con, predictions.physical_name)
    finally:
        con.close()
    if not recorded or recorded[-1][0] != predictions.physical_name:
        raise RuntimeError("Splink's predict_between ran no query that made its predictions: cannot compile it")
    *steps, (_, last) = recorded
    return CompiledScoring(tuple(steps), last, tuple(weights))
