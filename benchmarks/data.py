"""The benchmark's inputs: the real 2013 year replicated N times, as landing files and reference CSVs.

Copy 0 of each day is the real file byte for byte (``flights_csv_for_day``); copy k >= 1
repeats the same flights with the flight number shifted by ``k * FLIGHT_SHIFT`` and the
tail number suffixed ``_k``, so every natural key stays unique and every tail still joins
the planes table, which is replicated with the same suffixes. Weather, airlines and
airports are not replicated (the same three airports, the same hours).

    inputs = ensure_inputs(root, scale=10)   # written once, reused while the marker matches
    inputs.landing_dir / "flights_2013-01-01.csv", inputs.reference_dir / "planes.csv", inputs.weather_csv
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ml_platform.devdata.reference_data import REFERENCE_TABLES, data_dir, flight_days, flights_csv_for_day
from ml_platform.devdata.replay import landing_name

FLIGHT_SHIFT = 10_000  # above the largest 2013 flight number (8,500)
FLIGHTS_PER_YEAR = 336_776
FORMAT_VERSION = "1"  # bump when the layout below changes, so cached inputs are rebuilt
FIRST_DAY, LAST_DAY = dt.date(2013, 1, 1), dt.date(2013, 12, 31)


@dataclass(frozen=True)
class Inputs:
    """Where one scale's inputs live, and what they hold."""

    root: Path
    scale: int
    days: tuple[dt.date, ...]
    flights: int

    @property
    def landing_dir(self) -> Path:
        return self.root / "landing"

    @property
    def reference_dir(self) -> Path:
        return self.root / "reference"

    @property
    def weather_csv(self) -> Path:
        return self.root / "weather.csv"

    def landing_file(self, day: dt.date) -> Path:
        return self.landing_dir / landing_name(day)


def replicate_flights(day_csv: bytes, copy: int) -> bytes:
    """The day's rows (without header) as copy ``copy``: flight numbers shifted, tail numbers suffixed."""
    frame = pl.read_csv(io.BytesIO(day_csv), infer_schema=False)  # every value stays text
    frame = frame.with_columns(
        (pl.col("flight").cast(pl.Int64) + copy * FLIGHT_SHIFT).cast(pl.String),
        pl.when(pl.col("tailnum") == "NA").then(pl.col("tailnum")).otherwise(pl.col("tailnum") + f"_{copy}"),
    )
    return frame.write_csv(include_header=False, quote_style="necessary").encode()


def replicate_planes(planes_csv: Path, scale: int) -> pl.DataFrame:
    """planes.csv (as text) with one extra copy per k >= 1, tail numbers suffixed ``_k``."""
    planes = pl.read_csv(planes_csv, infer_schema=False)
    copies = [planes.with_columns(pl.col("tailnum") + f"_{k}") for k in range(1, scale)]
    return pl.concat([planes, *copies])


def read_reference_csv(path: Path) -> pl.DataFrame:
    """A reference CSV as the package's loader reads it (``NA`` missing, types inferred on every row)."""
    return pl.read_csv(path, null_values="NA", infer_schema_length=None)


def _write(inputs: Inputs, progress: Callable[[str], None]) -> None:
    landing, reference = inputs.landing_dir, inputs.reference_dir
    landing.mkdir(parents=True)
    reference.mkdir(parents=True)
    for i, day in enumerate(inputs.days, 1):
        original = flights_csv_for_day(day)
        extra = [replicate_flights(original, k) for k in range(1, inputs.scale)]
        inputs.landing_file(day).write_bytes(b"".join([original, *extra]))
        if i % 60 == 0:
            progress(f"inputs x{inputs.scale}: {i}/{len(inputs.days)} landing files written")
    for name in REFERENCE_TABLES:
        if name == "planes":
            replicate_planes(data_dir() / "planes.csv", inputs.scale).write_csv(reference / "planes.csv")
        else:
            shutil.copyfile(data_dir() / f"{name}.csv", reference / f"{name}.csv")
    shutil.copyfile(data_dir() / "weather.csv", inputs.weather_csv)


def ensure_inputs(root: Path, scale: int, progress: Callable[[str], None] = print) -> Inputs:
    """Write the scale's landing files and reference CSVs under ``root/x<scale>`` unless already there."""
    if scale < 1:
        raise ValueError(f"scale must be at least 1, got {scale}")
    days = tuple(d for d in flight_days() if FIRST_DAY <= d <= LAST_DAY)
    inputs = Inputs(root / f"x{scale}", scale, days, scale * FLIGHTS_PER_YEAR)
    marker = inputs.root / "inputs.json"
    expected = {"format": FORMAT_VERSION, "scale": scale, "days": len(days), "flights": inputs.flights}
    if marker.exists() and json.loads(marker.read_text()) == expected:
        progress(f"inputs x{scale}: reusing {inputs.root}")
        return inputs
    shutil.rmtree(inputs.root, ignore_errors=True)
    progress(f"inputs x{scale}: writing {len(days)} landing files ({inputs.flights:,} flights) to {inputs.root}")
    _write(inputs, progress)
    marker.write_text(json.dumps(expected))
    return inputs
