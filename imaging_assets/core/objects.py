"""What a read from a store returns: the bytes and what the store said about them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FetchedObject:
    """One raw object as read: its URI, its bytes and the store's ETag (None on local disk)."""

    uri: str
    data: bytes
    etag: str | None = None


ObjectReader = Callable[[str], FetchedObject]
"""Reads one object by URI. Raises MissingObjectError when absent; retries transient errors itself."""
