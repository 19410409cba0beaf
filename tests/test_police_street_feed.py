"""The public data.police.uk street-level crime CSV loads as the second police feed (real files)."""
import shutil

import polars as pl
import pytest

from sources.landing import land_agency
from sources.registry import BY_NAME
from tapestry import lakehouse
from tests.conftest import SHARED_DATA

POLICE_UK = SHARED_DATA / "police_uk"


@pytest.mark.skipif(not POLICE_UK.is_dir(), reason="shared/data/police_uk not present")
def test_real_street_level_crime_month(tapestry_env):
    source = POLICE_UK / "2018-10-thames-valley-street.csv"
    expected = pl.read_csv(source, infer_schema=False)
    target = tapestry_env.landing / "police" / source.name
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    with lakehouse.connect(tapestry_env) as con:
        [result] = land_agency(con, BY_NAME["police"], tapestry_env, "run-street")
        assert result.status == "loaded" and result.entity == "street"
        assert result.rows_read == expected.height and result.rows_quarantined == 0
        got = con.sql("SELECT month, crime_type, count(*) n FROM raw.police__street GROUP BY ALL").pl()
        assert got["month"].unique().to_list()[0].isoformat() == "2018-10-01"
        want = expected.group_by("Crime type").len()
        assert dict(zip(got["crime_type"], got["n"])) == dict(zip(want["Crime type"], want["len"]))
        # ASB rows have no Crime ID in the public data: kept, not quarantined.
        assert con.execute("SELECT count(*) FROM raw.police__street WHERE crime_id IS NULL").fetchone()[0] == \
            expected.filter(pl.col("Crime ID").is_null()).height > 0
