"""The Cell Painting channel vocabulary, as it appears in load_data column names."""

from __future__ import annotations

CELL_PAINTING_CHANNELS: tuple[str, ...] = ("DNA", "AGP", "ER", "Mito", "RNA")
"""The five fluorescence channels every JUMP source images."""

BRIGHTFIELD_CHANNELS: tuple[str, ...] = ("Brightfield", "Brightfield_H", "Brightfield_L")
"""Brightfield planes some sources add (not processed by default)."""
