"""Packed values of the online store: msgpack with exact round trips, nothing lossy.

* floats stay float64 (never single precision), NaN and infinities included;
* ints stay ints (64-bit), bools stay bools, ``None`` stays ``None``;
* ``datetime.date`` is an extension (days since 1970-01-01);
* time-zone-aware ``datetime.datetime`` is an extension (microseconds since the epoch, UTC),
  read back in UTC: the same instant, whatever zone it was written in. A naive datetime
  is refused: it has no instant to store.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack

EXT_DATE = 1
EXT_TIMESTAMP_US = 2
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()


def to_micros(value: dt.datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact integer arithmetic)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise TypeError(f"naive datetime {value!r} has no instant: pass a time-zone-aware datetime")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=micros)


def _default(value: Any) -> msgpack.ExtType:
    if isinstance(value, dt.datetime):  # before date: a datetime is a date
        return msgpack.ExtType(EXT_TIMESTAMP_US, to_micros(value).to_bytes(8, "big", signed=True))
    if isinstance(value, dt.date):
        return msgpack.ExtType(EXT_DATE, (value.toordinal() - _EPOCH_DAY).to_bytes(4, "big", signed=True))
    raise TypeError(f"cannot pack {type(value).__name__} {value!r} into the online store")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_TIMESTAMP_US:
        return from_micros(int.from_bytes(data, "big", signed=True))
    if code == EXT_DATE:
        return dt.date.fromordinal(int.from_bytes(data, "big", signed=True) + _EPOCH_DAY)
    return msgpack.ExtType(code, data)


def pack(value: Any) -> bytes:
    """One value (a list, a dict, a scalar) as bytes; see the module docstring for the types kept."""
    return msgpack.packb(value, default=_default, use_bin_type=True, use_single_float=False, datetime=False)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False, timestamp=0)
