"""Asset checks made from the platform's contracts and quality thresholds.

Contracts (pandera models) become blocking ERROR checks, so nothing downstream
runs on a table that broke its contract; quality thresholds become WARN checks.
Both are computed inside the asset's own step, on the rows it just wrote.
"""

from collections.abc import Iterable

import dagster as dg
import pandera.polars as pa
import polars as pl

from ml_platform.domain.contracts import check_contract, combine

CONTRACT = "contract"


def contract_spec(asset: dg.AssetKey | str, model: type[pa.DataFrameModel]) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        CONTRACT,
        asset=asset,
        blocking=True,
        description=f"Every row meets the {model.__name__} contract (types, ranges, keys, nulls).",
    )


def contract_result(
    asset: dg.AssetKey | str, model: type[pa.DataFrameModel], rows: pl.DataFrame | Iterable[pl.DataFrame]
) -> dg.AssetCheckResult:
    """The contract's verdict on a frame, or on a range read in parts of whole days (``read_days_in_parts``)."""
    parts = [rows] if isinstance(rows, pl.DataFrame) else rows
    verdict = combine(check_contract(model, part) for part in parts)
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=CONTRACT,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None
        if verdict.passed
        else f"{verdict.failing_rows:,} of {verdict.rows:,} rows break {model.__name__}",
        metadata={
            "rows_checked": verdict.rows,
            "failing_rows": verdict.failing_rows,
            "failures_by_rule": dg.MetadataValue.json(verdict.failures_by_rule),
            "failing_sample": dg.MetadataValue.json(verdict.sample),
        },
    )


def threshold_spec(asset: dg.AssetKey | str, name: str, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, blocking=False, description=description)


def threshold_result(
    asset: dg.AssetKey | str, name: str, share: float, limit: float, **metadata
) -> dg.AssetCheckResult:
    """WARN when ``share`` (a fraction of rows) exceeds ``limit``."""
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=share <= limit,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{share:.2%} (limit {limit:.0%})",
        metadata={"share": float(share), "limit": float(limit), **metadata},
    )
