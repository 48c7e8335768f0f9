"""The operational database: where the airline business keeps airlines, airports and planes.

Addressed by a SQLAlchemy URL (a SQLite file by default, Postgres in production).
The platform only reads it, except ``ml-platform seed``, which loads the reference data.
"""

from __future__ import annotations

import hashlib

import polars as pl
import sqlalchemy as sa

from ml_platform.domain.flights import REFERENCE_TABLES


def engine(url: str) -> sa.Engine:
    return sa.create_engine(url, pool_pre_ping=True)


def replace_tables(url: str, tables: dict[str, pl.DataFrame]) -> dict[str, int]:
    """Replace whole tables (name -> rows); rows per table. Only seeding writes here."""
    eng = engine(url)
    try:
        for name, frame in tables.items():
            frame.write_database(name, eng, if_table_exists="replace")
    finally:
        eng.dispose()
    return {name: frame.height for name, frame in tables.items()}


def read_table(url: str, name: str) -> pl.DataFrame:
    """One reference table, ordered by all its columns so its content hash is stable."""
    if name not in REFERENCE_TABLES:
        raise ValueError(f"unknown reference table {name!r}; expected one of {REFERENCE_TABLES}")
    eng = engine(url)
    try:
        with eng.connect() as conn:
            frame = pl.read_database(f'SELECT * FROM "{name}"', conn, infer_schema_length=None)
    finally:
        eng.dispose()
    return frame.sort(frame.columns, nulls_last=True)


def content_hash(frame: pl.DataFrame) -> str:
    """A hash of a table's columns and values; equal tables give equal hashes."""
    digest = hashlib.sha256(repr(frame.schema).encode())
    digest.update(frame.write_csv().encode())
    return digest.hexdigest()
