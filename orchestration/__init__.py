"""Dagster definitions and the in-process runner behind `tapestry run`."""
