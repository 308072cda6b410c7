"""Print the figures of the last chaos run: ``python -m tests.chaos.report [--markdown] [results.jsonl]``.

Without a file it reads the run of the current ``FRONTDESK_CHAOS`` mode (``make chaos`` writes the ``full`` one).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.chaos.figures import load, results_file, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="?", type=Path, default=None)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table, for the README")
    args = parser.parse_args(argv)
    path: Path = args.results or results_file()
    rows = load(path)
    if not rows:
        print(f"no chaos figures in {path}: run `make chaos` first")
        return 1
    print(table(rows, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
