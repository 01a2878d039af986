"""Data versions of region outputs, one per partition, as Dagster itself would record them.

A run may hold several regions (``OCR_REGIONS_PER_RUN``, to spread the cost of a run over
several partitions). Dagster gives every partition of such a run one data version, from the
newest input version among them — wrong for regions whose inputs differ. So the region step
records each partition's materialization itself, with the tags Dagster's staleness reads: the
code version, each input's data version and event for *that* partition, and the data version
derived from them (``compute_logical_data_version``, Dagster's own formula).
"""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.data_version import (
    CODE_VERSION_TAG,
    DATA_VERSION_TAG,
    DEFAULT_DATA_VERSION,
    NULL_EVENT_POINTER,
    compute_logical_data_version,
    get_input_data_version_tag,
    get_input_event_pointer_tag,
)


def latest_version(
    instance, key: dg.AssetKey, partition: str | None, observable: bool
) -> tuple[dg.DataVersion, int | None]:
    """The data version and event id of ``key``'s latest materialization (observation, for an
    observable source) of ``partition``; the initial version if there is none."""
    records_filter = dg.AssetRecordsFilter(
        asset_key=key, asset_partitions=[partition] if partition else None
    )
    fetch = instance.fetch_observations if observable else instance.fetch_materializations
    records = fetch(records_filter, limit=1).records
    if not records:
        return DEFAULT_DATA_VERSION, None
    record = records[0]
    event = record.asset_observation if observable else record.asset_materialization
    version = (event.tags or {}).get(DATA_VERSION_TAG)
    return (dg.DataVersion(version) if version else DEFAULT_DATA_VERSION), record.storage_id


def provenance_tags(
    code_version: str, inputs: dict[dg.AssetKey, tuple[dg.DataVersion, int | None]]
) -> dict[str, str]:
    """The tags of a materialization computed by ``code_version`` from ``inputs``."""
    data_version = compute_logical_data_version(
        code_version, {k: version for k, (version, _) in inputs.items()}
    )
    tags = {CODE_VERSION_TAG: code_version, DATA_VERSION_TAG: data_version.value}
    for key, (version, storage_id) in inputs.items():
        tags[get_input_data_version_tag(key)] = version.value
        tags[get_input_event_pointer_tag(key)] = (
            str(storage_id) if storage_id else NULL_EVENT_POINTER
        )
    return tags
