"""`frames_manifest_sensor`: a changed ingest manifest registers datasets, new ones are ingested."""

import hashlib
import json

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.defs.common.stores import SourceResource
from imaging_assets.defs.frames.assets import DEFAULT_MANIFEST
from imaging_assets.defs.frames.jobs import frames_job, imaging_datasets_job
from imaging_assets.defs.frames.partitions import DATASETS_PARTITIONS_NAME
from imaging_assets.frames.manifest import manifest_sha256


def _cursor(text: str | None) -> dict:
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError:
        data = {}
    return {"manifest": data.get("manifest"), "requested": list(data.get("requested", []))}


@sensor(
    jobs=[imaging_datasets_job, frames_job],
    minimum_interval_seconds=120,
    default_status=DefaultSensorStatus.STOPPED,
    description=(
        "Watches the ingest manifest: when its content changes, runs imaging_datasets; for each "
        "registered dataset partition not yet requested, runs frames_job."
    ),
)
def frames_manifest_sensor(context: SensorEvaluationContext, source: SourceResource):
    cursor = _cursor(context.cursor)
    requests = []
    try:
        data = source.store().read(DEFAULT_MANIFEST).data
    except MissingObjectError:
        data = None
    if data is not None:
        digest = manifest_sha256(data)
        if digest != cursor["manifest"]:
            requests.append(
                RunRequest(job_name=imaging_datasets_job.name, run_key=f"manifest-{digest[:20]}")
            )
            cursor["manifest"] = digest
    requested = set(cursor["requested"])
    partitions = context.instance.get_dynamic_partitions(DATASETS_PARTITIONS_NAME)
    for dataset_id in partitions:
        if dataset_id not in requested:
            requests.append(
                RunRequest(
                    job_name=frames_job.name,
                    partition_key=dataset_id,
                    run_key=f"frames-{hashlib.sha1(dataset_id.encode()).hexdigest()[:16]}",
                )
            )
            requested.add(dataset_id)
    cursor["requested"] = sorted(requested)
    if not requests:
        context.update_cursor(json.dumps(cursor))
        return SkipReason("manifest unchanged and every registered dataset requested")
    return SensorResult(run_requests=requests, cursor=json.dumps(cursor))
