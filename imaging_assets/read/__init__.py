"""The notebook API: `open_lake(root)` gives one `Lake` object for every collection shape."""

from imaging_assets.read.lake import Lake, SiteDataset, open_lake

__all__ = ["Lake", "SiteDataset", "open_lake"]
