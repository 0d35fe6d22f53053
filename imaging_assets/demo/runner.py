"""The embedded demo: sample gallery, local lake and SQLite instance under one work directory.

`imaging-assets demo` and `make demo` call `run_demo`: generate the gallery (once per preset and
seed), then materialize the metadata job and the plate job for every plate partition through the
Dagster instance in `<workdir>/dagster_home`, so `dagster dev` on the same workdir shows the runs.
Re-running is safe: the gallery is rewritten identically (or skipped), Parquet outputs are replaced
per partition and Lance datasets replace each plate in one commit.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imaging_assets.core.settings import HOME_ENV
from imaging_assets.core.units import human_bytes
from imaging_assets.demo.location import location_tags, write_workspace

# the repository's instance file (queue limits, run monitoring, the run launcher) when this runs
# from a checkout; a minimal one when the package is installed without the repository
REPO_INSTANCE_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"
FALLBACK_INSTANCE_YAML = """telemetry:
  enabled: false
nux:
  enabled: false
"""
GALLERY_MARKER = ".imaging_assets_gallery.json"
# Dagster's own console log only for warnings and errors: the demo prints one line per run with
# what each asset wrote (`run_summary`); the full event log is in the instance (dagster dev)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps things: gallery (inputs), lake (outputs), Dagster home (runs)."""

    workdir: Path

    @property
    def gallery(self) -> Path:
        return self.workdir / "gallery"

    @property
    def lake(self) -> Path:
        return self.workdir / "lake"

    @property
    def dagster_home(self) -> Path:
        return self.workdir / "dagster_home"


@dataclass
class DemoReport:
    """What the demo wrote, for printing."""

    plates: list[str] = field(default_factory=list)
    failed_plates: dict[str, str] = field(default_factory=dict)
    outputs: list[tuple[str, int, int | None]] = field(default_factory=list)  # table, rows, bytes
    collections: dict[str, bool] = field(default_factory=dict)  # stacks and frames runs: success
    lake: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.failed_plates) or not all(self.collections.values())

    def render(self) -> str:
        lines = [f"plates materialized: {len(self.plates) - len(self.failed_plates)}"]
        for key, error in self.failed_plates.items():
            lines.append(f"  FAILED {key}: {error}")
        done = sum(self.collections.values())
        lines.append(
            f"specimen and frame-dataset runs succeeded: {done} of {len(self.collections)}"
        )
        lines += [f"  FAILED {name}" for name, ok in self.collections.items() if not ok]
        width = max((len(name) for name, _, _ in self.outputs), default=10)
        lines.append(f"{'table'.ljust(width)}  {'rows':>9}  {'size':>9}")
        for name, rows, size in self.outputs:
            shown = "-" if size is None else human_bytes(size)
            lines.append(f"{name.ljust(width)}  {rows:>9,}  {shown:>9}")
        if self.lake:
            lines.append(f"(tables under {self.lake}; `imaging-assets lake tables` lists them)")
        return "\n".join(lines)


def prepare_environment(paths: DemoPaths) -> None:
    """Point the code location and the Dagster instance at the work directory."""
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    instance_yaml = paths.dagster_home / "dagster.yaml"
    if REPO_INSTANCE_YAML.exists():
        shutil.copyfile(REPO_INSTANCE_YAML, instance_yaml)
    else:
        instance_yaml.write_text(FALLBACK_INSTANCE_YAML)
    write_workspace(paths.dagster_home)
    os.environ["DAGSTER_HOME"] = str(paths.dagster_home)
    os.environ[HOME_ENV] = str(paths.workdir)


def ensure_gallery(
    paths: DemoPaths, preset: str, seed: int, progress: Callable[[int, int], None] | None = None
) -> str:
    """Generate the sample gallery unless this preset and seed are already complete there."""
    from imaging_assets.demo.gallery import generate_gallery

    marker = paths.gallery / GALLERY_MARKER
    wanted = {"preset": preset, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return f"sample gallery ({preset}, seed {seed}) already at {paths.gallery}"
    manifest = generate_gallery(paths.gallery, preset=preset, seed=seed, progress=progress)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(wanted))
    tmp.replace(marker)
    return manifest.summary()


