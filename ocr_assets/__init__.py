"""Dagster asset definitions of the OCR pipeline, one module per pipeline phase."""

import warnings

import dagster as dg

OWNERS = ["team:ocr"]  # the owner every asset shows in the UI

# Observable inputs with per-partition versions are marked beta; we rely on them on purpose.
warnings.filterwarnings("ignore", message=".*observable_source_asset.*", category=dg.BetaWarning)
warnings.filterwarnings("ignore", message=".*DataVersionsByPartition.*", category=dg.BetaWarning)
