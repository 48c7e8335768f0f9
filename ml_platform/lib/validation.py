"""Table contracts as pandera models (polars backend), and their verdict on a frame.

A verdict counts failing rows, not failing cells, and keeps a few failing rows so
a person can see what broke which rule without opening the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl


@dataclass(frozen=True)
class Verdict:
    """What a contract said about a frame."""

    rows: int
    failing_rows: int
    failures_by_rule: dict[str, int] = field(default_factory=dict)
    sample: list[dict] = field(default_factory=list)  # JSON-ready: dates and times as text

    @property
    def passed(self) -> bool:
        return self.failing_rows == 0


def check_contract(
    model: type[pa.DataFrameModel], frame: pl.DataFrame, *, sample_size: int = 5
) -> Verdict:
    """Validate the collected frame (a LazyFrame would check the schema only)."""
    try:
        model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        rules = cases.with_columns(
            rule=pl.concat_str(pl.col("column").fill_null("<table>"), pl.lit(": "), pl.col("check"))
        )
        by_rule = dict(rules.group_by("rule").len().sort("rule").iter_rows())
        rows = rules["index"].drop_nulls().unique().sort()
        failing = rows.len() if rows.len() else len(frame)  # schema-level errors fail every row
        sample = frame[rows.head(sample_size).to_list()] if rows.len() else frame.head(0)
        return Verdict(len(frame), failing, by_rule, json.loads(sample.write_json()))
    return Verdict(len(frame), 0)


def combine(verdicts: Iterable[Verdict], *, sample_size: int = 5) -> Verdict:
    """One verdict for a table checked in parts of whole days (no key spans two parts)."""
    rows = failing = 0
    by_rule: dict[str, int] = {}
    sample: list[dict] = []
    for v in verdicts:
        rows, failing = rows + v.rows, failing + v.failing_rows
        for rule, n in v.failures_by_rule.items():
            by_rule[rule] = by_rule.get(rule, 0) + n
        sample += v.sample[: sample_size - len(sample)]
    return Verdict(rows, failing, dict(sorted(by_rule.items())), sample)
