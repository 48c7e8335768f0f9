"""ml_platform: raw flights to MLflow-tracked delay predictions, as one Dagster asset graph."""

import os

# scikit-learn's OpenMP threads sleep while they wait for each other instead of spinning.
# Must be set before OpenMP is loaded, i.e. before scikit-learn is imported. On 2 cores
# shared with one other busy process, spinning threads made a 2-thread fit slower than one
# thread (31 s against 20 s); sleeping ones never were (17 s), and idle they gain 40 %.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
