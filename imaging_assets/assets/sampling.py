"""Asset `sampled_sites` (per plate): the sites chosen for processing, by quotas, deterministically."""

import pyarrow as pa
from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset
from pydantic import Field

from imaging_assets.assets.load_data import plate_row
from imaging_assets.assets.metadata import table_metadata
from imaging_assets.jump.sampling import SamplingQuotas, sample_sites, sampling_summary
from imaging_assets.partitions import plates_partitions

GROUP = "plates"
_DEFAULTS = SamplingQuotas()


class SamplingConfig(Config):
    """Quotas per plate type and control role. A site's fate depends on (seed, plate, well, site)."""

    plate_types: list[str] = Field(
        default_factory=lambda: sorted(_DEFAULTS.plate_types),
        description="Plate types to process; others give an empty sample",
    )
    sites_per_role: dict[str, int] = Field(
        default_factory=lambda: dict(_DEFAULTS.sites_per_role),
        description="Sites kept per well, by control role (trt, poscon, negcon, empty, ...)",
    )
    excluded_sources: list[str] = Field(default_factory=list, description="Sources to skip")
    seed: int = Field(default=_DEFAULTS.seed, description="Sampling seed")

    def quotas(self) -> SamplingQuotas:
        return SamplingQuotas(
            plate_types=frozenset(self.plate_types),
            sites_per_role=dict(self.sites_per_role),
            excluded_sources=frozenset(self.excluded_sources),
            seed=self.seed,
        )


@asset(
    group_name=GROUP,
    partitions_def=plates_partitions,
    kinds={"arrow", "parquet"},
    description="The load_data rows (every channel) of the sites chosen for processing.",
)
def sampled_sites(
    context: AssetExecutionContext,
    config: SamplingConfig,
    load_data: pa.Table,
    plate_index: pa.Table,
) -> Output:
    plate = plate_row(plate_index, context.partition_key, context.run.tags)
    table = sample_sites(load_data, plate["plate_type"], config.quotas())
    summary = sampling_summary(table)
    context.log.info(
        f"{context.partition_key} ({plate['plate_type']}): kept {summary} of "
        f"{load_data.num_rows} load_data rows"
    )
    return Output(
        table,
        metadata={
            **table_metadata(table),
            "plate_type": plate["plate_type"],
            "summary": MetadataValue.json(summary),
        },
    )
