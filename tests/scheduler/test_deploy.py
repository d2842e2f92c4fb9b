"""The deployment files: what can be checked on this machine (no Docker engine runs here)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.scheduler.support import ApiServer, Service, clean_env, write_jobs

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _unit() -> str:
    return (DEPLOY / "tickless-scheduler.service").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies_cleanly(tmp_path: Path) -> None:
    # verify also checks that ExecStart exists: point it at this checkout's console script.
    script = Path(sys.executable).with_name("scheduler")
    unit = tmp_path / "tickless-scheduler.service"
    unit.write_text(_unit().replace("/opt/tickless/.venv/bin/scheduler", str(script)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout + result.stderr == ""  # verify exits 0 even on parse warnings


def test_systemd_unit_has_the_operational_settings() -> None:
    settings = dict(
        line.split("=", 1) for line in _unit().splitlines() if "=" in line and not line.startswith("#")
    )
    assert settings["Restart"] == "on-failure"
    assert settings["RestartPreventExitStatus"] == "2"
    assert settings["EnvironmentFile"] == "/etc/tickless/scheduler.env"
    assert settings["StateDirectory"] == "tickless"
    assert settings["NoNewPrivileges"] == "yes" and settings["ProtectSystem"] == "strict"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert int(settings["TimeoutStopSec"]) > 50  # above SCHEDULER_SHUTDOWN_TIMEOUT_SECONDS


def test_compose_runs_the_scheduler_beside_the_app() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    scheduler = compose["services"]["scheduler"]
    assert scheduler["depends_on"]["app"]["condition"] == "service_healthy"
    assert "healthcheck" in compose["services"]["app"]
    assert scheduler["stop_grace_period"] == "60s"
    assert scheduler["env_file"] == compose["services"]["app"]["env_file"]
    assert scheduler["environment"]["API_URL"] == "http://app:8000"
    assert any(volume.endswith(":/var/lib/tickless") for volume in scheduler["volumes"])


def _dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_dockerfile_copies_every_package_the_install_needs() -> None:
    # setup.cfg's find-include lists the top-level packages; an image without one fails to import.
    setup = (DEPLOY.parent / "setup.cfg").read_text()
    block = setup.split("[options.packages.find]", 1)[1].split("[", 1)[0]
    packages = {line.strip() for line in block.splitlines() if line.strip() and "=" not in line and "*" not in line}
    assert packages >= {"tickless", "scheduler", "catalog"}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", _dockerfile(), flags=re.MULTILINE))
    assert packages <= copied, f"the Dockerfile does not COPY {sorted(packages - copied)}"


def test_dockerfile_runs_as_a_non_root_user_with_state_in_a_volume() -> None:
    text = _dockerfile()
    assert re.search(r"^USER tickless$", text, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M)
    assert 'VOLUME ["/var/lib/tickless"]' in text
    # The default state path (data/..., relative to WORKDIR /app) reaches the volume through a link,
    # so the image sets no state variable and replicas can set SCHEDULER_STATE_URL alone.
    assert re.search(r"^WORKDIR /app$", text, re.M) and "ln -s /var/lib/tickless /app/data" in text
    settings = "".join(re.findall(r"^ENV (?:.*\\\n)*.*$", text, re.M))
    assert "SCHEDULER_CONFIG" in settings and "SCHEDULER_STATE_PATH" not in settings


def test_dockerfile_healthcheck_command_works_against_a_running_service(
    api: ApiServer, tmp_path: Path, start_service: Callable[..., Service]
) -> None:
    match = re.search(r'CMD \["python", "-c", "(.*)"\]\n', _dockerfile())
    assert match, "HEALTHCHECK must run a python -c command"
    command = json.loads(f'"{match.group(1)}"')
    assert "/livez" in command  # a liveness check: a job's fault must not restart the container
    # A job that keeps failing makes /healthz 503 after 2 x 1 s + 1 s; the HEALTHCHECK must still pass.
    api.on("/api/a", status=500)
    config = write_jobs(tmp_path, "jobs:\n  a: {every: 1s, timeout: 1s, retry: {attempts: 1}, http: {path: /api/a}}\n")
    env = clean_env(API_URL=api.url, SCHEDULER_STARTUP_GRACE_SECONDS="0", SCHEDULER_METRICS_ADDR="127.0.0.1:0")
    service = start_service(["run", "-c", str(config)], env)
    service.wait_for_log("metrics and health on")
    port = re.search(r"127\.0\.0\.1:(\d+)/metrics", service.log)
    assert port
    api.wait_for("/api/a", 4)
    healthz = command.replace(":9464/livez", f":{port.group(1)}/healthz")
    deadline = time.monotonic() + 15
    while subprocess.run([sys.executable, "-c", healthz], capture_output=True, check=False).returncode == 0:
        assert time.monotonic() < deadline, "/healthz never reported the failing job"
        time.sleep(0.3)
    probe = subprocess.run(
        [sys.executable, "-c", command.replace(":9464/", f":{port.group(1)}/")], capture_output=True, check=False,
    )
    service.terminate()
    assert probe.returncode == 0, probe.stderr
    # And it fails when the service is gone.
    gone = subprocess.run([sys.executable, "-c", command.replace(":9464/", f":{port.group(1)}/")], capture_output=True, check=False)
    assert gone.returncode != 0
