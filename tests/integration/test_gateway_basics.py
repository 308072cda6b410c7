"""The gateway's operational surface: health with real checks, metrics, OpenAPI, request ids, readable errors."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from devtools import harness
from gateway.app import create_app
from infra.settings import Settings


async def test_health_reports_ok_when_postgres_and_redis_answer(client: TestClient[object, object]) -> None:
    response = await client.get("/health")
    body = await response.json()
    # The other parts (ingest, workers, outbox, transactions) judge this run's shared database, which other tests
    # leave in all sorts of states: tests/integration/test_health_truth.py checks them on a database of its own.
    assert body["database"] == "ok" and body["redis"] == "ok"
    assert body["status"] == ("ok" if response.status == 200 else "unavailable")


async def test_health_is_503_when_redis_is_unreachable(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"REDIS_URL": f"redis://127.0.0.1:{harness.free_port()}/0"})
    async with TestClient(TestServer(create_app(nowhere))) as http:
        response = await http.get("/health")
        assert response.status == 503
        body = await response.json()
        assert (body["status"], body["database"], body["redis"]) == ("unavailable", "ok", "unavailable")
        assert body["workers"].startswith("unknown")  # their records are in Redis


async def test_health_is_503_when_postgres_is_unreachable(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{harness.free_port()}/x"})
    async with TestClient(TestServer(create_app(nowhere))) as http:
        response = await http.get("/health")
        assert response.status == 503
        assert (await response.json())["database"] == "unavailable"


async def test_metrics_are_prometheus_text_and_count_requests(client: TestClient[object, object]) -> None:
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    body = await response.text()
    assert 'frontdesk_http_requests_total{method="GET",route="/health",status="200"}' in body


async def test_every_response_carries_a_request_id_and_a_given_one_is_kept(
    client: TestClient[object, object],
) -> None:
    generated = await client.get("/health")
    assert len(generated.headers["X-Request-ID"]) == 32
    kept = await client.get("/health", headers={"X-Request-ID": "front-desk-42"})
    assert kept.headers["X-Request-ID"] == "front-desk-42"
    unsafe = await client.get("/health", headers={"X-Request-ID": "<script>"})
    assert unsafe.headers["X-Request-ID"] != "<script>"


async def test_api_errors_are_json_and_pages_are_readable(client: TestClient[object, object]) -> None:
    api = await client.get("/api/v1/no-such-thing")
    assert api.status == 404
    assert (await api.json())["error"]["code"] == "not_found"
    page = await client.get("/no-such-page")
    assert page.status == 404
    assert "text/html" in page.headers["Content-Type"]
    assert "There is nothing here" in await page.text()


async def test_bad_json_and_wrong_shapes_get_400_and_422_not_500(client: TestClient[object, object]) -> None:
    broken = await client.post("/api/v1/auth/login", data=b"{not json")
    assert broken.status == 400
    assert (await broken.json())["error"]["code"] == "invalid_json"
    wrong = await client.post("/api/v1/auth/login", json={"code": 12345})
    assert wrong.status == 422
    body = await wrong.json()
    assert body["error"]["code"] == "invalid_body"
    assert body["error"]["details"][0]["field"] == "code"
    huge = await client.post("/api/v1/auth/login", data=b"x" * (2 * 1024 * 1024))
    assert huge.status == 413


async def test_the_openapi_document_describes_every_api_route_from_its_models(
    client: TestClient[object, object],
) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.")
    login = document["paths"]["/api/v1/auth/login"]["post"]
    schema_ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    login_schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert login_schema["properties"]["code"]["maxLength"] == 40
    assert "422" in login["responses"]
    routes = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()  # type: ignore[union-attr]
        if route.resource is not None and route.resource.canonical.startswith("/api/v1/") and route.method != "HEAD"
    }
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert routes - {("GET", "/api/v1/openapi.json")} == documented


async def test_a_request_that_meets_a_restarting_database_gets_503_with_retry_after_not_500(settings: Settings) -> None:
    """PostgreSQL restarting (or out of reach) is a moment's wait: providers and browsers are told to come back."""
    nowhere = settings.model_copy(update={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{harness.free_port()}/x"})
    async with TestClient(TestServer(create_app(nowhere))) as http:
        api = await http.get("/api/v1/leads", headers={"Authorization": "Bearer nobody"})
        page = await http.get("/book")
    for response in (api, page):
        assert response.status == 503 and response.headers["Retry-After"] == "5", response.status
