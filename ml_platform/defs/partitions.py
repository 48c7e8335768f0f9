"""The platform's one time axis: days in New York, open-ended from 2013-01-01."""

import datetime as dt

import dagster as dg

from ml_platform.domain.calendar import FIRST_DAY, NEW_YORK

# end_offset=1 makes today a partition too, so a file landing for today is ingestible
# (without it a sensor request for today's key would fail the tick).
daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DAY.isoformat(), timezone=NEW_YORK, end_offset=1)

# Run tags that make one run cover a range of partitions (not exported by dagster itself).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def day_range(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """The first and last New York day a run covers (one day, or a range in one run)."""
    window = context.partition_key_range
    return dt.date.fromisoformat(window.start), dt.date.fromisoformat(window.end)
