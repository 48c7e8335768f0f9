"""One small interface over a local folder or an S3 prefix: the lake and the landing zone.

Paths inside a store are relative and '/'-separated. Every write is atomic: a
local write goes to a temporary name in the same folder and is renamed into
place; an S3 write is a single PUT, which S3 makes visible whole or not at all.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ml_platform.faults import kill_point

TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class StoredFile:
    """A file in a store, with a version that changes whenever its content changes."""

    path: str
    version: str  # changes whenever the content changes: size and mtime locally, the ETag on S3
    size: int
    modified: float = 0.0  # seconds since the epoch
    is_link: bool = False  # a symbolic link (local stores): listed, never followed

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class Store(Protocol):
    url: str

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[StoredFile]: ...
    def read_bytes(self, path: str) -> bytes: ...
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def exists(self, path: str) -> bool: ...
    def delete(self, path: str) -> None: ...
    def uri(self, path: str) -> str: ...


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_s3(url: str) -> bool:
    return url.startswith("s3://")


def open_store(url: str, *, s3_client: Any = None) -> Store:
    """A store for ``url``: a local path, or ``s3://bucket/prefix`` (client from ``AWS_*``)."""
    if is_s3(url):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"S3 URL without a bucket: {url!r}")
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3Store(url=url, bucket=bucket, prefix=prefix.strip("/"), client=s3_client)
    return LocalStore(url=url, root=Path(url).expanduser().resolve())


def move(store: Store, src: str, dst: str) -> None:
    """Copy then delete, so the file exists under one of its names at every moment."""
    if src == dst:
        return
    store.write_bytes(dst, store.read_bytes(src))
    store.delete(src)


@dataclass
class LocalStore:
    url: str
    root: Path

    def _path(self, path: str) -> Path:
        full = (self.root / path).resolve()
        if full != self.root and self.root not in full.parents:
            raise ValueError(f"path {path!r} leaves the store {self.url}")
        return full

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[StoredFile]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        found = base.rglob("*") if recursive else base.iterdir()
        files = []
        for p in sorted(found):
            if p.is_symlink():
                st = p.lstat()
                rel = p.relative_to(self.root).as_posix()
                files.append(StoredFile(rel, f"link-{st.st_mtime_ns:x}", 0, st.st_mtime, is_link=True))
            elif p.is_file() and not p.name.startswith(TMP_PREFIX):
                # A stat, not a read: listing costs the same whatever the files hold.
                st = p.stat()
                rel = p.relative_to(self.root).as_posix()
                files.append(StoredFile(rel, f"{st.st_size:x}-{st.st_mtime_ns:x}", st.st_size, st.st_mtime))
        return files

    def read_bytes(self, path: str) -> bytes:
        return self._path(path).read_bytes()

    def write_bytes(self, path: str, data: bytes) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{target.name}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            kill_point("lake.write")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def delete(self, path: str) -> None:
        link = self.root / path
        parent = link.parent.resolve()
        if link.is_symlink() and (parent == self.root or self.root in parent.parents):
            link.unlink()  # the link itself, never what it points to
            return
        self._path(path).unlink(missing_ok=True)

    def uri(self, path: str) -> str:
        return str(self._path(path))


@dataclass
class S3Store:
    url: str
    bucket: str
    prefix: str
    client: Any

    def _key(self, path: str) -> str:
        if ".." in path.split("/"):
            raise ValueError(f"path {path!r} leaves the store {self.url}")
        return f"{self.prefix}/{path}" if self.prefix else path

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    def list(self, prefix: str = "", *, recursive: bool = True) -> list[StoredFile]:
        key_prefix = self._key(prefix).rstrip("/") + "/" if prefix else self._key("")
        if key_prefix and not key_prefix.endswith("/"):
            key_prefix += "/"
        kwargs = {"Bucket": self.bucket, "Prefix": key_prefix}
        if not recursive:
            kwargs["Delimiter"] = "/"
        files = []
        for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
            for obj in page.get("Contents", []):
                files.append(
                    StoredFile(
                        path=self._rel(obj["Key"]),
                        version=obj["ETag"].strip('"'),
                        size=obj["Size"],
                        modified=obj["LastModified"].timestamp(),
                    )
                )
        return sorted(files, key=lambda f: f.path)

    def read_bytes(self, path: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(path))["Body"].read()

    def write_bytes(self, path: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(path), Body=data)

    def exists(self, path: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(path))
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, path: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(path))

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{self._key(path)}"
