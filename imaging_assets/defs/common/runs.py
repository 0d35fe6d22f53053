"""What the instance says about runs, shared by schedules, batch runs and the CLI."""

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def first_error(instance: DagsterInstance, run_id: str) -> str | None:
    """`step: first line of its error` of the run's first failed step (None if no step failed)."""
    for event in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        error = event.dagster_event.step_failure_data.error
        if error is not None:
            return f"{event.dagster_event.step_key}: {error.message.strip().splitlines()[0][:300]}"
    return None
