"""The warehouse connection and the one rule for SQL text: every identifier that reaches SQL is validated.

The warehouse is a DuckLake: a catalog (a SQLite file under the data home, or a Postgres
database: ``ML_PLATFORM_CATALOG_URL``) and Parquet data files under ``<lake>/warehouse/`` (a
folder or S3). ``connect_warehouse(config)`` gives a connection with the DuckLake attached and
in USE, so ``staging.flights`` or ``core.fct_flights`` mean the warehouse's tables; with
``read_only=True`` it reads next to running writers, at the snapshot its transaction began.

* Extensions are LOADed by path from the PyPI wheels (``duckdb-extension-ducklake``,
  ``-sqlite``, ``-postgres-scanner``, ``-httpfs``): nothing is installed into ``~/.duckdb``,
  nothing is downloaded, autoinstall and autoload are off.
* Checking an extension's signature costs 0.15-0.7 s per new DuckDB instance, so a process
  keeps one instance and hands out a cursor per connection (``conn.close()`` closes only the
  cursor). Cursors share the attached catalogs and the S3 secret; each has its own USE,
  TimeZone and temporary tables.
* Writes go through ``transaction()``. With a SQLite catalog it holds a file lock next to the
  catalog from BEGIN to COMMIT: DuckLake 1.5.5 on SQLite can not commit two overlapping write
  transactions (ducklake#1309), so writers of any table take turns there (WAL keeps readers out
  of their way). With Postgres, concurrent commits are retried by DuckLake (``MAX_RETRIES``).

Values always go as parameters (``$name``). The few things a parameter can not carry are
built here only: a validated identifier (``ident``, ``table_name``), a raw column name of a
delivered file, double-quoted (``quoted``), or a string literal (``sql_string``).
"""

from __future__ import annotations

import contextvars
import fcntl
import importlib
import json
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import duckdb

from ml_platform.faults import kill_point
from ml_platform.io.store import is_s3

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

CATALOG_SETTING = "ML_PLATFORM_CATALOG_URL"
LAKE_SETTING = "ML_PLATFORM_LAKE_URL"  # the warehouse's data files live under <lake>/warehouse/
CATALOG_KINDS = ("sqlite", "postgres")
ALIAS = "wh"  # the attached warehouse's name in a process (``wh2``... for others the same process opens)

# Commits of concurrent writers compete for the next snapshot id, even on different tables, and
# DuckLake retries them; with 0 retries 15 of 40 commits failed in a 4-writer probe.
MAX_RETRIES = 100
RETRY_WAIT_MS = 50
RETRY_BACKOFF = 1.5
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 10
S3_CHECK_TIMEOUT_S = 5


def ident(name: str) -> str:
    """``name`` if it is a safe SQL identifier (lower-case letters, digits, ``_``), else ValueError."""
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not an allowed identifier (must match {IDENTIFIER.pattern})")
    return name


def table_name(name: str) -> str:
    """A ``schema.table`` or ``table`` name with every part validated."""
    return ".".join(ident(part) for part in name.split("."))


def sql_string(value: str) -> str:
    """A SQL string literal (quotes doubled) for the few places a parameter can not go."""
    return "'" + value.replace("'", "''") + "'"


def quoted(name: str) -> str:
    """Any column name as a double-quoted SQL identifier (for raw names not yet validated)."""
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------- where the warehouse is


class WarehouseConfigError(ValueError):
    """A setting that does not lead to a usable warehouse; the message names the setting."""


def parse_catalog_url(url: str) -> tuple[str, str]:
    """``(kind, target)`` of ``sqlite:<file>`` or ``postgres:<libpq string>`` (``ducklake:`` in front allowed)."""
    raw = (url or "").strip()
    body = raw.removeprefix("ducklake:")
    kind, sep, target = body.partition(":")
    if not sep or kind not in CATALOG_KINDS or not target.strip():
        raise WarehouseConfigError(
            f"{CATALOG_SETTING}={raw!r} is not a DuckLake catalog: use sqlite:<file> (embedded) or "
            "postgres:<libpq string>, e.g. postgres:dbname=warehouse host=127.0.0.1 user=postgres"
        )
    if kind == "sqlite":
        target = str(Path(target).expanduser().resolve())
    return kind, target.strip()


