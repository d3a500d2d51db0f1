"""The deployment files, checked as far as this machine allows (no container engine here).

Every service's Dockerfile and every file a Dockerfile copies must exist; every command a
container runs must be a real command of this checkout that accepts the flags given; the
settings the compose file passes must be settings mergenet reads. ``docker compose config``
(or ``docker-compose config``) validates the file against the Compose schema when a compose
client is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mergenet.config import Settings
from mergenet.petals.env import petals_environ, repo_root

ROOT = repo_root()
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def dockerfile(service: dict) -> Path:
    build = service["build"]
    return (DOCKER / build["context"] / build["dockerfile"]).resolve()


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_compose_has_every_service_and_the_engines_it_scales_out_on() -> None:
    services = compose()["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "anvil",
        "coordinator",
        "worker",
        "petals-dht",
        "petals-server-a",
        "petals-server-b",
    }
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    for name in ("petals-dht", "petals-server-a", "petals-server-b"):
        assert services[name]["profiles"] == ["petals"]


def test_every_dockerfile_and_every_copied_file_exists() -> None:
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue
        path = dockerfile(service)
        assert path.is_file(), f"{name}: {path}"
        for word, args in instructions(path):
            if word == "COPY":
                *sources, _dest = args.split()
                for src in sources:
                    assert (ROOT / src).exists(), f"{path.name}: COPY {src}"


def test_the_settings_compose_passes_are_settings_mergenet_reads() -> None:
    env = compose()["x-mergenet-env"]
    fields = {f"MERGENET_{f.upper()}" for f in Settings.model_fields}
    assert set(env) <= fields, set(env) - fields
    assert env["MERGENET_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["MERGENET_REDIS_URL"] == "redis://redis:6379/0"


def test_the_coordinator_command_exists_with_its_flags() -> None:
    cmd = next(a for w, a in instructions(DOCKER / "coordinator.Dockerfile") if w == "CMD")
    argv = yaml.safe_load(cmd)
    assert argv[:3] == ["mergenet", "coordinator", "up"]
    out = subprocess.run(
        [sys.executable, "-m", "mergenet.cli", *argv[1:3], "--help"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    for flag in (a for a in argv if a.startswith("--")):
        assert flag in out.stdout, flag


def test_the_worker_command_names_the_celery_app() -> None:
    cmd = next(a for w, a in instructions(DOCKER / "worker.Dockerfile") if w == "CMD")
    argv = yaml.safe_load(cmd)
    assert argv[:3] == ["celery", "--app", "mergenet.workers.celery_app"]
    from mergenet.workers.celery_app import TASK_NAME, app

    assert TASK_NAME in app.tasks
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost


def test_the_petals_commands_accept_the_flags_compose_gives(petals_py: Path) -> None:
    services = compose()["services"]
    server_flags = [a for a in services["petals-server-a"]["command"] if a.startswith("--")]
    helps = {}
    for module in ("petals.cli.run_server", "mergenet.petals.side.dht"):
        out = subprocess.run(
            [str(petals_py), "-m", module, "--help"],
            capture_output=True,
            text=True,
            env=petals_environ(),
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        helps[module] = out.stdout
    for flag in server_flags:
        assert flag in helps["petals.cli.run_server"], flag
    dht_flags = [a for a in services["petals-dht"]["entrypoint"] if a.startswith("--")]
    for flag in dht_flags:
        assert flag in helps["mergenet.petals.side.dht"], flag
    script = DOCKER / "petals-server"
    assert script.stat().st_mode & 0o111, "the peer's entrypoint script must be executable"
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0


def test_the_anvil_image_runs_the_projects_pinned_anvil_with_real_flags() -> None:
    steps = instructions(DOCKER / "anvil.Dockerfile")
    argv = yaml.safe_load(next(a for w, a in steps if w == "CMD"))
    anvil = ROOT / "node_modules" / ".bin" / "anvil"
    out = subprocess.run([str(anvil), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in (a for a in argv if a.startswith("--")):
        assert flag in out.stdout, flag


def _compose_client() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_docker_compose_config_accepts_the_file() -> None:
    client = _compose_client()
    if client is None:
        pytest.skip("no compose client installed (docker compose or docker-compose)")
    for extra in ([], ["--profile", "petals"]):
        out = subprocess.run(
            [*client, "-f", str(COMPOSE), *extra, "config", "--services"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
    assert "petals-server-b" in out.stdout.split()
