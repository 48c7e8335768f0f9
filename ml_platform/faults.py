"""Kill points: the moments where a crash would hurt most, named so a test can crash there.

With ``ML_PLATFORM_KILL_AT=<point>`` in its environment, a process kills itself with SIGKILL
(what an out-of-memory kill or a pulled plug does: no cleanup, no ``finally``) the first time
it reaches that point. The crash-safety test uses this to show that a rerun converges to the
clean run's tables. Without the variable (always, outside that test) a kill point does nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = {
    "lake.write": "a lake file written and synced under its temporary name, not yet renamed",
    "warehouse.commit": "a warehouse transaction with every statement done, not yet committed",
    "training.logging": "an MLflow training run created with its parameters, no model logged yet",
    "registry.alias": "a model version registered, the challenger alias not yet moved to it",
}


def kill_point(name: str) -> None:
    """SIGKILL this process here when ``ML_PLATFORM_KILL_AT`` names this point."""
    if name not in POINTS:
        raise ValueError(f"unknown kill point {name!r}; known: {', '.join(POINTS)}")
    if os.environ.get("ML_PLATFORM_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
