"""What an incremental link needs of the population, kept in the ``linked`` zone as keyed tokens
(``linkage.tokens``) instead of features, and read back for one delivery.

- ``linked.person_record.node_id``: token of all of a node's features (a node = a distinct
  standardised record; identical records of one source share it).
- ``linked.node_key``: node_id -> token of each of its candidate keys
  (``linkage.incremental.CANDIDATE_KEYS``, existing side).
- ``linked.term_frequency``: token of a compared value -> number of nodes with it.

For a delivery, ``LakePopulation`` finds the nodes its candidate keys reach (a join on
tokens), the persons they belong to (``linked.person_record``), and decrypts from the vault only
one record per node it needs, through ``linkage.lake.person_records``: the cost follows the
delivery, not the population. A node whose re-derived features no longer give its stored token
(standardisation changed since the full run) is counted as drift; the caller re-links in full.
"""
from __future__ import annotations

import duckdb
import polars as pl

from linkage.incremental import CANDIDATE_KEYS, TF_COLUMNS, _side, delivery_nodes, with_key_columns
from linkage.standardise import FEATURE_COLUMNS
from linkage.tokens import message, tokens

NODE_TOKEN_COLUMNS = tuple("source" if c == "source_dataset" else c for c in FEATURE_COLUMNS
                           if c not in ("unique_id", "forename_aliases"))  # aliases derive from forename_std


def node_tokens(nodes: pl.DataFrame, key: bytes) -> pl.Series:
    """Token of each node's features (``linked.person_record.node_id``)."""
    return tokens(nodes.select(message("node", NODE_TOKEN_COLUMNS, nulls_as_marker=True)).to_series(), key).alias(
        "node_id")


def _key_messages(nodes: pl.DataFrame, side: str) -> pl.DataFrame:
    frame = with_key_columns(nodes)
    parts, seen = [], set()
    for k in CANDIDATE_KEYS:
        cols, no_dob = (k.existing, k.existing_no_dob) if side == "existing" else (k.delivery, k.delivery_no_dob)
        if not set(cols) <= set(frame.columns) or (k.name, cols, no_dob) in seen:
            continue
        seen.add((k.name, cols, no_dob))
        parts.append(_side(frame, no_dob).select("unique_id", m=message(k.name, cols)).drop_nulls("m"))
    return pl.concat(parts) if parts else pl.DataFrame(schema={"unique_id": pl.String, "m": pl.String})


def stored_node_keys(nodes: pl.DataFrame, node_ids: pl.Series, key: bytes) -> pl.DataFrame:
    """node_id, key: the rows of ``linked.node_key`` for these nodes."""
    msgs = _key_messages(nodes.with_columns(unique_id=node_ids.cast(pl.String)), "existing")
    return msgs.select(pl.col("unique_id").cast(pl.Int64).alias("node_id"),
                       tokens(msgs["m"], key).alias("key")).unique()


def lookup_keys(nodes: pl.DataFrame, key: bytes) -> pl.Series:
    """Tokens a delivery's nodes look up in ``linked.node_key``."""
    return tokens(_key_messages(nodes, "delivery")["m"], key).unique().alias("key")


def tf_counts(nodes: pl.DataFrame, key: bytes) -> pl.DataFrame:
    """feature, value_token, nodes: how many of these nodes have each compared value."""
    parts = []
    for col in TF_COLUMNS:
        if col not in nodes.columns:
            continue
        counts = nodes.group_by(col).agg(pl.len().cast(pl.Int64).alias("nodes")).drop_nulls(col)
        parts.append(counts.select(pl.lit(col).alias("feature"),
                                   tokens(counts.select(message(f"tf:{col}", [col])).to_series(), key)
                                   .alias("value_token"), "nodes"))
    return pl.concat(parts) if parts else pl.DataFrame(
        schema={"feature": pl.String, "value_token": pl.Int64, "nodes": pl.Int64})


