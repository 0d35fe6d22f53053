"""The embedded sample gallery: a small, faithful, deterministic Cell Painting Gallery."""

from imaging_assets.demo.gallery.generate import GalleryManifest, generate_gallery
from imaging_assets.demo.gallery.presets import (
    PRESETS,
    Preset,
    SamplePlate,
    SampleWell,
    SiteDefect,
    get_preset,
)
from imaging_assets.demo.gallery.scale import generate_metadata_at_scale

__all__ = [
    "PRESETS",
    "GalleryManifest",
    "Preset",
    "SamplePlate",
    "SampleWell",
    "SiteDefect",
    "generate_gallery",
    "generate_metadata_at_scale",
    "get_preset",
]
