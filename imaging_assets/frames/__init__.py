"""Frame datasets: identified multi-dimensional acquisitions, pure logic (no Dagster).

ids (dataset id rules), manifest (ingest manifest), splitters (TIFF -> 2-D frames with tifffile),
schema (Arrow schemas, indexes), ingest (frames -> record batches + summary), files (stores:
local copies, stored uploads, streamed hashes), registry (the datasets table), lake (register a
manifest, ingest a dataset under its lease), queries (pushed-down filters), reading (query and
partial reads), verify (re-hash), commands (the `datasets` CLI).
"""