class LakePopulation:
    """The linked population as a delivery sees it, read through one lakehouse connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection, keyring, key: bytes):
        self.con, self.keyring, self.key = con, keyring, key
        self.drift = 0  # nodes whose features no longer give their stored token
        self.decrypted_records = 0

    def candidates(self, lookup: pl.Series, delivery_tokens: pl.Series) -> pl.Series:
        """Existing node ids sharing a candidate key with the delivery, or identical to one of its nodes."""
        self.con.register("_lookup", pl.DataFrame({"key": lookup}).to_arrow())
        self.con.register("_tokens", pl.DataFrame({"node_id": delivery_tokens}).to_arrow())
        try:
            return self.con.sql("""
                SELECT DISTINCT node_id FROM linked.node_key WHERE key IN (SELECT key FROM _lookup)
                UNION SELECT DISTINCT node_id FROM linked.person_record WHERE node_id IN (SELECT node_id FROM _tokens)
            """).pl()["node_id"]
        finally:
            self.con.unregister("_lookup")
            self.con.unregister("_tokens")

    def membership(self, node_ids: pl.Series) -> pl.DataFrame:
        """Every record of the persons these nodes belong to: record_id, agency, entity,
        record_key, person_id, node_id."""
        self.con.register("_nodes", pl.DataFrame({"node_id": node_ids}).to_arrow())
        try:
            members = self.con.sql("""
                SELECT agency, entity, record_key, person_id, node_id FROM linked.person_record
                WHERE person_id IN (SELECT DISTINCT person_id FROM linked.person_record
                                    WHERE node_id IN (SELECT node_id FROM _nodes))""").pl()
        finally:
            self.con.unregister("_nodes")
        from linkage.lake import record_id_expr
        return members.with_columns(record_id=record_id_expr())

    def features(self, node_ids: pl.Series, members: pl.DataFrame) -> pl.DataFrame:
        """Nodes frame (``unique_id`` = the node id as text) of these nodes, from one record each."""
        from linkage.lake import RECORD_COLUMNS, current_rows, person_records

        wanted = members.filter(pl.col("node_id").is_in(node_ids.cast(pl.Int64).implode()))
        reps = wanted.sort("record_id").unique("node_id", keep="first")
        rows = current_rows(self.con, records=reps.select("agency", "entity", "record_key"))
        records = person_records(self.con, self.keyring, rows)
        self.decrypted_records += records.height
        nodes, node_of = delivery_nodes(records.select([c for c in RECORD_COLUMNS
                                                        if c not in ("agency", "entity", "record_key")]))
        expected = node_of.join(reps.select("record_id", pl.col("node_id").alias("expected")), on="record_id").group_by(
            "node_id").agg(pl.col("expected").first(), pl.len().alias("reps"))
        nodes = nodes.join(expected.rename({"node_id": "unique_id"}), on="unique_id")
        actual = node_tokens(nodes, self.key)
        self.drift += int((actual != nodes["expected"]).sum()) + int((nodes["reps"] - 1).sum())
        return nodes.with_columns(unique_id=pl.col("expected").cast(pl.String)).drop("expected", "reps")

    def tf_tables(self, frames: list[pl.DataFrame], delivery_counts: pl.DataFrame) -> dict[str, pl.DataFrame]:
        """Splink term-frequency tables {column: (column, tf_column)} for the values of these
        frames: stored node counts plus the delivery's new nodes, over the new total."""
        values = pl.concat([f.select(c for c in TF_COLUMNS if c in f.columns) for f in frames], how="diagonal_relaxed")
        wanted = tf_counts(values, self.key).select("feature", "value_token")
        self.con.register("_values", wanted.to_arrow())
        try:
            stored = self.con.sql("""
                SELECT feature, value_token, sum(nodes)::BIGINT AS nodes FROM linked.term_frequency
                WHERE value_token IN (SELECT value_token FROM _values) GROUP BY ALL""").pl()
            totals = dict(self.con.sql("SELECT feature, sum(nodes)::BIGINT FROM linked.term_frequency GROUP BY ALL")
                          .fetchall())
        finally:
            self.con.unregister("_values")
        counts = pl.concat([stored, delivery_counts]).group_by("feature", "value_token").agg(pl.col("nodes").sum())
        out = {}
        for col in TF_COLUMNS:
            if col not in values.columns:
                continue
            total = totals.get(col, 0) + int(delivery_counts.filter(pl.col("feature") == col)["nodes"].sum())
            distinct = values.select(col).drop_nulls().unique()
            if total == 0 or distinct.height == 0:
                continue
            tokened = distinct.with_columns(
                value_token=tokens(distinct.select(message(f"tf:{col}", [col])).to_series(), self.key))
            out[col] = tokened.join(counts.filter(pl.col("feature") == col), on="value_token").select(
                col, (pl.col("nodes") / total).alias(f"tf_{col}"))
        return out
