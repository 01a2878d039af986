"""Dagster asset definitions of the OCR pipeline, one module per pipeline phase."""

OWNERS = ["team:ocr"]  # the owner every asset shows in the UI
