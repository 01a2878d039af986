"""Storage and input-catalog resources: where outputs go and where inputs come from."""

from __future__ import annotations

import dagster as dg

from ocr_core.catalog import InputCatalog
from ocr_core.grid import Grid, get_grid
from ocr_core.storage import Storage
from ocr_resources.settings import Settings


class StorageResource(dg.ConfigurableResource):
    """The output storage root (local folder or s3://), namespaced by environment/version or PR."""

    root: str
    environment: str = "qa"
    version: str | None = None
    pull_request: int | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-west-2"

    def storage(self) -> Storage:
        settings = Settings(
            storage_root=self.root,
            environment=self.environment,
            version=self.version,
            pull_request=self.pull_request,
            s3_endpoint_url=self.s3_endpoint_url,
            s3_region=self.s3_region,
        )
        return settings.storage()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:  # noqa: ARG002 (Dagster's signature)
        # Fail before any step does work if the root cannot be written.
        self.storage().check_reachable()


class InputCatalogResource(dg.ConfigurableResource):
    """Where the input datasets live (the real buckets, or the generated demo stores) and the
    grid they are on (OCR_GRID)."""

    root: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-west-2"
    grid: str = "demo"

    def grid_def(self) -> Grid:
        return get_grid(self.grid)

    def storage(self) -> Storage:
        settings = Settings(
            input_root=self.root, s3_endpoint_url=self.s3_endpoint_url, s3_region=self.s3_region
        )
        return settings.input_storage()

    def catalog(self) -> InputCatalog:
        return InputCatalog(self.storage())

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:  # noqa: ARG002 (Dagster's signature)
        # A local input root that is a file fails here, not as a missing dataset; writing is
        # checked where inputs are written (demo_inputs).
        storage = self.storage()
        if not storage.is_s3:
            storage.check_reachable(writable=False)
