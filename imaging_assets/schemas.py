"""The Arrow schemas of every table the code location writes.

One module so that a reader can see every table's columns in one place. Sections are grouped by
asset group; each section is owned by the module that builds those rows.
"""

from __future__ import annotations

import pyarrow as pa

# --- metadata tables (imaging_assets.jump.metadata) -------------------------------------------

# --- plate index, load_data, sampled_sites (imaging_assets.jump) --------------------------------

# --- site_images, failed_images (imaging_assets.images) -----------------------------------------

# --- profiles (imaging_assets.profiles) ---------------------------------------------------------

__all__ = ["pa"]
