"""Reference geography asset (group ``reference``): the public ONS / MHCLG files waiting in
``<landing>/reference/`` (LSOA centroids, LA codes, IMD 2019, population denominators, a
postcode lookup) loaded into reference.lsoa and reference.postcode_lsoa. Ingestion uses them to
coarsen postcodes and event locations into LSOAs, so this loads before the agencies. The files
are public data: they stay where they are; loading unchanged files writes nothing."""
import dagster as dg

from orchestration.resources import LakehouseResource
from sources.reference.loader import load_reference

GEOGRAPHY = dg.AssetKey(["reference", "geography"])


def reference_folder(settings):
    return settings.landing / "reference"


@dg.asset(key=GEOGRAPHY, group_name="reference", kinds={"duckdb"},
          description="reference.lsoa + reference.postcode_lsoa from the public files in <landing>/reference/.")
def geography(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
    settings = lakehouse.settings()
    folder = reference_folder(settings)
    if not folder.is_dir():
        raise dg.Failure(f"no reference folder at {folder}: put the ONS/MHCLG files there (see sources/reference)")
    with lakehouse.connect() as con:
        summary = load_reference(con, folder)
    return dg.MaterializeResult(metadata={
        "lsoas": summary["lsoas"], "postcodes": summary["postcodes"], "changed": summary["changed"],
        "vintage": str(summary.get("vintage")), "notes": dg.MetadataValue.json(summary.get("notes", [])),
        "folder": dg.MetadataValue.path(str(folder))})


REFERENCE_JOB = dg.define_asset_job("load_reference", selection=dg.AssetSelection.assets(GEOGRAPHY),
                                    description="Load the reference geography from <landing>/reference/.")
