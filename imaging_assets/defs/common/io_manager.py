"""A partition-aware IO manager for Arrow tables stored as Parquet in the lake (local or S3).

Layout: `<lake>/<asset key path>/<partition key>.parquet`, or `.../all.parquet` when unpartitioned.
Each write is one atomic object (temp + rename locally, one PUT on S3), so a reader never sees half a
table and a re-run replaces its partition exactly.
"""

import io

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    ConfigurableIOManager,
    InputContext,
    MetadataValue,
    OutputContext,
    ResourceDependency,
)

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.defs.common.stores import LakeResource

UNPARTITIONED = "all"


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def parquet_bytes_to_table(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


class ParquetLakeIOManager(ConfigurableIOManager):
    """Stores `pyarrow.Table` outputs as Parquet under the lake root."""

    lake: ResourceDependency[LakeResource]

    def _key(self, asset_path: list[str], partition: str | None) -> str:
        return "/".join([*asset_path, f"{partition or UNPARTITIONED}.parquet"])

    def handle_output(self, context: OutputContext, obj: pa.Table) -> None:
        if obj is None:
            return
        if not isinstance(obj, pa.Table):
            raise TypeError(
                f"{context.asset_key.to_user_string()}: the Parquet IO manager stores pyarrow.Table, "
                f"got {type(obj).__name__}"
            )
        partition = context.partition_key if context.has_partition_key else None
        key = self._key(list(context.asset_key.path), partition)
        data = table_to_parquet_bytes(obj)
        uri = self.lake.store().write_bytes(key, data)
        context.add_output_metadata(
            {
                "uri": MetadataValue.path(uri),
                "rows": obj.num_rows,
                "columns": obj.num_columns,
                "parquet_bytes": len(data),
            }
        )

    def load_input(self, context: InputContext) -> pa.Table:
        asset_path = list(context.asset_key.path)
        store = self.lake.store()
        keys = context.asset_partition_keys if context.has_asset_partitions else [None]
        tables = []
        for partition in keys:
            key = self._key(asset_path, partition)
            try:
                tables.append(parquet_bytes_to_table(store.read(key).data))
            except MissingObjectError as error:
                raise MissingObjectError(
                    store.uri(key),
                    f"asset {context.asset_key.to_user_string()} partition {partition or '-'} "
                    "has not been materialized",
                ) from error
        if len(tables) == 1:
            return tables[0]
        return pa.concat_tables(tables, promote_options="default")
