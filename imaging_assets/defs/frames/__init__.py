"""The frames wing: its assets, checks, partitions, jobs, sensors and schedules."""

from imaging_assets.defs.frames import definitions

__all__ = ["definitions"]
