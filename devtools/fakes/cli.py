"""``python -m devtools.fakes`` / ``frontdesk fake-apis``: serve the fake Telegram and Twilio APIs."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from devtools.fakes.telegram_api import running_fake_telegram
from devtools.fakes.twilio_api import running_fake_twilio


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="fake-apis",
        description="Serve fake Telegram Bot API and Twilio Messages API servers for local runs and benches.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--telegram-port", type=int, default=8081, help="Telegram fake port (0: any free port)")
    parser.add_argument("--twilio-port", type=int, default=8082, help="Twilio fake port (0: any free port)")
    parser.add_argument(
        "--telegram-token",
        action="append",
        dest="telegram_tokens",
        metavar="TOKEN",
        help="accept only this bot token (repeatable; default: any token)",
    )
    parser.add_argument(
        "--twilio-account",
        action="append",
        dest="twilio_accounts",
        metavar="SID:TOKEN",
        help="accept only this account sid and auth token (repeatable; default: any credentials)",
    )
    parser.add_argument(
        "--enforce-limits",
        action="store_true",
        help="refuse with 429 what exceeds 30 msg/s per bot, 1 msg/s per chat, 80 msg/s per Twilio sender",
    )
    return parser


async def serve_until_stopped(options: argparse.Namespace, stop: asyncio.Event | None = None) -> None:
    """Run both fakes, print their URLs, and wait for SIGINT/SIGTERM (or ``stop``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    accounts = dict(entry.split(":", 1) for entry in options.twilio_accounts or [])
    try:
        async with (
            running_fake_telegram(
                options.telegram_port,
                host=options.host,
                tokens=set(options.telegram_tokens or []) or None,
                enforce_limits=options.enforce_limits,
            ) as telegram,
            running_fake_twilio(
                options.twilio_port,
                host=options.host,
                accounts=accounts or None,
                enforce_limits=options.enforce_limits,
            ) as twilio,
        ):
            print(f"TELEGRAM_API_URL={telegram.base_url}", flush=True)
            print(f"TWILIO_API_URL={twilio.base_url}", flush=True)
            print("fake APIs running; Ctrl-C to stop", file=sys.stderr, flush=True)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = build_parser()
    options = parser.parse_args(argv)
    for entry in options.twilio_accounts or []:
        if ":" not in entry:
            parser.error(f"--twilio-account must be SID:TOKEN, got {entry!r}")
    try:
        asyncio.run(serve_until_stopped(options))
    except OSError as exc:
        print(f"fake-apis: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
