"""The image pipeline's pure pieces: site tasks, the bounded processing stream (with the raw images'
quality features), contact sheets, plate maps and the per-plate checks."""

from imaging_assets.jump.images.contact_sheet import choose_sites, contact_sheet, site_array
from imaging_assets.jump.images.pipeline import PlateResult, TooManyFailures, process_sites
from imaging_assets.jump.images.plate_map import plate_format, plate_map
from imaging_assets.jump.images.tasks import ChannelSource, SiteTask, site_tasks_from_table

__all__ = [
    "ChannelSource",
    "PlateResult",
    "SiteTask",
    "TooManyFailures",
    "choose_sites",
    "contact_sheet",
    "plate_format",
    "plate_map",
    "process_sites",
    "site_array",
    "site_tasks_from_table",
]
