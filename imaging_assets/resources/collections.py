"""A specimen (z-stack) collection as configuration: where it is, how to reach it, its layout.

Credentials are never fields: for a signed bucket they come from the environment or boto3's
credentials chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role) when the
client is built, so they never appear in run config, logs, metadata or the lake.
"""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from imaging_assets.core.s3 import DEFAULT_REGION, S3Settings
from imaging_assets.core.stores import ObjectStore, open_store
from imaging_assets.stacks.layout import LayoutRules


class StackCollectionResource(ConfigurableResource):
    """A folder-per-specimen collection of z-stacks (and SWC skeletons), local or on S3."""

    name: str = Field(default="stacks", description="Collection name (names its manifest)")
    root: str = Field(description="Local folder, file:// or s3://bucket/prefix of the collection")
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (None: AWS)")
    region: str = Field(default=DEFAULT_REGION, description="S3 region")
    anonymous: bool = Field(default=False, description="Unsigned requests (public buckets)")
    max_attempts: int = Field(default=8, ge=1, description="Attempts per request before failing")
    prefix: str = Field(default="", description="Sub-prefix of root holding the specimen folders")
    split_folders: list[str] = Field(
        default_factory=lambda: ["TEST_DATA_SET"],
        description="Folders whose sub-folders are specimens of a split named after the folder",
    )
    default_split: str = Field(default="train", description="Split of the other specimens")
    slice_extensions: list[str] = Field(default_factory=lambda: [".tif", ".tiff"])
    skeleton_extensions: list[str] = Field(default_factory=lambda: [".swc"])
    z_pattern: str = Field(
        default=r"(\d+)\.[A-Za-z0-9]+$",
        description="Regex whose first group is a slice's z in its file name (e.g. '-0007.tif')",
    )

    _store: ObjectStore | None = PrivateAttr(default=None)

    def s3_settings(self) -> S3Settings:
        return S3Settings(
            endpoint_url=self.endpoint_url,
            region=self.region,
            anonymous=self.anonymous,
            max_attempts=self.max_attempts,
        )

    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = open_store(self.root, self.s3_settings())
        return self._store

    def rules(self) -> LayoutRules:
        return LayoutRules(
            prefix=self.prefix,
            split_folders=tuple(self.split_folders),
            default_split=self.default_split,
            slice_extensions=tuple(self.slice_extensions),
            skeleton_extensions=tuple(self.skeleton_extensions),
            z_pattern=self.z_pattern,
        )


def collection_from_env(default_root: str) -> StackCollectionResource:
    """IMAGING_ASSETS_STACKS_ROOT (+ _ENDPOINT, _REGION, _ANONYMOUS, _NAME, _PREFIX)."""
    settings = S3Settings.from_env(role="STACKS")
    return StackCollectionResource(
        name=os.environ.get("IMAGING_ASSETS_STACKS_NAME", "stacks"),
        root=os.environ.get("IMAGING_ASSETS_STACKS_ROOT", default_root),
        prefix=os.environ.get("IMAGING_ASSETS_STACKS_PREFIX", ""),
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        anonymous=settings.anonymous,
    )
