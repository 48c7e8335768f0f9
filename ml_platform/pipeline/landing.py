"""The landing zone's contract: which files are flights files, and which are fit to ingest.

A landing file is ``flights_YYYY-MM-DD.csv`` (an optional ``_suffix`` before
``.csv`` allows several deliveries for one day), or the same gzip-compressed as
``.csv.gz``. A file is rejected whole only for a structural problem: a name without
a valid date, no content, a broken or foreign archive, bytes that are not UTF-8,
text that is not CSV, or required columns missing. Problems inside rows (bad values,
ragged lines, a stray quote, a value far too long) are kept with the row and left to
the warehouse's row-level quarantine.

The rows a file holds are counted from its lines, not by the CSV parser
(``_source_lines``: its non-blank lines after the header, less the line breaks inside
the quoted values of records read whole). A stray quote that would make the csv module
swallow the rest of the file into one field makes the file be read line by line instead,
so no line is ever lost silently, and the warehouse checks rows in = rows loaded +
quarantined against that count.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import re
import zlib
from itertools import groupby

import polars as pl

from ml_platform.domain.flights import REQUIRED_SOURCE_COLUMNS
from ml_platform.io.store import Store, StoredFile, sha256

REJECTED_DIR = "_rejected"
NAME_PATTERN = re.compile(r"flights_(\d{4}-\d{2}-\d{2})(?:_[A-Za-z0-9-]+)?\.csv(?:\.gz)?")  # whole name only
NULL_VALUES = ("", "NA")
# Columns the lake adds to every raw row, so any row can be traced to its file and line.
LINEAGE_COLUMNS = ("_source_file", "_source_sha256", "_source_line", "_parse_error", "_source_lines")
# A real value is at most a few dozen characters; a longer one means a broken line, and is not
# carried into the lake (the archived file keeps it).
MAX_FIELD_CHARS = 1000
MAX_UNCOMPRESSED_BYTES = 1 << 30


class RejectedFile(ValueError):
    """A landing file that cannot be ingested at all; the message says why and where."""

    def __init__(self, name: str, problem: str, line: int | None = None):
        self.name, self.problem, self.line = name, problem, line
        where = f" (line {line})" if line is not None else ""
        super().__init__(f"{name}: {problem}{where}")


def landing_date(name: str) -> dt.date:
    """The flight date a landing file name stands for, or RejectedFile."""
    match = NAME_PATTERN.fullmatch(name)
    if not match:
        raise RejectedFile(name, "name is not of the form flights_YYYY-MM-DD[_suffix].csv (or .csv.gz)")
    try:
        return dt.date.fromisoformat(match.group(1))
    except ValueError:
        raise RejectedFile(name, f"{match.group(1)!r} in the name is not a calendar date") from None


def landing_files(store: Store) -> list[StoredFile]:
    """Every file in the landing zone's top level (folders such as ``_rejected/`` excluded): each
    ends ingested or rejected with a reason, none is left without one."""
    return store.list("", recursive=False)


def name_problem(f: StoredFile) -> RejectedFile | None:
    """Why a landing file can not be ingested whatever it holds (its name, or being a link)."""
    if f.is_link:
        return RejectedFile(f.name, "a symbolic link: links are not followed; deliver the file itself")
    if f.name.startswith((".", "_")):
        return RejectedFile(f.name, "a hidden or reserved name (starts with '.' or '_')")
    try:
        landing_date(f.name)
    except RejectedFile as e:
        return e
    return None


def parse_flights_csv(name: str, data: bytes) -> pl.DataFrame:
    """The file's rows as text columns plus lineage columns, or RejectedFile.

    Values stay text exactly as delivered (``NA`` and empty become missing): typing
    is the warehouse's job, where a bad value quarantines one row, not the file.
    A line with the wrong number of fields is kept with ``_parse_error`` set.
    """
    digest = sha256(data)
    data = _decompressed(name, data)
    if not data.strip():
        raise RejectedFile(name, "file is empty")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Excel's CSVs) is not part of a name
    except UnicodeDecodeError as e:
        raise RejectedFile(name, f"not UTF-8 ({e.reason})", data.count(b"\n", 0, e.start) + 1) from None
    if "\x00" in text:
        raise RejectedFile(name, "not a CSV text file (contains NUL bytes)", text[: text.index("\x00")].count("\n") + 1)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as e:
        raise RejectedFile(name, f"not valid CSV ({e})", reader.line_num) from None
    if len(header) < 2:
        raise RejectedFile(name, "not a CSV file: the first line has no comma-separated header", 1)
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise RejectedFile(name, f"header repeats column(s) {', '.join(dupes)}", 1)
    missing = [c for c in REQUIRED_SOURCE_COLUMNS if c not in header]
    if missing:
        raise RejectedFile(name, f"required column(s) missing: {', '.join(missing)}", 1)

    physical = physical_rows(text)
    frame = _read_plain(text, header)
    if frame is None:
        frame = _read_rows(name, reader, header)
        # Records spanning lines are fine when each is a whole record; otherwise a stray quote
        # swallowed lines: then every line is read on its own, so none is lost.
        if frame.height != physical and frame["_parse_error"].is_not_null().any():
            frame = _read_lines(text, header)
    if frame.is_empty():
        raise RejectedFile(name, "file has a header but no rows")
    frame = _flag_oversized(frame, header)
    embedded = frame.select(pl.sum_horizontal(pl.col(h).str.count_matches("\n").sum() for h in header)).item() or 0
    physical -= embedded  # lines that are inside a quoted value of a kept record
    lineage = [
        pl.Series("_source_file", [name]),
        pl.Series("_source_sha256", [digest]),
        pl.Series("_source_lines", [physical], dtype=pl.Int32),
    ]
    return frame.hstack([s.new_from_index(0, frame.height) for s in lineage]).select(
        *header, "_source_file", "_source_sha256", "_source_line", "_parse_error", "_source_lines"
    )


def physical_rows(text: str) -> int:
    """The file's non-blank lines after the header, counted without any CSV parser."""
    return sum(1 for line in text.splitlines()[1:] if line.strip())


