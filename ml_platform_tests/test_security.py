"""Safe by default: no secret in the repository, every identifier that reaches SQL validated by one
function, and nothing a setting or a file name carries can change a statement."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import duckdb
import pytest

from ml_platform.io.warehouse import ident, quoted, sql_string, table_name
from ml_platform.settings import REPO_ROOT

# What a leaked credential looks like (AWS keys, private keys, tokens with a known prefix, a URL with a password).
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (RSA |EC |OPENSSH |)PRIVATE KEY-----"),
    "GitHub or Slack token": re.compile(r"\b(ghp_[A-Za-z0-9]{36}|xox[abp]-[A-Za-z0-9-]{20,})\b"),
    "password in a URL": re.compile(r"://[A-Za-z0-9_.-]+:(?!guest@|testing@)[^@\s/'\"{}]{6,}@"),
}
INJECTIONS = ["x; DROP TABLE core.fct_flights", "a'b", 'a"b', "a b", "A", "1x", "", "x--", "x/*", "ü"]


def _tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return [REPO_ROOT / line for line in out.splitlines() if (REPO_ROOT / line).is_file()]


def test_no_secret_is_committed():
    found = []
    for path in _tracked_files():
        if path.suffix in (".png", ".parquet", ".zip", ".gz"):
            continue
        # A test may spell a fake credential to check it is hidden; it says so on its line.
        text = "\n".join(line for line in path.read_text(errors="ignore").splitlines() if "fake credential" not in line)
        for what, pattern in SECRET_PATTERNS.items():
            found += [f"{path.relative_to(REPO_ROOT)}: {what}: {m.group(0)[:12]}…" for m in pattern.finditer(text)]
    assert found == []


def test_the_secret_scan_would_see_a_leak():
    leak = "aws_access_key_id = AKIA" + "ABCDEFGHIJKLMNOP"
    assert SECRET_PATTERNS["AWS access key id"].search(leak)
    assert SECRET_PATTERNS["password in a URL"].search("postgresql://admin:" + "s3cr3tpass@db/x")
    assert not SECRET_PATTERNS["password in a URL"].search("amqp://guest:guest@127.0.0.1:5672//")


@pytest.mark.parametrize("name", INJECTIONS)
def test_identifiers_are_refused_unless_plain(name):
    with pytest.raises(ValueError):
        ident(name)
    with pytest.raises(ValueError):
        table_name(f"core.{name}")


def test_values_that_must_be_text_in_sql_stay_text():
    conn = duckdb.connect()
    conn.execute("CREATE TABLE t (x INTEGER)")
    for evil in ["'); DROP TABLE t; --", "a'b", "\\'"]:
        assert conn.execute(f"SELECT {sql_string(evil)}").fetchone()[0] == evil
        assert conn.execute(f"SELECT 1 AS {quoted(evil)}").description[0][0] == evil
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0  # still there


def test_sql_text_is_built_only_from_validated_names():
    """Every f-string that becomes SQL in the package interpolates only validated identifiers,
    constants of the module, or the helpers of io/warehouse.py; values go as parameters."""
    offenders = []
    for path in (REPO_ROOT / "ml_platform").rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"conn\.execute\(\s*f\"", text):
            line = text[: m.start()].count("\n") + 1
            statement = text[m.start() : text.find("\n", m.end()) + 1]
            if re.search(
                r"\{(?!ident\(|table_name\(|quoted\(|sql_string\()[a-z_]*(first|last|day|url|path|name)\}", statement
            ):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{line}: {statement.strip()[:100]}")
    assert offenders == []
