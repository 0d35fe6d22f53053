"""Layout rules of a specimen collection: configured, not coded.

<root>/<prefix>/<specimen>/<...>-0007.tif      slices (z parsed from the name)
<root>/<prefix>/<specimen>/<...>.swc           the skeleton, when the specimen is traced
<root>/<prefix>/TEST_DATA_SET/<specimen>/...   a split folder: its specimens get split
                                               "TEST_DATA_SET"; the others `default_split`
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imaging_assets.core.errors import InputError

SLICE, SKELETON, OTHER = "slice", "skeleton", "other"


@dataclass(frozen=True)
class LayoutRules:
    prefix: str = ""
    split_folders: tuple[str, ...] = ("TEST_DATA_SET",)
    default_split: str = "train"
    slice_extensions: tuple[str, ...] = (".tif", ".tiff")
    skeleton_extensions: tuple[str, ...] = (".swc",)
    z_pattern: str = r"(\d+)\.[A-Za-z0-9]+$"

    def __post_init__(self) -> None:
        pattern = re.compile(self.z_pattern)
        if pattern.groups < 1:
            raise ValueError(f"z_pattern {self.z_pattern!r} needs one group capturing the z digits")

    @property
    def base(self) -> str:
        prefix = self.prefix.strip("/")
        return prefix + "/" if prefix else ""

    def split_of(self, folder_name: str) -> str | None:
        """The split named by a top-level folder, or None when the folder is a specimen."""
        return folder_name if folder_name in self.split_folders else None

    def classify(self, key: str) -> tuple[str, int | None]:
        """(role, z) of a file key: slices need a z in their name; others are 'other'."""
        name = key.rsplit("/", 1)[-1]
        lower = name.lower()
        if lower.endswith(tuple(e.lower() for e in self.skeleton_extensions)):
            return SKELETON, None
        if lower.endswith(tuple(e.lower() for e in self.slice_extensions)):
            match = re.search(self.z_pattern, name)
            if match:
                return SLICE, int(match.group(1))
        return OTHER, None


def check_specimen_name(name: str, where: str) -> str:
    """Specimen names become partition keys: no ',' and no '/'; never empty."""
    if not name or "," in name or "/" in name:
        raise InputError(
            where,
            f"specimen folder name {name!r} cannot be a partition key",
            expected="no ',' or '/'",
        )
    return name
