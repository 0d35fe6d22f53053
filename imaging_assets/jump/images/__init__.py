"""The image pipeline's pure pieces: site tasks, the bounded processing stream, contact sheets."""

from imaging_assets.jump.images.contact_sheet import contact_sheet, site_array
from imaging_assets.jump.images.pipeline import PlateResult, TooManyFailures, process_sites
from imaging_assets.jump.images.tasks import ChannelSource, SiteTask, site_tasks_from_table

__all__ = [
    "ChannelSource",
    "PlateResult",
    "SiteTask",
    "TooManyFailures",
    "contact_sheet",
    "process_sites",
    "site_array",
    "site_tasks_from_table",
]
