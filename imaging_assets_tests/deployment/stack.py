"""The services of docker/docker-compose.yml as native processes: the gRPC code server (the
Dockerfile's CMD), dagster-webserver and dagster-daemon (the compose commands), with
docker/dagster.yaml as their instance.

Commands and health checks are read from the shipped files and only made local: 0.0.0.0 becomes
127.0.0.1, ports 3000/4000 become free ports, the workspace path becomes a test copy whose host is
127.0.0.1. The instance is docker/dagster.yaml with one key swapped: the run launcher, the only
piece that needs a Docker engine, becomes the DefaultRunLauncher (each run a subprocess of the
code server). Everything else, including the S3 compute logs, is the shipped configuration fed
by the same environment variables the compose file sets.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.servers import free_port

DOCKER_DIR = PROJECT_ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"
INSTANCE_FILE = DOCKER_DIR / "dagster.yaml"
WORKSPACE_FILE = DOCKER_DIR / "workspace.yaml"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
K8S_INSTANCE_FILE = DOCKER_DIR / "k8s" / "dagster-instance.yaml"
CODE_SERVICE = "user-code"
WEBSERVER_SERVICE = "webserver"
DAEMON_SERVICE = "daemon"
CODE_PORT = 4000
WEBSERVER_PORT = 3000
DEFAULT_LAUNCHER = {"module": "dagster._core.launcher", "class": "DefaultRunLauncher"}


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


def dockerfile_cmd(path: Path = DOCKERFILE) -> list[str]:
    """The exec-form CMD of a Dockerfile (the last one wins, as in Docker)."""
    commands = [line for line in path.read_text().splitlines() if line.startswith("CMD ")]
    if not commands:
        raise ValueError(f"{path} has no CMD")
    return json.loads(commands[-1][len("CMD ") :])


def healthcheck_argv(service: dict) -> list[str]:
    test = service["healthcheck"]["test"]
    if test[0] != "CMD":
        raise ValueError(f"healthcheck must be exec form ['CMD', ...], got {test!r}")
    return list(test[1:])


def native_instance_config(shipped: dict | None = None) -> dict:
    """docker/dagster.yaml with the run launcher swapped for the DefaultRunLauncher."""
    config = copy.deepcopy(shipped if shipped is not None else load_yaml(INSTANCE_FILE))
    config["run_launcher"] = dict(DEFAULT_LAUNCHER)
    return config


def native_workspace_config(code_port: int) -> dict:
    config = load_yaml(WORKSPACE_FILE)
    for entry in config["load_from"]:
        entry["grpc_server"]["host"] = "127.0.0.1"
        entry["grpc_server"]["port"] = code_port
    return config


def executable(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else name


def native_argv(argv: list[str], ports: dict[int, int], workspace: Path | None = None) -> list[str]:
    """A container command made local: binaries from this venv, loopback, free ports."""
    result: list[str] = []
    previous = None
    for position, arg in enumerate(argv):
        if position == 0:
            arg = executable(arg)
        elif arg == "0.0.0.0":
            arg = "127.0.0.1"
        elif previous in ("-p", "--port") and int(arg) in ports:
            arg = str(ports[int(arg)])
        elif previous in ("-w", "--workspace") and workspace is not None:
            arg = str(workspace)
        else:
            for container_port, port in ports.items():
                arg = re.sub(
                    rf"(127\.0\.0\.1|localhost):{container_port}\b", f"127.0.0.1:{port}", arg
                )
        result.append(arg)
        previous = argv[position]
    return result


class ServiceProcess:
    """One service: its own session (so SIGTERM reaches it, see DESIGN.md), output in a log file,
    stopped by PID with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path, log_dir: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = Path(log_dir) / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        with self.log_path.open("a") as log:
            log.write(f"\n=== start {' '.join(self.argv)}\n")
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        return process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


class DeploymentStack:
    """Code server, webserver and daemon of the compose file, natively, on free loopback ports."""

    def __init__(
        self,
        root: Path,
        env: dict[str, str],
        instance_config: dict | None = None,
        code_target: list[str] | None = None,
    ) -> None:
        """`instance_config` replaces the native docker/dagster.yaml (benchmarks compare storages);
        `code_target` replaces the CMD's `-m imaging_assets.definitions` (e.g. `["-f", path]`)."""
        self.root = Path(root)
        self.home = self.root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.ports = {CODE_PORT: free_port(), WEBSERVER_PORT: free_port()}
        self.compose = compose()
        self.instance_config = instance_config or native_instance_config()
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(self.instance_config))
        self.workspace = self.home / "workspace.yaml"
        self.workspace.write_text(yaml.safe_dump(native_workspace_config(self.ports[CODE_PORT])))
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "AWS_"))}
        keep = {k: v for k, v in keep.items() if not k.startswith("IMAGING_ASSETS_")}
        self.env = {**keep, **env, "DAGSTER_HOME": str(self.home)}
        services = self.compose["services"]
        code_cmd = dockerfile_cmd()
        if code_target:
            at = code_cmd.index("-m")
            code_cmd = [*code_cmd[:at], *code_target, *code_cmd[at + 2 :]]
        self.code = self._service(CODE_SERVICE, code_cmd)
        self.webserver = self._service(WEBSERVER_SERVICE, services[WEBSERVER_SERVICE]["command"])
        self.daemon = self._service(DAEMON_SERVICE, services[DAEMON_SERVICE]["command"])
        self.daemon_restarts = 0

    def _service(self, name: str, argv: list[str]) -> ServiceProcess:
        return ServiceProcess(
            name, native_argv(argv, self.ports, self.workspace), self.env, self.home, self.logs
        )

    @property
    def webserver_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[WEBSERVER_PORT]}"

    def healthcheck(self, service: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
        """Run the compose healthcheck of `service`, made local."""
        argv = native_argv(healthcheck_argv(self.compose["services"][service]), self.ports)
        return subprocess.run(
            argv, env=self.env, cwd=self.home, capture_output=True, text=True, timeout=timeout_s
        )

    def _wait(self, what: str, ready, process: ServiceProcess, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if not process.alive:
                raise RuntimeError(f"{what} exited:\n{process.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not healthy after {timeout_s} s:\n{process.log_tail()}")
            time.sleep(0.5)

    def _webserver_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.webserver_url}/server_info", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    def start(self, timeout_s: float = 180) -> DeploymentStack:
        # The code server first (the order compose's depends_on imposes): daemon and webserver
        # otherwise log DagsterUserCodeUnreachableError until it answers.
        self.code.start()
        self._wait(
            "gRPC code server",
            lambda: self.healthcheck(CODE_SERVICE).returncode == 0,
            self.code,
            timeout_s,
        )
        self.webserver.start()
        self.daemon.start()
        self._wait("dagster-webserver", self._webserver_ready, self.webserver, timeout_s)
        return self

    def restart_daemon(self) -> int | None:
        code = self.daemon.stop()
        self.daemon_restarts += 1
        self.daemon.start()
        return code

    def stop(self) -> dict[str, int | None]:
        return {
            process.name: process.stop() for process in (self.daemon, self.webserver, self.code)
        }

    def graphql(self, query: str, variables: dict | None = None, timeout_s: float = 60) -> dict:
        request = urllib.request.Request(
            f"{self.webserver_url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def logs_tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.log_tail(2000)}" for p in (self.code, self.webserver, self.daemon)
        )
