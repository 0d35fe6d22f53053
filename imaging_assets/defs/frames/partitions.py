"""The dynamic partitions of the per-dataset assets: one partition per registered dataset id."""

from dagster import DynamicPartitionsDefinition

DATASETS_PARTITIONS_NAME = "datasets"
datasets_partitions = DynamicPartitionsDefinition(name=DATASETS_PARTITIONS_NAME)
