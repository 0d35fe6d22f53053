"""Core: the lake primitives that every domain shares (leases, commits, maintenance)."""
