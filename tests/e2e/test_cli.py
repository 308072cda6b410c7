"""The `frontdesk` command as a newcomer meets it: real processes, real services, one clear line on mistakes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.services import auth
from devtools import harness
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.e2e


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("frontdesk: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def _embedded_processes(home: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(home) in cmdline and ("postgres" in cmdline or "redis-server" in cmdline):
            found.append(proc)
    return found


def test_run_on_a_fresh_home_starts_embedded_services_and_stops_cleanly(
    tmp_path: Path, child_env: dict[str, str]
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in child_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["FRONTDESK_HOME"] = str(home)
    port = harness.free_port()
    process = subprocess.Popen(
        harness.frontdesk_command("run", "--port", str(port)),
        env=env,
        cwd=harness.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        harness.wait_for_http(f"http://127.0.0.1:{port}/health", timeout=120, process=process)  # type: ignore[arg-type]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "ok" and body["database"] == "ok" and body["redis"] == "ok", body
        assert set(body.values()) == {"ok"}, body  # ingest, workers (its own worker), outbox, transactions too
        assert (home / "postgres" / "PG_VERSION").exists()
        assert (home / "redis" / "port").exists()
        assert _embedded_processes(home)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output
    assert "Frontdesk is running with the demo clinic." in output
    code_line = next(line for line in output.splitlines() if "Owner code:" in line)
    assert len(code_line.split()[2]) == 11  # two groups of five, e.g. 7KQ4M-X2HPA
    assert f"http://127.0.0.1:{port}/login?code={code_line.split()[2]}" in output
    assert f"http://127.0.0.1:{port}/book" in output and f"http://127.0.0.1:{port}/queue" in output
    assert "Frontdesk stopped." in output
    assert "Traceback" not in output
    assert _embedded_processes(home) == []


def test_unknown_flags_get_one_line_and_exit_2(run_cli: Any) -> None:
    result = run_cli("run", "--colour", "blue")
    assert result.returncode == 2
    line = _one_clear_line(result)
    assert "unrecognized arguments: --colour blue" in line and "--help" in line


def test_an_unreachable_database_url_is_named_with_how_to_fix_it(run_cli: Any, child_env: dict[str, str]) -> None:
    env = dict(child_env, DATABASE_URL=f"postgresql://postgres@127.0.0.1:{harness.free_port()}/clinic")
    line = _one_clear_line(run_cli("migrate", env=env))
    assert "cannot reach the database" in line and "DATABASE_URL" in line


def test_an_unwritable_home_is_named_with_how_to_fix_it(
    run_cli: Any, child_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {k: v for k, v in child_env.items() if k != "DATABASE_URL"}
    env["FRONTDESK_HOME"] = str(blocker / "home")
    line = _one_clear_line(run_cli("migrate", env=env))
    assert "FRONTDESK_HOME" in line and "not writable" in line


def test_a_port_in_use_is_named_with_how_to_fix_it(run_cli: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_clear_line(run_cli("serve", "--port", str(port)))
    assert f"127.0.0.1:{port}" in line and "--port" in line


def test_an_invalid_setting_is_named(run_cli: Any, child_env: dict[str, str]) -> None:
    line = _one_clear_line(run_cli("migrate", env=dict(child_env, DEFAULT_LANGUAGE="fr")))
    assert "DEFAULT_LANGUAGE" in line


def test_a_bot_token_without_a_webhook_secret_refuses_to_serve(run_cli: Any, child_env: dict[str, str]) -> None:
    env = dict(child_env, TELEGRAM_BOT_TOKEN="123:abc")
    line = _one_clear_line(run_cli("serve", "--port", str(harness.free_port()), env=env))
    assert "TELEGRAM_WEBHOOK_SECRET" in line


def test_login_code_prints_a_working_code_on_its_last_line(run_cli: Any, settings: Any) -> None:
    result = run_cli("login-code", "--role", "admin", "--name", "Ana")
    assert result.returncode == 0, result.stderr
    code = result.stdout.strip().splitlines()[-1]

    async def redeem() -> str | None:
        engine = make_engine(settings.async_database_url, pool_size=1)  # this test's own loop, its own engine
        try:
            async with make_sessionmaker(engine)() as db, db.begin():
                _, actor = await auth.redeem_login_code(db, code, secret=TEST_SECRET)
                return actor.role
        finally:
            await engine.dispose()

    assert asyncio.run(redeem()) == "admin"


def test_migrate_and_seed_demo_work_on_a_given_database(run_cli: Any, child_env: dict[str, str], backing: Any) -> None:
    name = harness.new_name("frontdesk_cli")
    asyncio.run(harness.create_database(backing.admin_url, name))
    try:
        env = dict(child_env, DATABASE_URL=backing.database_url(name))
        migrated = run_cli("migrate", env=env)
        assert migrated.returncode == 0 and "up to date" in migrated.stdout
        first = run_cli("seed-demo", env=env)
        assert first.returncode == 0 and "demo clinic created" in first.stdout
        second = run_cli("seed-demo", env=env)
        assert second.returncode == 0 and "nothing seeded" in second.stdout
    finally:
        asyncio.run(harness.drop_database(backing.admin_url, name))


def _compose_command() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):  # Debian's package, installed by `make test` where apt-get works
        return ["docker-compose"]
    return None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose client on this machine")
def test_docker_compose_file_parses() -> None:
    command = _compose_command()
    assert command is not None
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    result = subprocess.run(
        [*command, "-f", str(harness.ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for service in ("postgres:", "redis:", "migrate:", "gateway:", "worker:", "healthcheck:"):
        assert service in result.stdout
