"""Dagster's Docker and Kubernetes run launchers, with the health of batch runs' children.

A child run of a batch run (defs/common/batches.py) runs inside its batch run's container or pod
and has none of its own, so the stock health checks (the run's container, or the Job named after
the run) would report it lost and run monitoring would fail it while it runs. These launchers
answer for a child with its batch run's health, and fail it once its batch run has ended; every
other run is checked exactly as by the stock launcher.

docker/dagster.yaml uses `DockerRunLauncher`; on Kubernetes, the chart's `CustomRunLauncher` can
name `K8sRunLauncher` (docs/deploy.md, "Batch runs on Kubernetes").
"""

from dagster_docker import DockerRunLauncher as StockDockerRunLauncher
from dagster_k8s import K8sRunLauncher as StockK8sRunLauncher

from imaging_assets.defs.common.run_launcher import BatchChildrenHealth


class DockerRunLauncher(BatchChildrenHealth, StockDockerRunLauncher):
    """dagster_docker's DockerRunLauncher; children of batch runs answer with their batch run."""


class K8sRunLauncher(BatchChildrenHealth, StockK8sRunLauncher):
    """dagster_k8s's K8sRunLauncher; children of batch runs answer with their batch run."""
