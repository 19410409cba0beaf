"""Reference geography: LSOAs (names, local authority, ward, populations, IMD decile,
centroid) and postcode -> LSOA, read from public ONS / MHCLG files, loaded into the lake's
``reference`` zone, and looked up to coarsen postcodes and coordinates to LSOAs.
See README.md for the folder layout, formats and columns.
"""
from sources.reference.loader import load_reference
from sources.reference.lookup import (
    ReferenceNotLoaded,
    lsoa_for_points,
    lsoa_for_postcodes,
    normalise_postcodes,
    reference_loaded,
)
from sources.reference.reader import ReferenceData, read_reference

__all__ = [
    "ReferenceData",
    "ReferenceNotLoaded",
    "load_reference",
    "lsoa_for_points",
    "lsoa_for_postcodes",
    "normalise_postcodes",
    "read_reference",
    "reference_loaded",
]
