"""The frame-dataset fixtures (generated samples ingested into a lake), shared with frames/."""

from imaging_assets_tests.frames.conftest import ingested, samples  # noqa: F401
