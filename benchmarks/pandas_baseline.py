"""The pandas baseline of the benchmark (GitHub issue #7, part c): the platform's work in one pandas script.

    features, seconds = build_features(landing_dir, reference_dir, weather_csv, first, last)

What a competent analyst would write without the platform: vectorized pandas (no
loop over rows; loops over files, time zones, window lengths or feature groups
only), the same rules as the platform, from the same files:

* **lake**: every ``flights_YYYY-MM-DD[_suffix].csv`` of [first, last] read as text
  (``NA`` and empty are missing, a line with the wrong number of fields is kept with
  ``_parse_error``), plus lineage columns; the day's weather from weather.csv and the
  three reference tables; all written as Parquet under a temporary folder next to
  ``landing_dir`` (``raw/<source>/date=YYYY-MM-DD/part-0.parquet``), like the lake.
* **warehouse**: read back from that Parquet: the dimensions (with the Caribbean
  airports supplement), ``staging.flights`` (typing, the nine quarantine rules, times
  placed in the airports' zones), ``core.fct_flights`` and ``staging.weather``
  (impossible values, gusts, gaps of 1-3 h interpolated, ``known_at``); see
  docs/warehouse_rules.md.
* **features**: the 63 columns of ``features.flight_features`` with the same
  point-in-time rules (docs/features.md): ``pd.merge_asof`` on running totals where
  the platform uses ``ASOF`` joins.

It does not import DuckDB nor the platform's warehouse or features code: only the
column names of ``ml_platform/domain/features.py`` (loaded on its own, because
its package imports DuckDB) and the airports seed CSV, which are data.
Not carried over (the benchmark's files have none of them): CSV quoting (a line is
split on commas), raw columns outside the contract (the platform keeps them as
``extra_<name>``), and the quarantine's ``detail``/``raw_values`` texts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import io
import re
import shutil
import tempfile
import time
import zoneinfo
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries.holiday import USFederalHolidayCalendar

# The feature table's column names and windows are the platform's (the one definition of the
# table it must reproduce); how they are computed is written here independently.
_COLUMNS = importlib.import_module("ml_platform.domain.features")
SUPPLEMENT_CSV = (
    Path(importlib.util.find_spec("ml_platform").submodule_search_locations[0])
    / "pipeline"
    / "warehouse"
    / "airports_supplement.csv"
)
COLUMN_ORDER = _COLUMNS.COLUMN_ORDER
HISTORY_GROUPS: dict[str, tuple[str, ...]] = _COLUMNS.HISTORY_GROUPS
HISTORY_WINDOW_DAYS: tuple[int, ...] = _COLUMNS.HISTORY_WINDOW_DAYS
WEATHER_MEASURES: tuple[str, ...] = _COLUMNS.WEATHER_MEASURES

NEW_YORK = "America/New_York"
NYC_ORIGINS = ("EWR", "JFK", "LGA")
NAME = re.compile(r"^flights_(\d{4}-\d{2}-\d{2})(?:_[A-Za-z0-9-]+)?\.csv$")
REQUIRED = (
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "flight",
    "tailnum",
    "origin",
    "dest",
)
SOURCE = (*REQUIRED, "air_time", "distance", "hour", "minute", "time_hour")
INTEGERS = (
    "year",
    "month",
    "day",
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "flight",
    "air_time",
    "distance",
    "hour",
    "minute",
)
TEXTS = ("carrier", "tailnum", "origin", "dest")
KEY = ["flight_date", "carrier", "flight", "origin", "sched_dep_time"]
INT32 = (-(2**31), 2**31 - 1)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DELAY_THRESHOLD = 15
WEATHER_BOUNDS = {
    "temp": (-60, 130),
    "dewp": (-60, 130),
    "humid": (0, 100),
    "wind_dir": (0, 360),
    "wind_speed": (0, 200),
    "wind_gust": (0, 250),
    "precip": (0, 10),
    "pressure": (900, 1100),
    "visib": (0, 10),
}
MAX_GAP_HOURS, KNOWN_AFTER = 3, pd.Timedelta(minutes=51)
FETCHED_AT = pd.Timestamp("2026-11-01 12:00", tz="UTC")  # what the platform's year builder stamps
# Feature windows (sql.py): airport state over 2 h, schedule +-1 h, trends over 3 h,
# weather older than 6 h is no weather; history reads flights of the 32 days before.
HOUR = pd.Timedelta(hours=1)
AIRPORT_WINDOW, SCHEDULE_HALF, TREND, MAX_WEATHER_AGE = 2 * HOUR, HOUR, 3 * HOUR, 6 * HOUR
HISTORY_LOOKBACK_DAYS, WEATHER_LOOKBACK_DAYS = max(HISTORY_WINDOW_DAYS) + 4, 3
DIMENSIONS = {  # reference table -> (key, {column: "int" | "float" | "str"})
    "airlines": ("carrier", {"carrier": "str", "name": "str"}),
    "airports": (
        "faa",
        {
            "faa": "str",
            "name": "str",
            "lat": "float",
            "lon": "float",
            "alt": "int",
            "tz": "int",
            "dst": "str",
            "tzone": "str",
        },
    ),
    "planes": (
        "tailnum",
        {
            "tailnum": "str",
            "year": "int",
            "type": "str",
            "manufacturer": "str",
            "model": "str",
            "engines": "int",
            "seats": "int",
            "speed": "int",
            "engine": "str",
        },
    ),
}


# ---------------------------------------------------------------- helpers


def _minutes(values: pd.Series) -> pd.Series:
    return pd.to_timedelta(values.astype("Float64"), unit="min")


def _hhmm(values: pd.Series) -> pd.Series:
    """Local ``hhmm`` integers as a time of day (2400 is the next day's 00:00)."""
    return _minutes(values // 100 * 60 + values % 100)


def _utc(values: pd.Series) -> pd.Series:
    return values.astype("datetime64[us, UTC]")


def _localize(local: pd.Series, zones: pd.Series) -> pd.Series:
    """Naive wall-clock times on each row's zone as UTC instants, as DuckDB's ``timezone()`` places them.

    A repeated hour (clocks going back) is read as standard time, a skipped one
    (clocks going forward) with the offset before the change (02:30 -> 03:30 EDT).
    """
    out = pd.Series(pd.NaT, index=local.index, dtype="datetime64[us, UTC]")
    for zone in zones.dropna().unique():
        rows = (zones == zone).to_numpy() & local.notna().to_numpy()
        part = local[rows].dt.tz_localize(zone, ambiguous=np.zeros(rows.sum(), bool), nonexistent=HOUR)
        out[rows] = _utc(part.dt.tz_convert("UTC"))
    return out


def _wall_clock(instants: pd.Series, zones: pd.Series) -> pd.Series:
    """UTC instants as naive wall-clock times on each row's zone."""
    out = pd.Series(pd.NaT, index=instants.index, dtype="datetime64[us]")
    for zone in zones.dropna().unique():
        rows = (zones == zone).to_numpy()
        out[rows] = instants[rows].dt.tz_convert(zone).dt.tz_localize(None).astype("datetime64[us]")
    return out


def _first_rule(rules: dict[str, pd.Series], index: pd.Index) -> pd.Series:
    """The name of the first rule (in dict order) each row fails, missing when it fails none."""
    names = np.select([r.fillna(False).to_numpy(bool) for r in rules.values()], list(rules), default="")
    return pd.Series(names, index=index).replace("", None)


# ---------------------------------------------------------------- lake


def read_weather_csv(weather_csv: Path) -> pd.DataFrame:
    """weather.csv with the lake's columns and types, its New York day (ISO text) in ``date``."""
    w = pd.read_csv(weather_csv, na_values=["NA"], keep_default_na=False, dtype={"origin": "str", "time_hour": "str"})
    w = w[["origin", "year", "month", "day", "hour", *WEATHER_BOUNDS, "time_hour"]]
    w = w.astype({c: "Int64" for c in ("year", "month", "day", "hour")} | {c: "float64" for c in WEATHER_BOUNDS})
    return w.assign(
        _fetched_at=FETCHED_AT,
        _source_url="http://127.0.0.1/weather",
        date=pd.to_datetime(w[["year", "month", "day"]].astype("int64")).dt.strftime("%Y-%m-%d"),
    )


def _landing_lines(path: Path) -> tuple[tuple[str, ...], pd.DataFrame]:
    """A landing file's header and its non-blank lines with lineage; ValueError for a file the platform rejects."""
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"{path.name}: file is empty")
    lines = data.decode("utf-8-sig").split("\n")
    header = tuple(h.strip() for h in lines[0].removesuffix("\r").split(","))
    missing = [c for c in REQUIRED if c not in header]
    if len(set(header)) != len(header) or missing:
        raise ValueError(f"{path.name}: bad header (repeated or missing columns {missing})")
    body = pd.DataFrame(
        {
            "text": pd.Series(lines[1:], dtype="str").str.removesuffix("\r"),
            "_source_line": np.arange(2, len(lines) + 1, dtype="int32"),
        }
    )
    body = body[body["text"] != ""]
    if body.empty:
        raise ValueError(f"{path.name}: file has a header but no rows")
    return header, body.assign(_source_file=path.name, _source_sha256=hashlib.sha256(data).hexdigest())


def parse_landing_lines(header: tuple[str, ...], body: pd.DataFrame) -> pd.DataFrame:
    """Lines of files sharing ``header`` as text columns (``NA`` and empty missing) plus lineage.

    A line with the wrong number of fields keeps its lineage, all values missing and
    ``_parse_error`` set, as the platform's ``parse_flights_csv`` does.
    """
    width = len(header)
    found = body["text"].str.count(",") + 1
    good = (found == width).to_numpy()
    values = pd.DataFrame(columns=list(header), index=body.index[good], dtype="str")
    if good.any():
        values = pd.read_csv(
            io.StringIO("\n".join(body["text"][good])),
            header=None,
            names=list(header),
            dtype="str",
            keep_default_na=False,
            na_values=["", "NA"],
        ).set_axis(values.index)
    values = values.reindex(body.index)  # lines with the wrong number of fields: all missing
    error = "expected " + str(width) + " fields, found " + found.astype("str") + ": " + body["text"].str.slice(0, 200)
    return values.assign(**body.drop(columns="text"), _parse_error=error.where(~good))


def build_lake(
    landing_dir: Path,
    reference_dir: Path,
    weather_csv: Path,
    lake: Path,
    first: dt.date,
    last: dt.date,
    progress: Callable[[str], object] = print,
) -> None:
    """Flights of [first, last], their days' weather and the reference tables as Parquet under ``lake``."""
    by_header: dict[tuple[str, ...], list[pd.DataFrame]] = {}
    for path in sorted(landing_dir.glob("flights_*.csv")):
        match = NAME.match(path.name)
        if not match or not first <= dt.date.fromisoformat(match.group(1)) <= last:
            continue
        try:
            header, body = _landing_lines(path)
        except ValueError as error:  # the platform moves such a file to _rejected/
            progress(f"rejected {error}")
            continue
        by_header.setdefault(header, []).append(body.assign(date=match.group(1)))
    if not by_header:
        raise ValueError(f"no usable landing file for {first}..{last} in {landing_dir}")
    flights = pd.concat(
        [parse_landing_lines(h, pd.concat(b, ignore_index=True)) for h, b in by_header.items()], ignore_index=True
    )
    _write_days(flights, lake / "raw/flights")
    weather = read_weather_csv(weather_csv)
    _write_days(
        weather[weather["date"].isin(flights["date"].unique())].sort_values(["time_hour", "origin"]),
        lake / "raw/weather",
    )
    for name in DIMENSIONS:
        table = pd.read_csv(reference_dir / f"{name}.csv", na_values=["", "NA"], keep_default_na=False)
        path = lake / f"raw/{name}/{name}.parquet"
        path.parent.mkdir(parents=True)
        table.to_parquet(path, index=False, compression="zstd")


def _write_days(frame: pd.DataFrame, folder: Path) -> None:
    """One Parquet file per day: ``folder/date=YYYY-MM-DD/part-0.parquet``."""
    frame.to_parquet(
        folder, partition_cols=["date"], basename_template="part-{i}.parquet", index=False, compression="zstd"
    )


def _read_days(lake: Path, source: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The lake's day files of ``source`` in [first, last], with the partition day as a timestamp in ``date``."""
    folder = lake / "raw" / source
    if not folder.exists():
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[us]")})
    frame = pd.read_parquet(folder, filters=[("date", ">=", str(first)), ("date", "<=", str(last))])
    return frame.assign(date=pd.to_datetime(frame["date"].astype("str")))


# ---------------------------------------------------------------- warehouse: dimensions


def load_dimension(lake: Path, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows loaded, rows quarantined with ``rule``): key present, values of their types, first row per key."""
    key, types = DIMENSIONS[name]
    raw = pd.read_parquet(lake / f"raw/{name}/{name}.parquet")
    typed, bad = pd.DataFrame(index=raw.index), pd.Series(False, index=raw.index)
    for column, kind in types.items():
        value = raw[column]
        if kind == "str":
            typed[column] = value.astype("str").where(value.notna())
            continue
        number = pd.to_numeric(value, errors="coerce")
        if kind == "int":
            number = number.round().where(number.between(*INT32)).astype("Int64")
        typed[column] = number
        bad |= value.notna() & number.isna()
    missing = typed[key].isna() | (typed[key].str.strip() == "")
    rule = _first_rule({"missing_key": missing, "bad_type": bad}, raw.index)
    repeated = typed[key].where(rule.isna()).duplicated() & rule.isna()  # among valid rows, first one wins
    rule = rule.where(~repeated, "duplicate_key")
    return typed[rule.isna()].reset_index(drop=True), typed[rule.notna()].assign(rule=rule)


def load_dims(lake: Path) -> dict[str, pd.DataFrame]:
    """``dim_carriers``, ``dim_airports`` (plus the seeded airports the ops table lacks), ``dim_planes``."""
    carriers, _ = load_dimension(lake, "airlines")
    airports, _ = load_dimension(lake, "airports")
    planes, _ = load_dimension(lake, "planes")
    seed = pd.read_csv(SUPPLEMENT_CSV, dtype={"seed_version": "str"})
    seed = seed[~seed["faa"].isin(airports["faa"])].assign(source="supplement")
    airports = pd.concat([airports.assign(source="ops"), seed], ignore_index=True)
    return {"dim_carriers": carriers, "dim_airports": airports, "dim_planes": planes}


# ---------------------------------------------------------------- warehouse: flights


def _typed_flights(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """The raw text typed (NULL where it does not read), plus whether any value failed and keys are missing."""
    typed = pd.DataFrame({"flight_date": raw["date"]}, index=raw.index)
    bad = pd.Series(False, index=raw.index)
    for column in INTEGERS:
        text = raw[column]
        plain = text.str.contains(r"^\s*[+-]?\d+\s*$").fillna(False).astype(bool)  # 1.5 does not read
        number = text.where(plain).str.strip().astype("float64")
        typed[column] = number.where(number.between(*INT32)).astype("Int64")
        bad |= text.notna() & typed[column].isna()
    for column in TEXTS:
        typed[column] = raw[column].str.strip().replace("", None)
    typed["time_hour"] = _utc(pd.to_datetime(raw["time_hour"], format=TIME_FORMAT, errors="coerce", utc=True))
    bad |= raw["time_hour"].notna() & typed["time_hour"].isna()
    missing_key = pd.concat(
        [raw[c].str.strip().replace("", None).isna() for c in ("carrier", "flight", "origin", "sched_dep_time")],
        axis=1,
    ).any(axis=1)
    return typed, bad, missing_key


def _out_of_range(t: pd.DataFrame) -> pd.Series:
    """Any value outside its range (a missing value is not out of range)."""
    checks = [
        t["month"].between(1, 12),
        t["day"].between(1, 31),
        t["hour"].between(0, 24),
        t["minute"].between(0, 59),
        t["dep_delay"].abs() <= 1440,
        t["arr_delay"].abs() <= 1440,
        (t["distance"] > 0) & (t["distance"] < 6000),
        t["air_time"].between(0, 1000),
    ]
    checks += [
        t[c].between(0, 2400) & (t[c] % 100 < 60) for c in ("dep_time", "sched_dep_time", "arr_time", "sched_arr_time")
    ]
    return pd.concat([~check.fillna(True).astype(bool) for check in checks], axis=1).any(axis=1)


def load_staging_flights(raw: pd.DataFrame, dims: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``staging.flights``, ``quarantine.flights``): the contract's nine rules in order, then times placed."""
    raw = raw.assign(**{c: pd.Series(None, index=raw.index, dtype="str") for c in SOURCE if c not in raw})
    t, bad_type, missing_key = _typed_flights(raw)
    zones = dims["dim_airports"][["faa", "tzone"]]
    zones = zones[zones["tzone"].isin(zoneinfo.available_timezones())].set_index("faa")["tzone"]
    t["origin_tzone"], t["dest_tzone"] = t["origin"].map(zones), t["dest"].map(zones)
    rule = _first_rule(
        {
            "parse_error": raw["_parse_error"].notna(),
            "missing_key": missing_key,
            "bad_type": bad_type,
            "out_of_range": _out_of_range(t),
            "date_mismatch": (
                t["year"].ne(t["flight_date"].dt.year)
                | t["month"].ne(t["flight_date"].dt.month)
                | t["day"].ne(t["flight_date"].dt.day)
            ).fillna(True),
            "unknown_carrier": ~t["carrier"].isin(dims["dim_carriers"]["carrier"]),
            "unknown_origin": ~t["origin"].isin(NYC_ORIGINS) | t["origin_tzone"].isna(),
            "unknown_dest": t["dest"].isna() | t["dest_tzone"].isna(),
        },
        raw.index,
    )
    t = pd.concat([t, raw[["_source_file", "_source_sha256", "_source_line"]]], axis=1)
    # duplicate_key: among valid rows, keep the latest file by name, then its first line.
    order = t[rule.isna()].sort_values(["_source_file", "_source_line"], ascending=[False, True])
    rule[order.index[order.duplicated(KEY)]] = "duplicate_key"
    quarantine = pd.concat([raw[rule.notna()], rule[rule.notna()].rename("rule")], axis=1)
    f = t[rule.isna()].copy()

    f["sched_dep_local"] = f["flight_date"] + _hhmm(f["sched_dep_time"])
    f["sched_dep_utc"] = _localize(f["sched_dep_local"], f["origin_tzone"])
    # Scheduled arrival: the first time at or after departure that the destination's clock shows sched_arr_time.
    dep_at_dest = _wall_clock(f["sched_dep_utc"], f["dest_tzone"])
    arrival = dep_at_dest.dt.floor("D") + _hhmm(f["sched_arr_time"])
    f["sched_arr_local"] = arrival.where(~(arrival < dep_at_dest), arrival + pd.Timedelta(days=1))
    f["sched_arr_utc"] = _localize(f["sched_arr_local"], f["dest_tzone"])
    f["actual_dep_utc"] = f["sched_dep_utc"] + _minutes(f["dep_delay"])
    f["actual_dep_local"] = _wall_clock(f["actual_dep_utc"], f["origin_tzone"])
    f["actual_arr_utc"] = f["sched_arr_utc"] + _minutes(f["arr_delay"])
    f["actual_arr_local"] = _wall_clock(f["actual_arr_utc"], f["dest_tzone"])
    f["is_cancelled"] = f["dep_time"].isna()
    f["is_diverted"] = f["dep_time"].notna() & f["arr_delay"].isna()
    f = f.drop(columns=["origin_tzone", "dest_tzone"])
    f = f.sort_values(["flight_date", "origin", "sched_dep_time", "carrier", "flight"], ignore_index=True)
    return f, quarantine


def load_fct_flights(staged: pd.DataFrame, dims: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``core.fct_flights``: staged flights with names, zones, the plane (left-joined) and ``is_delayed``."""
    airports = dims["dim_airports"][["faa", "name", "tzone"]]
    planes = dims["dim_planes"][["tailnum", "year", "type", "manufacturer", "model", "engines", "seats"]]
    fct = (
        staged.drop(columns=["year", "month", "day", "_source_sha256"])
        .merge(dims["dim_carriers"].rename(columns={"name": "carrier_name"}), on="carrier", how="left")
        .merge(airports.set_axis(["origin", "origin_name", "origin_tzone"], axis=1), on="origin", how="left")
        .merge(airports.set_axis(["dest", "dest_name", "dest_tzone"], axis=1), on="dest", how="left")
        .merge(
            planes.rename(columns={"year": "plane_year", "type": "plane_type"}).assign(has_plane=True),
            on="tailnum",
            how="left",
        )
    )
    if len(fct) != len(staged):
        raise RuntimeError("a repeated dimension key would duplicate flights")
    fct["has_tailnum"] = fct["tailnum"].notna()
    fct["has_plane"] = fct["has_plane"].notna() & fct["has_tailnum"]
    fct["is_delayed"] = (fct["arr_delay"] > DELAY_THRESHOLD).astype("boolean")
    return fct


# ---------------------------------------------------------------- warehouse: weather


def load_staging_weather(raw: pd.DataFrame, first: dt.date, last: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``staging.weather`` of [first, last], its quarantine): cleaned reports plus imputed short gaps.

    ``raw`` holds the lake's weather of [first - 1, last + 1] so that gaps across the edges are seen.
    """
    origin = raw["origin"].str.strip().replace("", None)
    obs = pd.to_datetime(raw["time_hour"], format=TIME_FORMAT, errors="coerce")  # naive UTC
    ny_day = obs.dt.tz_localize("UTC").dt.tz_convert(NEW_YORK).dt.tz_localize(None).dt.floor("D")
    rule = _first_rule(
        {
            "missing_key": origin.isna() | raw["time_hour"].isna(),
            "bad_type": obs.isna(),
            "out_of_range": (obs.dt.minute != 0) | (obs.dt.second != 0),
            "unknown_origin": ~origin.isin(NYC_ORIGINS),
            "date_mismatch": ny_day != raw["date"],
        },
        raw.index,
    )
    w = raw.assign(origin=origin, _obs=_utc(obs.dt.tz_localize("UTC")), _row=np.arange(len(raw)))
    # duplicate_key: same origin and hour; the latest _fetched_at wins, then the first file and row.
    order = w[rule.isna()].sort_values(
        ["_fetched_at", "date", "_row"], ascending=[False, True, True], na_position="last"
    )
    rule[order.index[order.duplicated(["origin", "_obs"])]] = "duplicate_key"
    quarantine = raw[rule.notna()].assign(rule=rule[rule.notna()])
    w = w[rule.isna()]

    impossible = pd.DataFrame({c: ~w[c].between(lo, hi) & w[c].notna() for c, (lo, hi) in WEATHER_BOUNDS.items()})
    for column, (lo, hi) in WEATHER_BOUNDS.items():
        w[column] = w[column].where(w[column].between(lo, hi))
    w["wind_gust"] = w["wind_gust"].where(raw.loc[w.index, "wind_gust"].notna(), 0.0)  # no gust reported: 0
    names = impossible.apply(lambda col: np.where(col, col.name + ",", ""))  # one pass per column
    reported = w.assign(
        is_imputed=False,
        has_impossible_value=impossible.any(axis=1),
        impossible_columns=names.sum(axis=1).str.rstrip(",").replace("", None),
        known_at_utc=w["_obs"] + KNOWN_AFTER,
    )

    # Gaps of 1-3 missing hours: one row per missing hour, interpolated between the reports around it.
    w = w.sort_values(["origin", "_obs"])
    following = w.groupby("origin")[["_obs", *WEATHER_BOUNDS]].shift(-1).add_prefix("next_")
    missing = (following["next__obs"] - w["_obs"]) / HOUR - 1
    short = missing.between(1, MAX_GAP_HOURS)
    gaps = pd.concat([w, following], axis=1)[short].assign(_missing=missing[short])
    gaps = gaps.loc[gaps.index.repeat(gaps["_missing"].astype(int))]
    k = gaps.groupby(level=0).cumcount().to_numpy() + 1.0
    span = gaps["_missing"].to_numpy() + 1.0
    imputed = pd.DataFrame(
        {
            "origin": gaps["origin"],
            "_obs": gaps["_obs"] + k * HOUR,
            **{c: gaps[c] + (gaps[f"next_{c}"] - gaps[c]) * k / span for c in WEATHER_BOUNDS if c != "wind_dir"},
            "wind_dir": gaps["wind_dir"].where(2 * k <= span, gaps["next_wind_dir"]),
            "is_imputed": True,
            "has_impossible_value": False,
            "impossible_columns": None,
            "known_at_utc": gaps["next__obs"] + KNOWN_AFTER,
        }
    )
    rows = pd.concat([reported, imputed], ignore_index=True)
    rows["observed_at_utc"] = rows["_obs"]
    rows["observed_at_local"] = rows["_obs"].dt.tz_convert(NEW_YORK).dt.tz_localize(None)
    rows["weather_date"] = rows["observed_at_local"].dt.floor("D")
    rows = rows[rows["weather_date"].between(pd.Timestamp(first), pd.Timestamp(last))]
    columns = [
        "weather_date",
        "origin",
        "observed_at_utc",
        "observed_at_local",
        "known_at_utc",
        *WEATHER_BOUNDS,
        "is_imputed",
        "has_impossible_value",
        "impossible_columns",
        "_fetched_at",
        "_source_url",
    ]
    return rows[columns].sort_values(["observed_at_utc", "origin"], ignore_index=True), quarantine


def build_warehouse(lake: Path, first: dt.date, last: dt.date) -> dict[str, pd.DataFrame]:
    """The warehouse tables of [first, last] from the lake: dims, staging/quarantine flights, facts, weather."""
    dims = load_dims(lake)
    staged, quarantined = load_staging_flights(_read_days(lake, "flights", first, last), dims)
    day = dt.timedelta(days=1)
    raw_weather = _read_days(lake, "weather", first - day, last + day)  # a day each side: gaps across the edges
    weather, weather_quarantine = load_staging_weather(raw_weather, first, last)
    return {
        **dims,
        "staging_flights": staged,
        "quarantine_flights": quarantined,
        "fct_flights": load_fct_flights(staged, dims),
        "staging_weather": weather,
        "quarantine_weather": weather_quarantine,
    }


# ---------------------------------------------------------------- features


def _running_totals(events: pd.DataFrame, keys: list[str], at: str, sums: list[str]) -> pd.DataFrame:
    """Per group and instant ``t`` (the events' column ``at``), the running totals ``cum_<sum>`` up to ``t``."""
    per_time = events.groupby([*keys, at], sort=True)[sums].sum()
    totals = per_time.groupby(level=list(range(len(keys)))).cumsum().add_prefix("cum_")
    return totals.reset_index().rename(columns={at: "t"})


def _asof(flights: pd.DataFrame, totals: pd.DataFrame, keys: list[str], at: str, strict: bool) -> pd.DataFrame:
    """For each flight, the latest running total of its group with ``t <= flights[at]`` (``<`` if strict)."""
    left = flights[["row_id", *keys, at]].dropna(subset=keys).sort_values(at)
    joined = pd.merge_asof(
        left, totals.sort_values("t"), left_on=at, right_on="t", by=keys, allow_exact_matches=not strict
    )
    return joined.set_index("row_id").drop(columns=[*keys, at]).reindex(flights["row_id"]).set_axis(flights.index)


def _between(end: pd.DataFrame, start: pd.DataFrame, column: str) -> np.ndarray:
    """Events between two running totals (a missing total is zero)."""
    return end[f"cum_{column}"].fillna(0).to_numpy(float) - start[f"cum_{column}"].fillna(0).to_numpy(float)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (SQL's ``x / nullif(n, 0)``)."""
    return np.divide(numerator, denominator, out=np.full(len(numerator), np.nan), where=denominator != 0)


def _days_to_holiday(days: pd.Series, first: dt.date, last: dt.date) -> pd.Series:
    """Signed days to the nearest US federal holiday (the coming one on a tie), per day."""
    holidays = USFederalHolidayCalendar().holidays(f"{first.year - 1}-01-01", f"{last.year + 1}-12-31")
    pairs = pd.DataFrame({"day": days.unique()}).merge(pd.DataFrame({"holiday": holidays}), how="cross")
    pairs["diff"] = (pairs["holiday"] - pairs["day"]).dt.days
    pairs["score"] = 2 * pairs["diff"].abs() - (pairs["diff"] >= 0)
    nearest = pairs.sort_values("score").drop_duplicates("day").set_index("day")["diff"]
    return days.map(nearest)


def _weather_reports(weather: pd.DataFrame) -> pd.DataFrame:
    """Each report with its 3-hour trends, keeping at each ``known_at`` the newest observation."""
    w = weather[["origin", "observed_at_utc", "known_at_utc", *WEATHER_MEASURES]]
    for lag in (1, 2, 3):  # the rows observed 1, 2 and 3 hours before
        before = weather[["origin", "observed_at_utc", "known_at_utc", "temp", "pressure", "wind_speed", "precip"]]
        before = before.assign(observed_at_utc=before["observed_at_utc"] + lag * HOUR)
        w = w.merge(
            before.rename(columns=lambda c, lag=lag: c if c in ("origin", "observed_at_utc") else f"{c}_{lag}"),
            on=["origin", "observed_at_utc"],
            how="left",
        )
    w = w.assign(
        temp_change_3h=w["temp"] - w["temp_3"],
        pressure_change_3h=w["pressure"] - w["pressure_3"],
        wind_speed_change_3h=w["wind_speed"] - w["wind_speed_3"],
        # sum over the rows of the last 3 hours that exist (NULL when none has a value)
        precip_sum_3h=w[["precip", "precip_1", "precip_2"]].sum(axis=1, min_count=1),
        used_known_at=w[["known_at_utc", "known_at_utc_1", "known_at_utc_2", "known_at_utc_3"]].max(axis=1),
    )
    w = w.sort_values(["origin", "known_at_utc", "observed_at_utc"]).drop_duplicates(
        ["origin", "known_at_utc"], keep="last"
    )
    return w.drop(columns=[c for c in w.columns if c[-2:] in ("_1", "_2", "_3")])


def build_flight_features(
    fct: pd.DataFrame, weather: pd.DataFrame, first: dt.date, last: dt.date, horizon_minutes: int = 60
) -> pd.DataFrame:
    """``features.flight_features`` of the flights of [first, last]: one row per fact, as seen at ``predicted_at``."""
    start, end = pd.Timestamp(first), pd.Timestamp(last)
    f = fct[fct["flight_date"].between(start, end)].reset_index(drop=True)
    f["row_id"] = np.arange(len(f))
    f["sched_dep_hour"] = f["sched_dep_time"] // 100
    f["sched_dep_minute"] = f["sched_dep_time"] % 100
    f["predicted_at"] = f["sched_dep_utc"] - pd.Timedelta(minutes=horizon_minutes)
    f["day_end_utc"] = _localize(f["flight_date"] + pd.Timedelta(days=1), pd.Series(NEW_YORK, index=f.index))
    f["airport_window_start"] = f["predicted_at"] - AIRPORT_WINDOW
    f["schedule_from"] = f["sched_dep_utc"] - SCHEDULE_HALF
    f["schedule_to"] = f["sched_dep_utc"] + SCHEDULE_HALF
    out = f[
        [
            "flight_date",
            "carrier",
            "flight",
            "origin",
            "sched_dep_time",
            "tailnum",
            "dest",
            "sched_dep_utc",
            "predicted_at",
            "sched_dep_hour",
            "sched_dep_minute",
            "distance",
            "seats",
            "engines",
            "is_delayed",
            "is_cancelled",
            "is_diverted",
        ]
    ].copy()
    out["horizon_minutes"] = horizon_minutes
    out["month"] = f["flight_date"].dt.month
    out["weekday"] = f["flight_date"].dt.dayofweek + 1
    out["days_to_holiday"] = _days_to_holiday(f["flight_date"], first, last)
    out["plane_age"] = f["flight_date"].dt.year - f["plane_year"]

    # Weather: the newest report published by predicted_at, if published less than 6 h before.
    w = weather[weather["weather_date"].between(start - pd.Timedelta(days=WEATHER_LOOKBACK_DAYS), end)]
    reports = _weather_reports(w).rename(columns={"known_at_utc": "t"})
    wx = _asof(f, reports, ["origin"], "predicted_at", strict=False)
    fresh = wx["t"] > f["predicted_at"] - MAX_WEATHER_AGE
    for column in (*WEATHER_MEASURES, "temp_change_3h", "pressure_change_3h", "wind_speed_change_3h", "precip_sum_3h"):
        out[column] = wx[column].where(fresh)
    age = (f["predicted_at"] - wx["observed_at_utc"]) // pd.Timedelta(minutes=1)
    out["weather_age_minutes"] = age.where(fresh).astype("Int64")
    out["weather_known_at"] = wx["used_known_at"].where(fresh)

    # Past flights' events, each usable from greatest(its time, the start of its New York day).
    past = fct[fct["flight_date"].between(start - pd.Timedelta(days=HISTORY_LOOKBACK_DAYS), end)].copy()
    past["sched_dep_hour"] = past["sched_dep_time"] // 100
    day_start = _localize(past["flight_date"], pd.Series(NEW_YORK, index=past.index))
    past["dep_t"] = past["actual_dep_utc"].where(past["actual_dep_utc"] > day_start, day_start)
    past["arr_t"] = past["actual_arr_utc"].where(past["actual_arr_utc"] > day_start, day_start)
    past["n"], past["delay"], past["delayed"] = 1, past["dep_delay"], past["is_delayed"].fillna(False).astype(int)

    # Airport state: departures and cancellations in (predicted_at - 2 h, predicted_at], schedule +-1 h.
    departures = _running_totals(past[past["actual_dep_utc"].notna()], ["origin"], "dep_t", ["n", "delay"])
    cancellations = _running_totals(past[past["is_cancelled"]], ["origin"], "sched_dep_utc", ["n"])
    schedule = _running_totals(past, ["origin"], "sched_dep_utc", ["n"])
    dep_end = _asof(f, departures, ["origin"], "predicted_at", strict=False)
    dep_start = _asof(f, departures, ["origin"], "airport_window_start", strict=False)
    can_end = _asof(f, cancellations, ["origin"], "predicted_at", strict=False)
    can_start = _asof(f, cancellations, ["origin"], "airport_window_start", strict=False)
    departed, cancelled = _between(dep_end, dep_start, "n"), _between(can_end, can_start, "n")
    sched_to = _asof(f, schedule, ["origin"], "schedule_to", strict=False)["cum_n"].fillna(0).to_numpy()
    sched_day = _asof(f, schedule, ["origin"], "day_end_utc", strict=True)["cum_n"].fillna(0).to_numpy()
    sched_from = _asof(f, schedule, ["origin"], "schedule_from", strict=True)["cum_n"].fillna(0).to_numpy()
    out["origin_sched_flights_2h"] = np.minimum(sched_to, sched_day) - sched_from
    out["origin_departed_2h"] = departed
    out["origin_mean_dep_delay_2h"] = _ratio(_between(dep_end, dep_start, "delay"), departed)
    out["origin_cancelled_2h"] = cancelled
    out["airport_state_known_at"] = pd.concat(
        [dep_end["t"].where(departed > 0), can_end["t"].where(cancelled > 0)], axis=1
    ).max(axis=1)

    # Delay history: labelled arrivals in [predicted_at - window, predicted_at], per group.
    labelled = past[past["is_delayed"].notna() & past["actual_arr_utc"].notna()]
    for days in HISTORY_WINDOW_DAYS:
        f[f"history_start_{days}d"] = f["predicted_at"] - pd.Timedelta(hours=24 * days)
    used = []
    for group, keys in HISTORY_GROUPS.items():
        keys = list(keys)
        arrivals = _running_totals(labelled.dropna(subset=keys), keys, "arr_t", ["n", "delayed"])
        at_end = _asof(f, arrivals, keys, "predicted_at", strict=False)
        known, counts = f[keys].notna().all(axis=1).to_numpy(), {}
        for days in HISTORY_WINDOW_DAYS:
            at_start = _asof(f, arrivals, keys, f"history_start_{days}d", strict=True)
            n, delayed = _between(at_end, at_start, "n"), _between(at_end, at_start, "delayed")
            counts[days] = n
            out[f"{group}_delay_rate_{days}d"] = np.where(known, _ratio(delayed, n), np.nan)
            out[f"{group}_n_{days}d"] = pd.Series(n, index=out.index).where(known).astype("Int64")
        used.append(at_end["t"].where(counts[max(HISTORY_WINDOW_DAYS)] > 0))
    out["history_known_at"] = pd.concat(used, axis=1).max(axis=1)
    return out[list(COLUMN_ORDER)]


# ---------------------------------------------------------------- the whole run


def build_features(
    landing_dir: Path,
    reference_dir: Path,
    weather_csv: Path,
    first: dt.date,
    last: dt.date,
    horizon_minutes: int = 60,
    progress: Callable[[str], object] = print,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Lake, warehouse and features of [first, last] from the files; (features, wall seconds per stage).

    The lake goes to a temporary folder next to ``landing_dir``, removed at the end.
    """
    landing_dir = Path(landing_dir)
    lake = Path(tempfile.mkdtemp(prefix="pandas_lake_", dir=landing_dir.parent))
    seconds: dict[str, float] = {}
    try:
        started = time.perf_counter()
        build_lake(landing_dir, Path(reference_dir), Path(weather_csv), lake, first, last, progress)
        seconds["lake"], started = time.perf_counter() - started, time.perf_counter()
        progress(f"lake: {seconds['lake']:.1f} s")
        warehouse = build_warehouse(lake, first, last)
        seconds["warehouse"], started = time.perf_counter() - started, time.perf_counter()
        progress(
            f"warehouse: {len(warehouse['fct_flights'])} flights, {len(warehouse['quarantine_flights'])} "
            f"quarantined, {len(warehouse['staging_weather'])} weather hours in {seconds['warehouse']:.1f} s"
        )
        features = build_flight_features(
            warehouse["fct_flights"], warehouse["staging_weather"], first, last, horizon_minutes
        )
        seconds["features"] = time.perf_counter() - started
        progress(f"features: {len(features)} rows in {seconds['features']:.1f} s")
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    return features, seconds
