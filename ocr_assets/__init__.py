"""Dagster asset definitions of the OCR pipeline, one module per pipeline phase."""
