"""The dynamic partitions of the per-plate assets: one partition per plate, "<source>__<plate>"."""

from dagster import DynamicPartitionsDefinition

PLATES_PARTITIONS_NAME = "plates"
plates_partitions = DynamicPartitionsDefinition(name=PLATES_PARTITIONS_NAME)
