"""The dynamic partitions of the per-specimen assets: one partition per specimen folder."""

from dagster import DynamicPartitionsDefinition

SPECIMENS_PARTITIONS_NAME = "specimens"
specimens_partitions = DynamicPartitionsDefinition(name=SPECIMENS_PARTITIONS_NAME)
