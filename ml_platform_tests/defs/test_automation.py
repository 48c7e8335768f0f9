"""`on_upstream_change` on the platform's daily partitions: a replayed 2013 day and today's live
day both fire, once, and only the partition whose upstream changed."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from ml_platform.defs.automation import on_upstream_change
from ml_platform.defs.partitions import daily_partitions

TODAY = dt.datetime.now(ZoneInfo("America/New_York")).date().isoformat()


@dg.asset(partitions_def=daily_partitions)
def upstream() -> None: ...


@dg.asset(partitions_def=daily_partitions, deps=[upstream], automation_condition=on_upstream_change())
def downstream() -> None: ...


def test_history_and_live_days_fire_once_each():
    defs = dg.Definitions(assets=[upstream, downstream])
    with dg.instance_for_test() as instance:
        cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor
        for day in ("2013-01-05", TODAY):
            assert dg.materialize([upstream], instance=instance, partition_key=day).success
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        assert sorted(result.get_requested_partitions(downstream.key)) == ["2013-01-05", TODAY]
        # requested once: the next tick with nothing new asks for nothing
        again = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert again.get_requested_partitions(downstream.key) == set()
