"""The staff JSON API's route table: one declaration per endpoint gives routing, validation, roles and OpenAPI.

A handler is declared with the pydantic models that validate its query and body and describe its response; the
same models generate ``GET /api/v1/openapi.json``, so the document cannot drift from what is enforced.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.errors import ApiError

MAX_JSON_BODY = 256 * 1024
M = TypeVar("M", bound=BaseModel)
ALL_ROLES = frozenset({"owner", "admin", "staff", "doctor"})

ApiHandler = Callable[..., Awaitable[Any]]
Authenticator = Callable[[web.Request, frozenset[str]], Awaitable[None]]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: ApiHandler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    roles: frozenset[str] = ALL_ROLES
    auth: bool = True
    status: int = 200
    errors: tuple[int, ...] = ()


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


@dataclass
class Api:
    """Collects endpoints; ``register`` adds them to an app, ``openapi`` describes them."""

    prefix: str = "/api/v1"
    title: str = "Frontdesk staff API"
    version: str = "1"
    endpoints: list[Endpoint] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        roles: Iterable[str] = ALL_ROLES,
        auth: bool = True,
        status: int = 200,
        errors: tuple[int, ...] = (),
    ) -> Callable[[ApiHandler], ApiHandler]:
        def decorate(handler: ApiHandler) -> ApiHandler:
            self.endpoints.append(
                Endpoint(
                    method.upper(),
                    path,
                    handler,
                    summary,
                    tag,
                    body,
                    query,
                    response,
                    frozenset(roles),
                    auth,
                    status,
                    errors,
                )
            )
            return handler

        return decorate

    def register(self, app: web.Application, authenticate: Authenticator) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, self.prefix + endpoint.path, _wrap(endpoint, authenticate))

    def openapi(self, *, server_url: str = "") -> dict[str, Any]:
        components: dict[str, Any] = {}
        paths: dict[str, Any] = {}

        def ref(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)  # type: ignore[arg-type]
            components.update(schema.pop("$defs", {}))
            components[model.__name__] = schema
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        error_ref = ref(ErrorResponse, "serialization")
        for ep in self.endpoints:
            op: dict[str, Any] = {
                "summary": ep.summary,
                "tags": [ep.tag],
                "operationId": ep.handler.__name__,
                "responses": {},
            }
            params = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}
                for name in _path_params(ep.path)
            ]
            if ep.query is not None:
                schema = ep.query.model_json_schema()
                required = set(schema.get("required", []))
                for name, prop in schema.get("properties", {}).items():
                    params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
            if params:
                op["parameters"] = params
            if ep.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref(ep.body)}},
                }
            ok: dict[str, Any] = {"description": "OK"}
            if ep.response is not None:
                ok["content"] = {"application/json": {"schema": ref(ep.response, "serialization")}}
            op["responses"][str(ep.status)] = ok
            codes = set(ep.errors)
            if ep.body is not None or ep.query is not None:
                codes |= {400, 422}
            if ep.auth:
                codes |= {401, 403}
                op["security"] = [{"bearer": []}]
                op["x-roles"] = sorted(ep.roles)
            for code in sorted(codes):
                op["responses"][str(code)] = {
                    "description": "Error",
                    "content": {"application/json": {"schema": error_ref}},
                }
            paths.setdefault(self.prefix + ep.path, {})[ep.method.lower()] = op
        document: dict[str, Any] = {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": self.version},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
        }
        if server_url:
            document["servers"] = [{"url": server_url}]
        return document


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _wrap(ep: Endpoint, authenticate: Authenticator) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if ep.auth:
            await authenticate(request, ep.roles)
        kwargs: dict[str, Any] = {}
        for name in _path_params(ep.path):
            raw = request.match_info[name]
            if not raw.isdigit() or len(raw) > 12:
                raise ApiError(404, "not_found", f"There is no {name.removesuffix('_id')} {raw!r}.")
            kwargs[name] = int(raw)
        if ep.query is not None:
            try:
                kwargs["query"] = ep.query.model_validate(dict(request.query))
            except ValidationError as exc:
                raise ApiError(
                    422,
                    "invalid_query",
                    "Some query parameters are invalid.",
                    details=validation_details(exc),
                ) from None
        if ep.body is not None:
            kwargs["body"] = await read_json_body(request, ep.body)
        result = await ep.handler(request, **kwargs)
        if isinstance(result, web.StreamResponse):
            return result
        if isinstance(result, BaseModel):
            payload: Any = result.model_dump(mode="json")
        else:
            payload = result
        return web.json_response(payload, status=ep.status)

    handle.__name__ = ep.handler.__name__
    return handle


async def read_json_body(request: web.Request, model: type[M]) -> M:
    """Read and validate a JSON body: 413 when too large, 400 when not JSON, 422 when it does not fit the model."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise ApiError(413, "too_large", f"The body is larger than {MAX_JSON_BODY // 1024} KiB.")
    raw = await request.content.read(MAX_JSON_BODY + 1)
    if len(raw) > MAX_JSON_BODY:
        raise ApiError(413, "too_large", f"The body is larger than {MAX_JSON_BODY // 1024} KiB.")
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_body", "Some fields are invalid.", details=validation_details(exc)) from None
