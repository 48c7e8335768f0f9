"""Where MLflow keeps experiments: the embedded SQLite backend and artifact folder in the data home.

Runs never write this backend directly: they log through the MLflow server that
`make run` (or a test) starts on 127.0.0.1, so only that one process touches SQLite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def embedded_backend(home: Path) -> tuple[str, str]:
    """The SQLite backend URI and the artifact folder URI, both absolute."""
    folder = home / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def upgrade_backend(backend_uri: str) -> None:
    """Create the MLflow schema, or migrate it to this MLflow version (a no-op when current).

    Done once, before the server starts, so no two processes race on migrations.
    """
    mlflow = Path(sys.executable).parent / "mlflow"
    result = subprocess.run([str(mlflow), "db", "upgrade", backend_uri], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"mlflow db upgrade {backend_uri} failed:\n{result.stderr[-2000:]}")