@dataclass(frozen=True)
class WarehouseConfig:
    """Where the warehouse is: its catalog URL, its data folder (a path or ``s3://``), DuckDB's memory limit."""

    catalog_url: str
    data_url: str
    memory_limit: str = ""  # e.g. "4GB"; empty: DuckDB's default (80 % of the machine)
    data_setting: str = field(default=LAKE_SETTING, compare=False)  # named in errors about ``data_url``

    @property
    def kind(self) -> str:
        return parse_catalog_url(self.catalog_url)[0]

    @property
    def catalog(self) -> str:
        """The catalog as DuckLake takes it: ``sqlite:/abs/file`` or ``postgres:<libpq>``."""
        kind, target = parse_catalog_url(self.catalog_url)
        return f"{kind}:{target}"

    @property
    def data_path(self) -> str:
        """``data_url`` with exactly one ``/`` at the end, as DuckLake stores it."""
        return self.data_url.rstrip("/") + "/"


def _redacted(catalog: str) -> str:
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", catalog)


# ---------------------------------------------------------------- extensions, by path


# The name DuckDB loads (the file stem is its entry point ``<name>_duckdb_cpp_init``) -> the
# wheel's package suffix and file stem. The sqlite wheel ships ``sqlite.duckdb_extension`` whose
# entry point is ``sqlite_scanner_duckdb_cpp_init``: it is loaded through a correctly named link.
_WHEELS = {
    "ducklake": ("ducklake", "ducklake"),
    "sqlite_scanner": ("sqlite", "sqlite"),
    "postgres_scanner": ("postgres_scanner", "postgres_scanner"),
    "httpfs": ("httpfs", "httpfs"),
}
# Never download, install or autoload from ~/.duckdb: every extension is LOADed by path.
CONNECTION_CONFIG = {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}


def _link_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / f"ml_platform-{os.getuid()}" / "duckdb_extensions" / f"v{duckdb.__version__}"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def extension_path(name: str) -> Path:
    """The ``.duckdb_extension`` file of ``name`` in its wheel (through a correctly named link if needed)."""
    package, stem = _WHEELS[name]
    wheel = f"duckdb-extension-{package.replace('_', '-')}=={duckdb.__version__}"
    try:
        module = importlib.import_module(f"duckdb_extension_{package}")
    except ImportError:
        raise RuntimeError(f"the DuckDB extension {name} is missing: install {wheel}") from None
    source = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{stem}.duckdb_extension"
    if not source.exists():
        raise RuntimeError(f"{source} is missing: install {wheel}")
    if stem == name:
        return source
    link = _link_dir() / f"{name}.duckdb_extension"
    if not (link.is_symlink() and link.resolve() == source.resolve()):
        tmp = link.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(source)
        os.replace(tmp, link)  # atomic: a concurrent process never sees a half-made link
    return link


def load_extension(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    """LOAD ``name`` by path from its wheel (its signature is checked; nothing is installed)."""
    conn.execute(f"LOAD {sql_string(str(extension_path(name)))}")


# ---------------------------------------------------------------- lake access (S3)


def _s3_secret_options() -> dict[str, str]:
    options = {
        "KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID"),
        "SECRET": os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "SESSION_TOKEN": os.environ.get("AWS_SESSION_TOKEN"),
        "REGION": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    }
    endpoint = _s3_endpoint()
    if endpoint:
        parsed = urlparse(endpoint)
        options["ENDPOINT"] = parsed.netloc or parsed.path
        options["URL_STYLE"] = "path"
        options["USE_SSL"] = "true" if parsed.scheme == "https" else "false"
    return {k: v for k, v in options.items() if v}


def _s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def configure_lake_access(conn: duckdb.DuckDBPyConnection, lake_url: str) -> None:
    """Load httpfs (by path) and an S3 secret from the ``AWS_*`` variables for an ``s3://`` URL; a folder needs nothing.

    The secret belongs to the DuckDB instance: every cursor of ``conn``'s instance can use it.
    """
    if not is_s3(lake_url):
        return
    load_extension(conn, "httpfs")
    options = _s3_secret_options()
    pairs = ", ".join(f"{k} {v if k == 'USE_SSL' else sql_string(v)}" for k, v in options.items())
    conn.execute(f"CREATE OR REPLACE TEMPORARY SECRET ml_platform_lake (TYPE s3{', ' if pairs else ''}{pairs})")


