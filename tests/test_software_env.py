"""Coiled software environment names follow the reference's rules."""

import pytest

from ocr_resources.software_env import software_env_name


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("main", "ocr-main"),
        ("123", "ocr-123"),
        ("v1.1.0", "ocr-v1-1-0"),
        ("Feature/Add  Wind--Kernels!", "ocr-feature-add-wind-kernels"),
        ("under_score", "ocr-under_score"),
        ("--x--", "ocr-x"),
        ("", "ocr-unnamed"),
        ("!!!", "ocr-unnamed"),
    ],
)
def test_names(source, name):
    assert software_env_name(source) == name
