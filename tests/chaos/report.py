"""Print the figures of the last chaos run: ``python -m tests.chaos.report [--markdown] [results.jsonl]``.

Without a file it reads the latest run (``make chaos`` writes the ``full`` one, ``make test`` the ``short`` one), or the
one of ``FRONTDESK_CHAOS`` when that is set.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tests.chaos.figures import load, results_file, table


def latest() -> Path:
    if os.environ.get("FRONTDESK_CHAOS") or os.environ.get("FRONTDESK_CHAOS_RESULTS"):
        return results_file()
    runs = [results_file(mode) for mode in ("full", "short") if results_file(mode).exists()]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else results_file()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="?", type=Path, default=None)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table, for the README")
    args = parser.parse_args(argv)
    path: Path = args.results or latest()
    rows = load(path)
    if not rows:
        print(f"no chaos figures in {path}: run `make chaos` first")
        return 1
    print(table(rows, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