def check_s3(url: str, setting: str) -> None:
    """Raise WarehouseConfigError naming ``setting`` unless ``url``'s bucket answers within a few seconds."""
    import boto3
    import botocore.config
    import botocore.exceptions

    bucket = url[len("s3://") :].partition("/")[0]
    endpoint = _s3_endpoint()
    where = f"S3 endpoint {endpoint} (AWS_ENDPOINT_URL)" if endpoint else "AWS S3"
    config = botocore.config.Config(
        connect_timeout=S3_CHECK_TIMEOUT_S, read_timeout=S3_CHECK_TIMEOUT_S, retries={"max_attempts": 1}
    )
    try:
        boto3.client("s3", endpoint_url=endpoint, config=config).head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        problem = {
            "404": "the bucket does not exist",
            "NoSuchBucket": "the bucket does not exist",
            "403": "access denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
        }.get(code, f"it answered {code or e}")
        raise WarehouseConfigError(f"{setting}={url}: bucket {bucket!r} on {where}: {problem}") from None
    except botocore.exceptions.NoCredentialsError:
        raise WarehouseConfigError(f"{setting}={url}: no S3 credentials (set AWS_ACCESS_KEY_ID and friends)") from None
    except (botocore.exceptions.BotoCoreError, ValueError) as e:
        raise WarehouseConfigError(f"{setting}={url}: {where} is unreachable: {e}") from None


# ---------------------------------------------------------------- one DuckDB instance per process


@dataclass
class _Instance:
    conn: duckdb.DuckDBPyConnection
    pid: int
    loaded: set[str] = field(default_factory=set)
    attached: dict[tuple[str, str, bool], str] = field(default_factory=dict)  # (catalog, data, read_only) -> alias
    memory_limit: str = ""
    secret: tuple | None = None
    s3_checked: set[tuple] = field(default_factory=set)


_instance: _Instance | None = None
_instance_lock = threading.RLock()


def _shared() -> _Instance:
    global _instance
    if _instance is None or _instance.pid != os.getpid():  # a forked child opens its own
        _instance = _Instance(duckdb.connect(config=dict(CONNECTION_CONFIG)), os.getpid())
    return _instance


def _load(inst: _Instance, name: str) -> None:
    if name not in inst.loaded:
        load_extension(inst.conn, name)
        inst.loaded.add(name)


def _s3_access(inst: _Instance, urls: dict[str, str]) -> None:
    """httpfs, the secret (again when the AWS_* variables changed) and a reachability check per bucket."""
    for url, setting in urls.items():
        key = (_s3_endpoint(), url[len("s3://") :].partition("/")[0])
        if key not in inst.s3_checked:
            check_s3(url, setting)
            inst.s3_checked.add(key)
    secret = tuple(sorted(_s3_secret_options().items()))
    if "httpfs" not in inst.loaded or inst.secret != secret:
        configure_lake_access(inst.conn, next(iter(urls)))
        inst.loaded.add("httpfs")
        inst.secret = secret


def _attach(inst: _Instance, config: WarehouseConfig, read_only: bool) -> str:
    key = (config.catalog, config.data_path, read_only)
    if key in inst.attached:
        return inst.attached[key]
    kind, target = parse_catalog_url(config.catalog_url)
    _load(inst, "ducklake")
    _load(inst, f"{kind}_scanner")
    used = set(inst.attached.values())
    alias = next(a for a in (ALIAS, *(f"{ALIAS}{n}" for n in range(2, 10_000))) if a not in used)
    if kind == "postgres" and "connect_timeout" not in target:
        target = f"{target} connect_timeout={POSTGRES_CONNECT_TIMEOUT_S}"
    options = ["READ_ONLY"] if read_only else [f"DATA_PATH {sql_string(config.data_path)}"]
    if kind == "sqlite":
        options.append(f"META_BUSY_TIMEOUT {SQLITE_BUSY_TIMEOUT_MS}")
        if not read_only:
            # WAL: readers never block a writer's commit. It is kept in the file, and a READ_ONLY
            # attach can not set it, so only writers ask for it. Never the lock without WAL.
            options.append("META_JOURNAL_MODE 'WAL'")
        if read_only and not Path(target).exists():
            raise WarehouseConfigError(f"{CATALOG_SETTING}: no warehouse at {target} yet (nothing has been loaded)")
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    if not read_only and not is_s3(config.data_url):
        Path(config.data_path).mkdir(parents=True, exist_ok=True)
    statement = f"ATTACH {sql_string(f'ducklake:{kind}:{target}')} AS {ident(alias)} ({', '.join(options)})"
    try:
        # A new SQLite catalog is created by the first writer to attach: the others wait for it.
        with _sqlite_writer_lock(target if kind == "sqlite" and not read_only else None):
            inst.conn.execute(statement)
    except duckdb.Error as e:
        message = " ".join(str(e).split())
        setting = config.data_setting if "DATA_PATH" in message else CATALOG_SETTING
        raise WarehouseConfigError(
            f"{setting}: can not open the DuckLake catalog {_redacted(config.catalog)}: {message}"
        ) from None
    inst.attached[key] = alias
    return alias


