"""Provenance and licence metadata written into every published output."""

from __future__ import annotations

TERMS = "https://docs.carbonplan.org/ocr/en/latest/terms-of-data-access.html"
SOURCES = "https://docs.carbonplan.org/ocr/en/latest/reference/data-sources.html"


def vector_metadata(version: str | None) -> dict[str, str]:
    """Metadata of the vector products (GeoParquet sidecar, GeoJSON member, CSV header)."""
    return {
        "version": version or "unversioned",
        "provider": "CarbonPlan",
        "terms_of_access": TERMS,
        "data_sources": SOURCES,
        "license_name": "ODBL",
        "license_url": "https://opendatacommons.org/licenses/odbl/",
        "notice": (
            "This data contains information from the Overture Maps Foundation database, made "
            "available under the Open Database License (ODbL) "
            "https://opendatacommons.org/licenses/odbl/1-0/"
        ),
    }


def raster_metadata(version: str | None) -> dict[str, str]:
    """Metadata of the risk raster (root attributes of the icechunk template)."""
    return {
        "version": version or "unversioned",
        "provider": "CarbonPlan",
        "terms_of_access": TERMS,
        "data_sources": SOURCES,
        "license_name": "CC-BY-4.0",
        "license_url": "https://creativecommons.org/licenses/by/4.0/",
    }
