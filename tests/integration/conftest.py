"""Integration fixtures: the gateway app in-process over a real socket, against real Postgres and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.settings import Settings


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient[object, object]]:
    """An HTTP client talking to a freshly created app (its own engine and Redis client, as in production)."""
    server = TestServer(create_app(settings))
    async with TestClient(server) as http:
        yield http