def connect_warehouse(
    config: WarehouseConfig, *, read_only: bool = False, lake_url: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse, in USE, instants in UTC; ``lake_url`` (an ``s3://`` lake) made readable.

    ``read_only=True`` is for people, notebooks and tests: it reads while runs write and can
    not write. Close the connection when done (``with connect_warehouse(...) as conn:``).
    Raises WarehouseConfigError, naming the setting, when the catalog or S3 can not be reached.
    """
    with _instance_lock:
        inst = _shared()
        if config.memory_limit != inst.memory_limit:
            if config.memory_limit:
                inst.conn.execute(f"SET memory_limit = {sql_string(config.memory_limit)}")
            else:
                inst.conn.execute("RESET memory_limit")
            inst.memory_limit = config.memory_limit
        s3 = {u: s for u, s in ((config.data_url, config.data_setting), (lake_url or "", LAKE_SETTING)) if is_s3(u)}
        if s3:
            _s3_access(inst, s3)
        alias = _attach(inst, config, read_only)
        if not read_only:
            inst.conn.execute(f"SET ducklake_max_retry_count = {MAX_RETRIES}")
            inst.conn.execute(f"SET ducklake_retry_wait_ms = {RETRY_WAIT_MS}")
            inst.conn.execute(f"SET ducklake_retry_backoff = {RETRY_BACKOFF}")
        cursor = inst.conn.cursor()
    cursor.execute(f"USE {ident(alias)}")
    cursor.execute("SET TimeZone = 'UTC'")
    return cursor


def close_warehouses() -> None:
    """Close this process's DuckDB instance (every warehouse it attached); the next connect opens a new one."""
    global _instance
    with _instance_lock:
        if _instance is not None and _instance.pid == os.getpid():
            _instance.conn.close()
        _instance = None


def detach_warehouse(config: WarehouseConfig) -> None:
    """Detach ``config``'s catalog from this process (before its database is dropped, say)."""
    with _instance_lock:
        inst = _instance
        if inst is None or inst.pid != os.getpid():
            return
        for key in [k for k in inst.attached if k[:2] == (config.catalog, config.data_path)]:
            inst.conn.execute("USE memory")
            inst.conn.execute(f"DETACH {ident(inst.attached.pop(key))}")


# ---------------------------------------------------------------- writes


@dataclass(frozen=True)
class _Current:
    alias: str
    kind: str  # "ducklake" or "duckdb"
    sqlite_catalog: str | None  # the catalog file of a writable DuckLake on SQLite


def _current(conn: duckdb.DuckDBPyConnection) -> _Current:
    row = conn.execute(
        "SELECT database_name, type, path, readonly FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    alias, kind, path, readonly = row
    sqlite = path.split(":", 1)[1] if kind == "ducklake" and (path or "").startswith("sqlite:") else None
    return _Current(alias, kind, None if readonly else sqlite)


@contextmanager
def _sqlite_writer_lock(catalog_file: str | None) -> Iterator[None]:
    if catalog_file is None:
        yield
        return
    with open(f"{catalog_file}.write-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the kernel if the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def writer_lock(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Hold the warehouse's writer lock (SQLite catalog: a file lock next to it; Postgres, a DuckDB file: nothing).

    ``transaction()`` takes it; a write outside a transaction (maintenance calls) takes it here.
    """
    with _sqlite_writer_lock(_current(conn).sqlite_catalog):
        yield


_commit_info: contextvars.ContextVar[dict | None] = contextvars.ContextVar("ml_platform_commit_info", default=None)


@contextmanager
def commit_info(**info: str) -> Iterator[None]:
    """Every DuckLake commit inside records ``info`` (a Dagster run id, say) in its snapshot's ``commit_extra_info``."""
    token = _commit_info.set({**(_commit_info.get() or {}), **info})
    try:
        yield
    finally:
        _commit_info.reset(token)


# The snapshot each connection's last transaction committed (``committed_snapshot``).
_committed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT; on any error ROLLBACK, so the previous rows stay as they were.

    On DuckLake the commit is one snapshot (with ``commit_info`` recorded, and its id kept for
    ``committed_snapshot``); with a SQLite catalog the whole transaction holds the writer lock.
    """
    current = _current(conn)
    last_sql = "SELECT id FROM ducklake_last_committed_snapshot($db)"
    with _sqlite_writer_lock(current.sqlite_catalog):
        conn.execute("BEGIN TRANSACTION")
        try:
            before = conn.execute(last_sql, {"db": current.alias}).fetchone()[0] if current.kind == "ducklake" else None
            info = _commit_info.get()
            if info and current.kind == "ducklake":
                conn.execute(
                    f"CALL {ident(current.alias)}.set_commit_message('ml_platform', $message, extra_info => $extra)",
                    {"message": info.get("message", ""), "extra": json.dumps(info, sort_keys=True)},
                )
            yield
            kill_point("warehouse.commit")
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed COMMIT has already ended the transaction
            raise
        if current.kind == "ducklake":
            # The instance's last commit, read right after this one in the same thread, is this
            # commit's; unchanged, the transaction changed nothing and made no snapshot.
            after = conn.execute(last_sql, {"db": current.alias}).fetchone()[0]
            if after is not None and after != before:
                _committed[conn] = after


def run_ddl(conn: duckdb.DuckDBPyConnection, *statements: str, attempts: int = 3) -> None:
    """``CREATE ... IF NOT EXISTS`` / ``ALTER`` statements as one write transaction.

    Two steps creating the same new schema or table at once (two tables' first loads, two Celery
    workers) conflict at commit on DuckLake ("another transaction has created a schema with this
    name already", "... has been created by another transaction already"); the next attempt sees
    the object and its IF NOT EXISTS does nothing.
    """
    for attempt in range(1, attempts + 1):
        try:
            with transaction(conn):
                for statement in statements:
                    conn.execute(statement)
            return
        except duckdb.Error as e:
            if "another transaction" not in str(e) or attempt == attempts:
                raise


# ---------------------------------------------------------------- snapshots


def committed_snapshot(conn: duckdb.DuckDBPyConnection) -> int | None:
    """The DuckLake snapshot ``conn``'s last ``transaction()`` committed (None: none yet, or not DuckLake).

    Time travel to it: ``SELECT ... FROM core.fct_flights AT (VERSION => n)``.
    """
    try:
        return _committed.get(conn)
    except TypeError:  # a connection that can not be weakly referenced never recorded one
        return None


def current_snapshot(conn: duckdb.DuckDBPyConnection) -> int | None:
    """The newest snapshot of the warehouse in USE, as this connection sees it (None: not DuckLake)."""
    current = _current(conn)
    if current.kind != "ducklake":
        return None
    return conn.execute("SELECT id FROM ducklake_current_snapshot($db)", {"db": current.alias}).fetchone()[0]


@contextmanager
def snapshot_read(conn: duckdb.DuckDBPyConnection) -> Iterator[int | None]:
    """Every query inside reads the same snapshot, whatever commits meanwhile; yields that snapshot's id.

    A read transaction: nothing is written, no lock is taken (None on a plain DuckDB file).
    """
    conn.execute("BEGIN TRANSACTION")
    try:
        yield current_snapshot(conn)
    finally:
        conn.execute("ROLLBACK")


def check_warehouse(config: WarehouseConfig, *, lake_url: str | None = None) -> None:
    """Connect once and let go: a WarehouseConfigError naming the setting now, not mid-run (for start-up)."""
    connect_warehouse(config, lake_url=lake_url).close()
