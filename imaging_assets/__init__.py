"""imaging_assets: Dagster assets from raw Cell Painting objects to provenance-carrying tables."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("imaging_assets")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
