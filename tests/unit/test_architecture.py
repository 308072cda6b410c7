"""Dependencies point inward, and this test keeps it true (STYLE.md §1)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from infra import job_names

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names)
# Small pure libraries the domain may use; nothing that does I/O.
DOMAIN_ALLOWED = {"booking_core", "phonenumbers", "babel", "dateparser"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _files("booking_core/domain"), ids=lambda p: p.name)
def test_the_domain_is_pure_python(path: Path) -> None:
    foreign = {m for m in _imports(path) if m.split(".")[0] not in STDLIB | DOMAIN_ALLOWED}
    assert foreign == set(), f"{path.name} imports {foreign}"
    assert not {m for m in _imports(path) if m.startswith("booking_core.") and not m.startswith("booking_core.domain")}


@pytest.mark.parametrize(
    "path",
    [p for package in ("booking_core", "channels", "infra", "gateway", "workers", "frontdesk") for p in _files(package)
     if "booking_core/db" not in str(p)],
    ids=lambda p: str(p.relative_to(ROOT)),
)  # fmt: skip
def test_only_the_db_package_imports_sqlalchemy(path: Path) -> None:
    """The processes keep their engine as ``booking_core.db.engine.Engine`` and ask the database through it."""
    assert not {m for m in _imports(path) if m.split(".")[0] == "sqlalchemy"}, str(path.relative_to(ROOT))


@pytest.mark.parametrize(
    "path", _files("booking_core") + _files("channels") + _files("infra"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_nothing_inside_imports_the_gateway_or_the_workers(path: Path) -> None:
    outward = {m for m in _imports(path) if m.split(".")[0] in {"gateway", "workers"}}
    assert outward == set(), f"{path.relative_to(ROOT)} imports {outward}"


@pytest.mark.parametrize("path", _files("booking_core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_clinic_does_not_know_the_channels(path: Path) -> None:
    assert not {m for m in _imports(path) if m.split(".")[0] == "channels"}


@pytest.mark.parametrize("name", job_names.ALL)
def test_every_job_name_is_a_function_of_the_workers(name: str) -> None:
    module, _, function = name.rpartition(".")
    assert module.split(".")[0] == "workers"
    assert callable(getattr(importlib.import_module(module), function, None)), f"{name} names no function"


@pytest.mark.parametrize("path", _files("gateway") + _files("workers"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_gateway_and_the_workers_meet_only_in_the_shared_layer(path: Path) -> None:
    """Requests hand work to the workers by job name (infra.job_names, infra.queues); `frontdesk` starts both."""
    other = "workers" if path.relative_to(ROOT).parts[0] == "gateway" else "gateway"
    assert not {m for m in _imports(path) if m.split(".")[0] == other}, str(path.relative_to(ROOT))
