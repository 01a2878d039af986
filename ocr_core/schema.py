"""Value ranges the data schema promises for the input datasets, as closed intervals.

Keyed by (catalog dataset name, variable). NaN marks no-data and is allowed; ±inf is not.
The wind direction fractions' rule (each ≥ 0, per pixel summing to 0 or 1 ± 1e-5) is not
a range and lives in ``ocr_core.validation``.
"""

VALUE_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("scott-et-al-2024-30m-4326", "BP"): (0.0, 1.0),
    ("scott-et-al-2024-30m-4326", "CRPS"): (0.0, 100.0),
    ("scott-et-al-2024-30m-4326", "RPS"): (0.0, 100.0),
    ("riley-et-al-2025-2011-270m-5070", "BP"): (0.0, 1.0),
    ("riley-et-al-2025-2047-270m-5070", "BP"): (0.0, 1.0),
    ("riley-et-al-2025-2011-30m-4326", "BP"): (0.0, 1.0),
    ("riley-et-al-2025-2047-30m-4326", "BP"): (0.0, 1.0),
}