def run_demo(
    workdir: Path,
    preset: str = "default",
    seed: int = 0,
    plates: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
    echo: Callable[[str], None] = print,
) -> DemoReport:
    """Generate (if needed) and materialize everything; returns what was written."""
    paths = DemoPaths(workdir.resolve())
    prepare_environment(paths)
    echo(ensure_gallery(paths, preset, seed, progress))
    echo(ensure_other_collections(paths, seed))

    # Imported after the environment is set: the Definitions read their roots from it.
    from dagster import DagsterInstance

    from imaging_assets.definitions import defs
    from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
    from imaging_assets.jump.keys import parse_plate_partition_key

    report = DemoReport()
    with DagsterInstance.get() as instance:
        result = defs.resolve_job_def("metadata_job").execute_in_process(
            instance=instance, run_config=QUIET, tags=location_tags()
        )
        echo(run_summary(result))
        if not result.success:
            raise RuntimeError("metadata_job failed; see the Dagster logs above")
        keys = sorted(instance.get_dynamic_partitions(PLATES_PARTITIONS_NAME))
        if plates:
            keys = [key for key in keys if key in set(plates)]
        plate_job = defs.resolve_job_def("plate_job")
        for number, key in enumerate(keys, start=1):
            source, _ = parse_plate_partition_key(key)
            report.plates.append(key)
            run = plate_job.execute_in_process(
                partition_key=key,
                instance=instance,
                tags={"imaging_assets/source": source, **location_tags()},
                run_config=QUIET,
                raise_on_error=False,
            )
            echo(f"[{number}/{len(keys)}] {run_summary(run, key)}")
            if not run.success:
                failure = next((e for e in run.all_events if e.is_step_failure), None)
                report.failed_plates[key] = (
                    failure.step_failure_data.error.message.strip().splitlines()[0]
                    if failure and failure.step_failure_data.error
                    else "run failed"
                )
        report.collections = _run_other_domains(defs, instance, echo)
    report.outputs = summarize_lake(paths.lake)
    report.lake = str(paths.lake)
    return report


def run_summary(result, partition: str | None = None, name: str | None = None) -> str:
    """One line for a run: the job, the partition, and what each asset wrote (rows, or
    "unchanged"), or the first line of the error of a failed step."""
    parts = []
    sampled_none = False
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        rows = metadata.get("dagster/row_count")
        outcome = metadata.get("outcome")
        text = event.asset_key.to_user_string()
        if rows is not None:
            text += f" {rows.value:,}"
        if outcome is not None and outcome.value == "unchanged":
            text += " (unchanged)"
        sampled_none |= (
            event.asset_key.to_user_string() == "sampled_sites"
            and rows is not None
            and rows.value == 0
        )
        parts.append(text)
    if sampled_none:
        parts.append("no site sampled: the sampling quotas select none of this plate type")
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    if failure is not None:
        error = failure.step_failure_data.error
        message = error.message.strip().splitlines()[0] if error else "failed"
        parts.append(f"FAILED {failure.step_key}: {message[:200]}")
    head = (name or result.job_def.name) + (f" {partition}" if partition else "")
    return f"{head}: " + ", ".join(parts) if parts else head


def ensure_other_collections(paths: DemoPaths, seed: int) -> str:
    """The sample specimen z-stacks (workdir/stacks) and frame datasets (under the source root)."""
    from imaging_assets.demo.gallery.frames import generate_frame_samples
    from imaging_assets.demo.gallery.stacks import generate_stacks

    stacks = generate_stacks(paths.workdir / "stacks", preset="tiny")
    frames = generate_frame_samples(paths.gallery / "cpg0016-jump", seed=seed)
    return (
        f"sample stack collection at {stacks.root}; "
        f"{len(frames.rows)} sample frame datasets under {frames.root / 'frames'}"
    )


def _run_other_domains(defs, instance, echo: Callable[[str], None]) -> dict[str, bool]:
    """Specimen z-stacks and frame datasets: register their partitions, then run each one."""
    from dagster import materialize

    from imaging_assets.defs.frames.partitions import DATASETS_PARTITIONS_NAME
    from imaging_assets.defs.stacks.partitions import SPECIMENS_PARTITIONS_NAME

    def run(job_name: str, key: str | None = None) -> bool:
        result = defs.resolve_job_def(job_name).execute_in_process(
            partition_key=key,
            instance=instance,
            run_config=QUIET,
            tags=location_tags(),
            raise_on_error=False,
        )
        echo(run_summary(result, key))
        return result.success

    manifest = materialize(
        list(defs.assets),
        selection=["specimen_manifest"],
        instance=instance,
        resources=defs.resources,
        run_config=QUIET,
        tags=location_tags(),
        raise_on_error=False,
    )
    echo(run_summary(manifest, name="specimen_manifest"))
    outcome = {
        "specimen_manifest": manifest.success,
        "imaging_datasets_job": run("imaging_datasets_job"),
    }
    for key in sorted(instance.get_dynamic_partitions(SPECIMENS_PARTITIONS_NAME)):
        outcome[f"stacks_job {key}"] = run("stacks_job", key)
    for key in sorted(instance.get_dynamic_partitions(DATASETS_PARTITIONS_NAME)):
        outcome[f"frames_job {key}"] = run("frames_job", key)
    return outcome


def summarize_lake(lake: Path) -> list[tuple[str, int, int | None]]:
    """(table, rows, bytes) of every table of the lake, Lance and Parquet (what `imaging-assets
    lake tables` lists)."""
    from imaging_assets.core.lake import Lake
    from imaging_assets.core.maintenance import parquet_tables, summarize

    if not lake.exists():
        return []
    handle = Lake.open(lake)
    tables = summarize(handle.store, handle.uri, None) + parquet_tables(handle.store)
    return [(t.name, t.rows, t.bytes_on_disk) for t in sorted(tables, key=lambda t: t.name)]
