"""Dagster resources for the three roots: the source (raw objects), the JUMP metadata, the lake.

Each is one root URI plus the S3 settings to reach it. Secrets are not fields: credentials come from
the environment or boto3's chain when a client is built.
"""

import contextlib
import os
import socket
from pathlib import Path

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from imaging_assets.core.lake import Lake
from imaging_assets.core.s3 import DEFAULT_REGION, S3Settings
from imaging_assets.core.stores import ObjectStore, open_store
from imaging_assets.defs.common.run_launcher import HOST_TAG

DEFAULT_LAKE = ".lake"


class StoreResource(ConfigurableResource):
    """A root URI and how to reach it when it is on S3."""

    root: str = Field(
        description="Local folder, file://, s3://bucket/prefix or http(s):// base URL"
    )
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (None: AWS)")
    region: str = Field(default=DEFAULT_REGION, description="S3 region")
    anonymous: bool = Field(default=False, description="Unsigned requests (public buckets)")
    max_attempts: int = Field(default=8, ge=1, description="Attempts per request before failing")

    _store: ObjectStore | None = PrivateAttr(default=None)

    def s3_settings(self) -> S3Settings:
        return S3Settings(
            endpoint_url=self.endpoint_url,
            region=self.region,
            anonymous=self.anonymous,
            max_attempts=self.max_attempts,
        )

    def store(self) -> ObjectStore:
        """The object store for this root (built once per resource instance)."""
        if self._store is None:
            self._store = open_store(self.root, self.s3_settings())
        return self._store

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")


class SourceResource(StoreResource):
    """Where the raw collection lives (e.g. s3://cellpainting-gallery/cpg0016-jump)."""


class MetadataResource(StoreResource):
    """Where the JUMP metadata tables live: a folder, an S3 prefix or an https base URL."""


class LakeResource(StoreResource):
    """Where every output goes: Parquet tables by the IO manager and `<name>.lance` datasets."""

    def dataset_uri(self, name: str) -> str:
        """URI of the Lance dataset `<name>.lance` under the lake root."""
        if self.is_s3:
            return self.root.rstrip("/") + f"/{name}.lance"
        return str(Path(self.store().root) / f"{name}.lance")

    def storage_options(self) -> dict[str, str] | None:
        """Lance storage options built from the same settings as the boto3 client."""
        return self.s3_settings().lance_storage_options() if self.is_s3 else None

    def setup_for_execution(self, context: InitResourceContext) -> None:
        """Record on the run which host runs it, once: run monitoring's health check
        (defs/common/run_launcher.py) can then tell a dead run worker on this host."""
        run, instance = context.dagster_run, context.instance
        if run is not None and instance is not None and HOST_TAG not in run.tags:
            with contextlib.suppress(Exception):  # advisory: never fail a step over it
                instance.add_run_tags(run.run_id, {HOST_TAG: socket.gethostname()})

    def handle(self) -> Lake:
        """The core lake handle (root, store, storage options) the domains write through."""
        root = self.root.rstrip("/") if self.is_s3 else self.store().root
        return Lake(root, self.store(), self.storage_options())


def _env_store_kwargs(role: str) -> dict:
    settings = S3Settings.from_env(role=role)
    return {
        "endpoint_url": settings.endpoint_url,
        "region": settings.region,
        "anonymous": settings.anonymous,
    }


def source_from_env(default_root: str) -> SourceResource:
    """IMAGING_ASSETS_SOURCE_ROOT (+ _ENDPOINT, _ANONYMOUS, _REGION), falling back to `default_root`."""
    root = os.environ.get("IMAGING_ASSETS_SOURCE_ROOT", default_root)
    return SourceResource(root=root, **_env_store_kwargs("SOURCE"))


def metadata_from_env(default_root: str) -> MetadataResource:
    """IMAGING_ASSETS_METADATA_ROOT (+ _ENDPOINT, _ANONYMOUS, _REGION), falling back to `default_root`."""
    root = os.environ.get("IMAGING_ASSETS_METADATA_ROOT", default_root)
    return MetadataResource(root=root, **_env_store_kwargs("METADATA"))


def lake_from_env(default_root: str = DEFAULT_LAKE) -> LakeResource:
    """IMAGING_ASSETS_LAKE (+ IMAGING_ASSETS_LAKE_ENDPOINT, _REGION), falling back to `default_root`."""
    root = os.environ.get("IMAGING_ASSETS_LAKE", default_root)
    return LakeResource(root=root, **_env_store_kwargs("LAKE"))