def _decompressed(name: str, data: bytes) -> bytes:
    """A ``.csv.gz`` file's bytes uncompressed; RejectedFile for archives that are not a CSV."""
    if name.endswith(".gz"):
        try:
            out = gzip.GzipFile(fileobj=io.BytesIO(data)).read(MAX_UNCOMPRESSED_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise RejectedFile(name, f"not a valid gzip file ({e})") from None
        if len(out) > MAX_UNCOMPRESSED_BYTES:
            raise RejectedFile(name, f"uncompresses to more than {MAX_UNCOMPRESSED_BYTES:,} bytes")
        return out
    if data.startswith(b"PK\x03\x04"):
        raise RejectedFile(name, "a ZIP archive, not a CSV file: deliver the CSV itself, or gzip it as .csv.gz")
    if data.startswith(b"\x1f\x8b"):
        raise RejectedFile(name, "gzip-compressed, but not named .csv.gz")
    return data


def _read_lines(text: str, header: list[str]) -> pl.DataFrame:
    """Each non-blank physical line as one row: a line that does not read as one CSV record of the
    header's width (a stray quote, too few or too many fields) is kept with ``_parse_error``."""
    width, values, lines, errors = len(header), [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if number == 1 or not line.strip():
            continue
        row = next(csv.reader([line]), [])
        problem = None
        if line.count('"') % 2:
            problem = "unbalanced quote"
        elif len(row) != width:
            problem = f"expected {width} fields, found {len(row)}"
        values.append((None,) * width if problem else row)
        errors.append(f"line {number}: {problem}: {line[:200]}" if problem else None)
        lines.append(number)
    columns = list(zip(*values, strict=True)) if values else [()] * width
    return pl.DataFrame(columns, schema={h: pl.String for h in header}, orient="col").with_columns(
        *(pl.when(pl.col(h).is_in(NULL_VALUES)).then(None).otherwise(pl.col(h)).alias(h) for h in header),
        pl.Series("_source_line", lines, dtype=pl.Int32),
        pl.Series("_parse_error", errors, dtype=pl.String),
    )


def _flag_oversized(frame: pl.DataFrame, header: list[str]) -> pl.DataFrame:
    """Rows with a value longer than ``MAX_FIELD_CHARS``: values emptied, the reason in ``_parse_error``."""
    too_long = [pl.when(pl.col(h).str.len_chars() > MAX_FIELD_CHARS).then(pl.lit(h)) for h in header]
    culprit = pl.coalesce(too_long)
    if frame.select(culprit.is_not_null().any()).item() is not True:
        return frame
    reason = pl.format(
        "a value of {} characters in {} (at most {})",
        pl.max_horizontal([pl.col(h).str.len_chars() for h in header]),
        culprit,
        pl.lit(MAX_FIELD_CHARS),
    )
    return frame.with_columns(
        *(pl.when(culprit.is_null()).then(pl.col(h)).alias(h) for h in header),
        pl.when(culprit.is_null()).then(pl.col("_parse_error")).otherwise(reason).alias("_parse_error"),
    )


def _read_plain(text: str, header: list[str]) -> pl.DataFrame | None:
    """The rows by polars' CSV reader, when the file is plain: no quotes, no carriage returns,
    no blank line, every line as many fields as the header. Then a row's physical line is its
    position, and the result is what the csv module reads, in less than half the time; else None."""
    if '"' in text or "\r" in text or "\n\n" in text:
        return None
    lines = text.count("\n") + (not text.endswith("\n"))
    if text.count(",") != (len(header) - 1) * lines:  # fewer fields on one line, or more on another
        return None
    try:  # polars refuses a line with more fields than the header: then none has fewer
        frame = pl.read_csv(
            text.encode(), infer_schema=False, quote_char=None, null_values=list(NULL_VALUES), new_columns=header
        )
    except pl.exceptions.ComputeError:
        return None
    return frame.hstack(
        [
            pl.int_range(2, frame.height + 2, dtype=pl.Int32, eager=True).alias("_source_line"),
            pl.Series("_parse_error", [None], dtype=pl.String).new_from_index(0, frame.height),
        ]
    )


def _read_rows(name: str, reader, header: list[str]) -> pl.DataFrame:
    """Any other CSV, by the csv module: quoted fields may span lines; a line with the wrong
    number of fields is kept with ``_parse_error`` set."""
    width, values, lines, errors = len(header), [], [], []
    start = reader.line_num + 1
    try:
        for row in reader:
            if row:  # not a blank line
                ok = len(row) == width
                values.append(row if ok else (None,) * width)
                errors.append(None if ok else f"expected {width} fields, found {len(row)}: {','.join(row)[:200]}")
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        raise RejectedFile(name, f"not valid CSV ({e})", reader.line_num) from None
    columns = list(zip(*values, strict=False)) if values else [()] * width  # transposed in C, not value by value
    return pl.DataFrame(columns, schema={h: pl.String for h in header}, orient="col").with_columns(
        *(pl.when(pl.col(h).is_in(NULL_VALUES)).then(None).otherwise(pl.col(h)).alias(h) for h in header),
        pl.Series("_source_line", lines, dtype=pl.Int32),
        pl.Series("_parse_error", errors, dtype=pl.String),
    )


def reject(store: Store, f: StoredFile, error: RejectedFile | str) -> str:
    """Move a landing file to ``_rejected/`` beside a ``<name>.error.txt``; return its new path.

    Nothing is deleted: a name already taken in ``_rejected/`` gets the content's sha256[:12] appended.
    """
    path, original, is_link = f.path, f.name, f.is_link
    name = re.sub(r"[\x00-\x1f\x7f]", "_", original).lstrip(".") or "_"  # no hidden or control-character names
    data = b"" if is_link else store.read_bytes(path)
    target = f"{REJECTED_DIR}/{name}"
    if store.exists(target) or store.exists(f"{target}.error.txt"):
        target = f"{REJECTED_DIR}/{name}.{sha256(data or original.encode())[:12]}"
    note = f"{error}\n" + (f"(delivered as {original!r})\n" if name != original else "")
    store.write_bytes(f"{target}.error.txt", note.encode())
    if not is_link:  # a link is not data: only its reason is kept, what it points to is untouched
        store.write_bytes(target, data)  # the copy lands whole before the original goes
    store.delete(path)
    return target


def contiguous_ranges(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted distinct days grouped into (first, last) runs of consecutive days."""
    unique = sorted(set(days))
    ranges = []
    for _, group in groupby(enumerate(unique), key=lambda p: p[1].toordinal() - p[0]):
        members = [d for _, d in group]
        ranges.append((members[0], members[-1]))
    return ranges
