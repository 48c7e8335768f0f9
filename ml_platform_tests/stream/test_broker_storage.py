"""The embedded broker's folder-backed S3 endpoint, spoken to by a real S3 client (boto3): objects are
files under the folder, and conditional writes refuse what S3 refuses (the broker's watermarks rely
on it)."""

from __future__ import annotations

import threading
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ml_platform.stream.broker_storage import FolderS3Server


@pytest.fixture
def s3(tmp_path: Path):
    server = FolderS3Server(tmp_path / "objects")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket="tansu")
    yield client, tmp_path / "objects"
    server.shutdown()
    server.server_close()


def _status(error: ClientError) -> int:
    return error.response["ResponseMetadata"]["HTTPStatusCode"]


def test_objects_are_files_under_the_folder(s3):
    client, root = s3
    client.put_object(Bucket="tansu", Key="clusters/c/meta.json", Body=b'{"a": 1}')
    assert (root / "tansu" / "clusters" / "c" / "meta.json").read_bytes() == b'{"a": 1}'
    assert client.get_object(Bucket="tansu", Key="clusters/c/meta.json")["Body"].read() == b'{"a": 1}'
    part = client.get_object(Bucket="tansu", Key="clusters/c/meta.json", Range="bytes=2-4")
    assert part["Body"].read() == b'a":' and part["ContentRange"] == "bytes 2-4/8"
    assert client.head_object(Bucket="tansu", Key="clusters/c/meta.json")["ContentLength"] == 8
    client.delete_object(Bucket="tansu", Key="clusters/c/meta.json")
    with pytest.raises(ClientError) as missing:
        client.get_object(Bucket="tansu", Key="clusters/c/meta.json")
    assert _status(missing.value) == 404


def test_conditional_writes_refuse_a_lost_update(s3):
    client, _ = s3
    created = client.put_object(Bucket="tansu", Key="w.json", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as exists:
        client.put_object(Bucket="tansu", Key="w.json", Body=b"2", IfNoneMatch="*")
    assert _status(exists.value) == 412
    updated = client.put_object(Bucket="tansu", Key="w.json", Body=b"2", IfMatch=created["ETag"])
    with pytest.raises(ClientError) as stale:  # a second writer still holding the first version
        client.put_object(Bucket="tansu", Key="w.json", Body=b"3", IfMatch=created["ETag"])
    assert _status(stale.value) == 412
    assert client.get_object(Bucket="tansu", Key="w.json")["Body"].read() == b"2"
    assert client.head_object(Bucket="tansu", Key="w.json")["ETag"] == updated["ETag"]


def test_listing_by_prefix_with_folders_and_pages(s3):
    client, _ = s3
    keys = [f"t/partitions/{p}/records/{o:020d}.batch" for p in range(2) for o in range(5)] + ["t/meta.json"]
    for key in keys:
        client.put_object(Bucket="tansu", Key=key, Body=b"x")
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket="tansu", Prefix="t/partitions/1/records/", PaginationConfig={"PageSize": 2}
    )
    listed = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert listed == [k for k in keys if k.startswith("t/partitions/1/")]
    top = client.list_objects_v2(Bucket="tansu", Prefix="t/", Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["t/meta.json"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["t/partitions/"]
