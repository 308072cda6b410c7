"""The figures a chaos scenario measures, kept (one JSON line per scenario) for the end-of-run table and for the
README's Reliability table (``python -m tests.chaos.report``)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

COLUMNS = ("scenario", "load", "fault", "lost", "duplicated", "window", "5xx", "recovery", "result")


def results_file(of_mode: str | None = None) -> Path:
    """Where this run's figures go: ``FRONTDESK_CHAOS_RESULTS``, else a file per mode in the temp dir."""
    given = os.environ.get("FRONTDESK_CHAOS_RESULTS")
    if given:
        return Path(given)
    return Path(tempfile.gettempdir()) / f"frontdesk-chaos-{of_mode or mode()}.jsonl"


def mode() -> str:
    """``short`` (the default, run by ``make test``) or ``full`` (``make chaos``)."""
    value = os.environ.get("FRONTDESK_CHAOS", "short").strip().lower()
    return value if value in ("short", "full") else "short"


@dataclass
class Figures:
    """What one scenario sent, what faults it made, and what came of them."""

    scenario: str
    load: str = ""
    fault: str = ""
    lost: int | None = None
    duplicated: int | None = None
    #: extra copies inside the documented at-least-once window (a sender killed between the provider's accept
    #: and the record): counted apart from ``duplicated``
    window: int | None = None
    server_errors: int | None = None
    recovery: str = ""
    result: str = "not finished"
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def row(self) -> dict[str, str]:
        def shown(value: int | None) -> str:
            return "-" if value is None else str(value)

        return {
            "scenario": self.scenario,
            "load": self.load,
            "fault": self.fault,
            "lost": shown(self.lost),
            "duplicated": shown(self.duplicated),
            "window": shown(self.window),
            "5xx": shown(self.server_errors),
            "recovery": self.recovery or "-",
            "result": self.result,
        }

    def save(self) -> None:
        path = results_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(self)) + "\n")


def load(path: Path) -> list[Figures]:
    found: list[Figures] = []
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            found.append(Figures(**json.loads(line)))
    return found


def table(rows: list[Figures], *, markdown: bool = False) -> str:
    """The figures as an aligned text table (or a Markdown one), with each scenario's notes below the text one."""
    cells = [dict(zip(COLUMNS, COLUMNS, strict=True)), *(r.row() for r in rows)]
    if markdown:
        lines = ["| " + " | ".join(c[k] for k in COLUMNS) + " |" for c in cells]
        lines.insert(1, "|" + "|".join("---" for _ in COLUMNS) + "|")
        return "\n".join(lines)
    widths = {k: max(len(c[k]) for c in cells) for k in COLUMNS}
    lines = ["  ".join(c[k].ljust(widths[k]) for k in COLUMNS).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * widths[k] for k in COLUMNS))
    for one in rows:
        for note in one.notes:
            lines.append(f"  {one.scenario}: {note}")
    return "\n".join(lines)
