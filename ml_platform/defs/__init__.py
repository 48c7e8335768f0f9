"""Dagster wiring only, one folder per layer; the shared keys, partitions, automation and resources
beside them. Pure logic lives in ``ml_platform.pipeline``."""

import warnings

import dagster as dg

# The platform relies on these on purpose (single-run backfills, observable sources, partition
# mappings over missing days); their warnings would repeat in every process's log.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
