"""Which code produced a model: the package version and, in a git checkout, the commit."""

from __future__ import annotations

import subprocess
from functools import cache
from importlib.metadata import version

from ml_platform.settings import REPO_ROOT


@cache
def code_version() -> str:
    package = version("ml-platform")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        commit = ""
    return f"{package}+{commit}" if commit else package
