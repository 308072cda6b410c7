"""The staff API fuzzed against its own OpenAPI document: no input makes a 500, every answer matches its schema.

Schemathesis reads ``GET /api/v1/openapi.json`` from a real ``frontdesk serve`` (a database of its own with the demo
clinic, so the permanent deletes it tries harm nobody), signs every request with an owner's bearer token, and
generates requests for every operation: schema examples, boundary values (the coverage phase: ids past 2**31, empty
strings, wrong types) and random ones, valid and invalid. The run is bounded (examples per operation) and seeded, so
a failure here is reproducible: the output ends with a ``curl`` for each failing case.

Checked for every operation: no 5xx, every response body matches the schema the document gives for its status, and
JSON is sent as JSON. Ids are folded onto the demo clinic's rows by ``api_fuzz_hooks.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from booking_core.db.engine import make_engine, make_sessionmaker
from booking_core.services.demo import seed_demo
from devtools import harness
from gateway.migrate import upgrade
from tests import servers

SEED = 20261207
#: Test cases per operation and phase: the coverage phase's boundary values plus this many random ones, per mode
#: (valid and invalid data). About 5,000 requests in all; 1-2 minutes on a busy 2-core machine.
MAX_EXAMPLES = 30
#: A hard stop for a run that hangs (schemathesis' own --max-time would keep fuzzing until it is spent).
TIMEOUT = 900
#: Signing out would end the token every other request uses: one's own sign-out, and "sign out everywhere" with a
#: generated id that the hooks point at the fuzzing owner. Both have their own tests (test_staff_login.py,
#: test_staff_identity_security.py).
SKIPPED_OPERATIONS = ("logout", "sign_out_everywhere")
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
HOOKS = "tests.integration.api_fuzz_hooks"


def _schemathesis() -> str:
    return str(Path(sys.executable).with_name("schemathesis"))


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "gateway.log"


@pytest.fixture(scope="module")
def served(backing: harness.Backing, child_env: dict[str, str], server_log: Path) -> Iterator[tuple[str, str]]:
    """A running gateway on a fresh database with the demo clinic, and an owner's bearer token for it."""
    name = harness.new_name("frontdesk_fuzz")
    asyncio.run(harness.create_database(backing.admin_url, name))
    url = backing.database_url(name).replace("postgresql://", "postgresql+asyncpg://")
    try:
        upgrade(url)
        asyncio.run(_seed(url))
        env = dict(child_env, DATABASE_URL=url, FRONTDESK_REDIS_PREFIX=f"fuzz{secrets.token_hex(3)}")
        code = (
            subprocess.run(
                harness.frontdesk_command("login-code", "--role", "owner", "--name", "Fuzzing owner"),
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                cwd=harness.ROOT,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        with servers.serving(env, log=server_log) as base:
            request = urllib.request.Request(  # noqa: S310 - our own local server
                f"{base}/api/v1/auth/login",
                data=json.dumps({"code": code}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                token = json.load(response)["token"]
            yield base, token
    finally:
        asyncio.run(harness.drop_database(backing.admin_url, name))


async def _seed(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            await seed_demo(db)
    finally:
        await engine.dispose()


def test_no_generated_request_makes_a_server_error_or_breaks_its_response_schema(
    served: tuple[str, str], server_log: Path, tmp_path: Path
) -> None:
    base, token = served
    report = tmp_path / "report.json"
    run = subprocess.run(
        [
            _schemathesis(),
            "--no-color",
            "run",
            f"{base}/api/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",
            *(flag for operation in SKIPPED_OPERATIONS for flag in ("--exclude-operation-id", operation)),
            "--generation-database",
            "none",
            "--suppress-health-check",
            "all",
            "--request-timeout",
            "30",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(harness.ROOT)},
    )
    found = json.loads(report.read_text()) if report.exists() else {}
    operations, cases = found.get("operations", {}), found.get("test_cases", {})
    print(  # the figures, for -s and for the README
        f"schemathesis: {operations.get('tested')} of {operations.get('selected')} operations, "
        f"{cases.get('generated')} test cases, {len(found.get('failures', []))} failures, "
        f"{len(found.get('errors', []))} errors, {found.get('running_time', 0):.0f} s"
    )
    tracebacks = [chunk[:3000] for chunk in server_log.read_text(errors="replace").split("Traceback")[1:]]
    problems = (
        f"schemathesis found problems:\n{run.stdout[-20000:]}\n{run.stderr[-2000:]}\n"
        f"server tracebacks ({len(tracebacks)}):\n" + "\n".join(tracebacks[:5])
    )
    assert run.returncode == 0, problems
    assert found["complete"] and found["stop_reason"] == "completed", problems
    assert operations["tested"] == operations["selected"] and operations["errored"] == 0, problems
    assert cases["with_failures"] == 0 and cases["errored"] == 0, problems
    assert found["failures"] == [] and found["errors"] == [], problems
