"""Engine and session factory: made once per process (gateway app or worker), never per request or job."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

#: Every connection of ours says who it is and reasons in UTC, and none can pin locks for long: a transaction left
#: open and idle (its process killed while something still held its socket, a bug awaiting the network inside a
#: transaction) is ended by PostgreSQL after 15 s, and a peer that vanished without closing its socket is noticed
#: by TCP keepalives within about a minute.
SESSION_SETTINGS = {
    "application_name": "frontdesk",
    "timezone": "UTC",
    "idle_in_transaction_session_timeout": "15s",
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}


#: What a statement raises when the database is away (restarting, crashed, the connection cut) rather than because
#: of the statement: worth trying again on a new connection once it is back.
DATABASE_AWAY: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    ConnectionError,
)

#: Anything the database layer raises when a statement could not be done (the database away, a pool with no free
#: connection, a statement refused): for callers outside the db package that answer "try again" rather than fail.
DATABASE_FAILED: tuple[type[BaseException], ...] = (sa_exc.SQLAlchemyError, *DATABASE_AWAY)


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An asyncpg engine; ``url`` must be ``postgresql+asyncpg://…``."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per checkout on the webhook's hot path; a connection that died is
        # invalidated on its first error and replaced, and /health reports the database's state.
        pool_pre_ping=False,
        pool_recycle=1800,
        echo=echo,
        connect_args={"server_settings": dict(SESSION_SETTINGS)},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


#: The type services take: an open SQLAlchemy async session (services never import sqlalchemy themselves).
Db = AsyncSession


async def check_connection(url: str, *, seconds: float = 5.0) -> None:
    """Connect once and run SELECT 1; raise ConnectionError with a readable reason when that fails."""
    engine = create_async_engine(url, pool_size=1, connect_args={"timeout": seconds})
    try:
        async with asyncio.timeout(seconds + 1), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        where = make_url(url).render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc
        raise ConnectionError(f"cannot reach the database {where}: {type(reason).__name__}: {reason}") from None
    finally:
        await engine.dispose()


#: The session factory a process keeps (gateway app, worker runtime).
Sessions = async_sessionmaker[AsyncSession]
#: The engine a process keeps (gateway app, worker runtime); the processes name it with this, not SQLAlchemy's.
Engine = AsyncEngine


async def database_name(engine: Engine) -> str:
    """One round trip to the database: its name (SELECT current_database()); raises when it cannot be reached."""
    async with engine.connect() as conn:
        return str((await conn.execute(text("SELECT current_database()"))).scalar_one())


def on_connect(engine: Engine, callback: Callable[[], None]) -> None:
    """Call ``callback`` each time the engine opens a new database connection (a worker counts them)."""
    event.listen(engine.sync_engine, "connect", lambda *_: callback())
