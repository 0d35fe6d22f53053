"""The stacks wing: its assets, checks, partitions, jobs, sensors and schedules."""

from imaging_assets.defs.stacks import definitions

__all__ = ["definitions"]
