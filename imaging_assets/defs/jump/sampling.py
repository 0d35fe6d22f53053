"""Asset `sampled_sites` (per plate): the sites chosen for processing, by quotas, deterministically."""

import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    Config,
    DagsterInstance,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from imaging_assets.defs.common.catalog import OWNERS, tags
from imaging_assets.defs.jump.metadata import table_metadata
from imaging_assets.defs.jump.partitions import plates_partitions
from imaging_assets.jump.plates import plate_row
from imaging_assets.jump.sampling import (
    UNKNOWN_ROLE,
    SamplingQuotas,
    sample_sites,
    sampling_summary,
)

GROUP = "plates"
SIGNATURE = "sampling_signature"
_DEFAULTS = SamplingQuotas()


class SamplingConfig(Config):
    """Quotas per plate type and control role. A site's fate depends on (seed, plate, well, site)."""

    plate_types: list[str] = Field(
        default_factory=lambda: sorted(_DEFAULTS.plate_types),
        description="Plate types to process; others give an empty sample",
    )
    sites_per_role: dict[str, int] = Field(
        default_factory=lambda: {
            role: n for role, n in _DEFAULTS.sites_per_role.items() if role != UNKNOWN_ROLE
        },
        description="Sites kept per well, by control role (trt, poscon, negcon, empty, ...)",
    )
    sites_per_well_without_metadata: int = Field(
        default=_DEFAULTS.quota(UNKNOWN_ROLE),
        ge=0,
        description=(
            "Sites kept per well that the metadata does not list (its perturbation and control "
            "role are unknown); 0 by default, so such wells are kept in load_data but not imaged"
        ),
    )
    excluded_sources: list[str] = Field(default_factory=list, description="Sources to skip")
    seed: int = Field(default=_DEFAULTS.seed, description="Sampling seed")

    def quotas(self) -> SamplingQuotas:
        return SamplingQuotas(
            plate_types=frozenset(self.plate_types),
            sites_per_role={
                **self.sites_per_role,
                UNKNOWN_ROLE: self.sites_per_well_without_metadata,
            },
            excluded_sources=frozenset(self.excluded_sources),
            seed=self.seed,
        )


def quotas_signature(quotas: SamplingQuotas) -> str:
    """A short stable hash of what decides which sites are kept (a change allows removals)."""
    described = {
        "plate_types": sorted(quotas.plate_types),
        "sites_per_role": dict(sorted(quotas.sites_per_role.items())),
        "excluded_sources": sorted(quotas.excluded_sources),
        "seed": quotas.seed,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def latest_metadata_text(
    instance: DagsterInstance, asset: str, partition_key: str, name: str
) -> str | None:
    """A metadata value of the asset's latest materialization of this partition, as text."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get(name)
    return None if value is None else str(value.value)


@asset(
    group_name=GROUP,
    partitions_def=plates_partitions,
    kinds={"arrow", "parquet"},
    owners=OWNERS,
    tags=tags("jump", "parquet"),
    code_version="2",  # bump when the sampling rule changes
    description="The load_data rows (every channel) of the sites chosen for processing.",
)
def sampled_sites(
    context: AssetExecutionContext,
    config: SamplingConfig,
    load_data: pa.Table,
    plate_index: pa.Table,
) -> Output:
    plate = plate_row(plate_index, context.partition_key, context.run.tags)
    quotas = config.quotas()
    table = sample_sites(load_data, plate["plate_type"], quotas)
    summary = sampling_summary(table)
    without = load_data.filter(pc.invert(load_data["has_metadata"]))
    wells_without = pc.count_distinct(without["well"]).as_py() if without.num_rows else 0
    kept = ", ".join(
        f"{role}: {n['sites']} sites in {n['wells']} wells" for role, n in sorted(summary.items())
    )
    context.log.info(
        f"{context.partition_key} ({plate['plate_type']}): "
        + (
            f"kept {table.num_rows} of {load_data.num_rows} load_data rows ({kept})"
            if table.num_rows
            else f"no site sampled: the quotas select none of a {plate['plate_type']} plate"
        )
    )
    return Output(
        table,
        metadata={
            **table_metadata(table),
            "plate_type": plate["plate_type"],
            "summary": MetadataValue.json(summary),
            "wells_without_metadata": wells_without,
            "sites_per_well_without_metadata": config.sites_per_well_without_metadata,
            SIGNATURE: quotas_signature(quotas),
        },
    )
