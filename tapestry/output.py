"""Printing query results for people (a table) and for scripts (CSV, JSON)."""
from __future__ import annotations

import sys

import polars as pl


def print_frame(frame: pl.DataFrame, fmt: str = "table", max_rows: int = 50) -> None:
    if fmt == "csv":
        sys.stdout.write(frame.write_csv())
    elif fmt == "json":
        sys.stdout.write(frame.write_json() + "\n")
    else:
        with pl.Config(tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200,
                       tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=False):
            print(frame)
        print(f"({frame.height:,} row{'s' if frame.height != 1 else ''})")
