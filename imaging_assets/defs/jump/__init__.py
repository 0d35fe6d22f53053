"""The jump wing: its assets, checks, partitions, jobs, sensors and schedules."""

from imaging_assets.defs.jump import definitions

__all__ = ["definitions"]
