"""The lake as the record of what was consumed: batch files named by partition and offset range.

Layout, for topic ``flight_events``::

    raw/flight_events/partition=<p>/<first:020d>-<last:020d>.parquet              events
    raw/flight_events/partition=<p>/<first:020d>-<last:020d>.dead_letter.parquet  rejected messages
    raw/flight_events/_sink_status.json                                           consumer lag

A batch file covers the offsets ``first..last`` of one partition, inclusive: every message
in that range is either a row of the batch file or a row of the dead-letter file of the same
range (offsets Kafka left empty, e.g. compacted ones, are in neither). The batch file is the
commit: it is written last, atomically, and a dead-letter file counts only beside a batch
file of the same range (one without is left over from a crash and is removed by the sink).
Consecutive files of a partition touch (``next.first == previous.last + 1``): the next
offset to consume is the last file's ``last + 1``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import polars as pl

from ml_platform.io.store import Store
from ml_platform.stream.events import EVENT_SCHEMA, TOPIC

_PARTITION_DIR = re.compile(r"^partition=(\d+)$")
_BATCH = re.compile(r"^(\d{20})-(\d{20})\.parquet$")
_DEAD_LETTER = re.compile(r"^(\d{20})-(\d{20})\.dead_letter\.parquet$")
STATUS_FILE = "_sink_status.json"
# A batch file's columns: the event's fields, then where and when it came from.
LINEAGE_SCHEMA = {
    "_topic": pl.String,
    "_partition": pl.Int32,
    "_offset": pl.Int64,
    "_kafka_timestamp": pl.Datetime("ms", "UTC"),  # the message's CreateTime: when it was produced
    "_ingested_at": pl.Datetime("us", "UTC"),  # when its batch was written to the lake
}
LAKE_EVENT_SCHEMA = EVENT_SCHEMA | LINEAGE_SCHEMA
DEAD_LETTER_SCHEMA = {
    "_topic": pl.String,
    "_partition": pl.Int32,
    "_offset": pl.Int64,
    "_kafka_timestamp": pl.Datetime("ms", "UTC"),
    "_key": pl.Binary,
    "_value": pl.Binary,
    "_reason": pl.String,
    "_ingested_at": pl.Datetime("us", "UTC"),
}


def topic_prefix(topic: str = TOPIC) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]+", topic):
        raise ValueError(f"not a usable topic name: {topic!r}")
    return f"raw/{topic}"


def batch_path(partition: int, first: int, last: int, topic: str = TOPIC) -> str:
    return f"{topic_prefix(topic)}/partition={partition}/{first:020d}-{last:020d}.parquet"


def dead_letter_path(partition: int, first: int, last: int, topic: str = TOPIC) -> str:
    return f"{topic_prefix(topic)}/partition={partition}/{first:020d}-{last:020d}.dead_letter.parquet"


@dataclass(frozen=True)
class BatchFile:
    """One committed micro-batch: offsets ``first..last`` of one partition."""

    partition: int
    first: int
    last: int
    path: str
    size: int
    dead_letter_path: str | None  # set when some messages of the range were rejected

    @property
    def messages(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class PartitionOffsets:
    """What the lake holds of one partition."""

    partition: int
    next_offset: int  # the first offset not in the lake: where consuming resumes
    files: int
    messages: int  # offsets covered by the files (events + rejected messages)
    dead_letter_files: int
    bytes: int

    @property
    def last_offset(self) -> int:
        return self.next_offset - 1


@dataclass(frozen=True)
class _Listing:
    batches: dict[int, list[BatchFile]]
    orphan_dead_letters: list[str]


def _list(store: Store, topic: str) -> _Listing:
    batches: dict[int, list[tuple[int, int, str, int]]] = {}
    dead: dict[tuple[int, int, int], str] = {}
    for f in store.list(topic_prefix(topic)):
        parts = f.path.split("/")
        if len(parts) != 4 or not (where := _PARTITION_DIR.match(parts[2])):
            continue
        partition = int(where.group(1))
        if m := _BATCH.match(parts[3]):
            batches.setdefault(partition, []).append((int(m.group(1)), int(m.group(2)), f.path, f.size))
        elif m := _DEAD_LETTER.match(parts[3]):
            dead[(partition, int(m.group(1)), int(m.group(2)))] = f.path
    result = {
        p: [BatchFile(p, a, b, path, size, dead.pop((p, a, b), None)) for a, b, path, size in sorted(found)]
        for p, found in sorted(batches.items())
    }
    return _Listing(result, sorted(dead.values()))


def lake_batches(store: Store, topic: str = TOPIC) -> dict[int, list[BatchFile]]:
    """Every committed batch file per partition, in offset order."""
    return _list(store, topic).batches


def orphan_dead_letters(store: Store, topic: str = TOPIC) -> list[str]:
    """Dead-letter files without their batch file: written by a sink that died before committing."""
    return _list(store, topic).orphan_dead_letters


def lake_offsets(store: Store, topic: str = TOPIC) -> dict[int, PartitionOffsets]:
    """Per partition: the next offset to consume, and how many files, offsets and bytes the lake holds.

    Reads only the listing (file names), never a file: cheap enough for a sensor.
    """
    return {
        p: PartitionOffsets(
            partition=p,
            next_offset=files[-1].last + 1,
            files=len(files),
            messages=sum(f.messages for f in files),
            dead_letter_files=sum(f.dead_letter_path is not None for f in files),
            bytes=sum(f.size for f in files),
        )
        for p, files in lake_batches(store, topic).items()
    }


def offset_log_problems(store: Store, topic: str = TOPIC) -> list[str]:
    """Gaps and overlaps between consecutive batch files, as readable sentences (empty when sound)."""
    problems = []
    for p, files in lake_batches(store, topic).items():
        for before, after in zip(files, files[1:], strict=False):
            if after.first > before.last + 1:
                problems.append(f"partition {p}: offsets {before.last + 1}..{after.first - 1} are in no file (gap)")
            elif after.first <= before.last:
                problems.append(f"partition {p}: {before.path} and {after.path} overlap")
    return problems


def read_status(store: Store, topic: str = TOPIC) -> dict | None:
    """The sink's last published status (consumer lag per partition), or None if it never ran."""
    path = f"{topic_prefix(topic)}/{STATUS_FILE}"
    return json.loads(store.read_bytes(path)) if store.exists(path) else None


def write_status(store: Store, status: dict, topic: str = TOPIC) -> None:
    store.write_bytes(f"{topic_prefix(topic)}/{STATUS_FILE}", json.dumps(status, indent=1, sort_keys=True).encode())
