"""A specimen (z-stack) collection as configuration: where it is, how to reach it, its layout.

Credentials are never fields: for a signed bucket they come from the environment or boto3's
credentials chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an instance role) when the
client is built, so they never appear in run config, logs, metadata or the lake.
"""

from __future__ import annotations

import os

from pydantic import Field

from imaging_assets.core.s3 import S3Settings
from imaging_assets.defs.common.stores import StoreResource
from imaging_assets.stacks.layout import LayoutRules


class StackCollectionResource(StoreResource):
    """A folder-per-specimen collection of z-stacks (and SWC skeletons), local or on S3."""

    name: str = Field(default="stacks", description="Collection name (names its manifest)")
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
