"""The lake layer alone as a code location, with the platform's resources: its landing sensor
and ingestion job, nothing downstream. The burst test's daemon loads it, so that what it
measures is ingestion: files in, runs requested, rows in the lake."""

import dagster as dg

from ml_platform.definitions import resources
from ml_platform.defs import lake
from ml_platform.settings import Settings


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(lake.definitions(), dg.Definitions(resources=resources(Settings.from_env())))
