"""The staff JSON API's route table: one declaration per endpoint gives routing, validation, roles and OpenAPI.

A handler is declared with the pydantic models that validate its query and body and describe its response; the
same models generate ``GET /api/v1/openapi.json``, so the document cannot drift from what is enforced. Path ids take
their type from the handler's signature (``lead_id: int`` is an :data:`~gateway.api.fields.Id`; annotate a
``bigint`` id as :data:`~gateway.api.fields.BigId`).

Every way in is checked here, once for all endpoints: a path id out of its column's range, a query string or JSON
body holding a NUL or a lone surrogate (no database can store them), a JSON ``true`` where a number belongs: 422.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from booking_core.domain.text import unstorable_at
from gateway.api.fields import Id
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


def path_types(handler: ApiHandler, path: str) -> dict[str, TypeAdapter[Any]]:
    """The validator of each ``{name}`` in ``path``: the handler's annotation, :data:`Id` for a plain ``int``."""
    hints = typing.get_type_hints(handler, include_extras=True)
    return {name: TypeAdapter(Id if hints.get(name, int) is int else hints[name]) for name in _path_params(path)}


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

        def schema_of(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)  # type: ignore[arg-type]
            components.update(schema.pop("$defs", {}))
            return schema

        def ref(model: type[BaseModel], mode: str = "validation") -> dict[str, Any]:
            components[model.__name__] = schema_of(model, mode)
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
                {"name": name, "in": "path", "required": True, "schema": adapter.json_schema()}
                for name, adapter in path_types(ep.handler, ep.path).items()
            ]
            if ep.query is not None:
                schema = schema_of(ep.query)
                required = set(schema.get("required", []))
                for name, prop in schema.get("properties", {}).items():
                    params.append({"name": name, "in": "query", "required": name in required, "schema": _given(prop)})
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
            if params:  # a path id that is not one, or out of its column's range
                codes |= {422}
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


def _given(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without its ``null`` branch: a query string cannot say null, only leave it out."""
    branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) != 1:
        return prop
    rest = {key: value for key, value in prop.items() if key not in ("anyOf", "default")}
    return {**branches[0], **rest}


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{") and part.endswith("}")]


def _wrap(ep: Endpoint, authenticate: Authenticator) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    paths = path_types(ep.handler, ep.path)

    async def handle(request: web.Request) -> web.StreamResponse:
        if ep.auth:
            await authenticate(request, ep.roles)
        kwargs: dict[str, Any] = {name: path_value(request, name, adapter) for name, adapter in paths.items()}
        if ep.query is not None:
            kwargs["query"] = read_query(request, ep.query)
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


def path_value(request: web.Request, name: str, adapter: TypeAdapter[Any]) -> Any:
    """A path id, validated by its type: 422 for one that is not a whole number in its column's range."""
    raw = request.match_info[name]
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        details = [{**detail, "field": name} for detail in validation_details(exc)]
        raise ApiError(422, "invalid_path", f"{name} is not a valid id.", details=details) from None


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string validated by ``model``: 422 when it does not fit, or holds text no database can store.

    Query values are text, so numbers in them are read as numbers (lax); their ranges are the model's."""
    values = dict(request.query)
    _refuse_unstorable(values, "invalid_query", "query")
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ApiError(
            422, "invalid_query", "Some query parameters are invalid.", details=validation_details(exc)
        ) from None


async def read_json_body(request: web.Request, model: type[M]) -> M:
    """Read and validate a JSON body: 413 when too large, 400 when not JSON, 422 when it does not fit the model.

    Validated strictly, as JSON: ``true`` is not a number, ``"5"`` not an integer, ``1.0`` not an id."""
    return _validated(await _raw_body(request), model)


async def read_optional_json_body(request: web.Request, model: type[M]) -> M | None:
    """:func:`read_json_body` for a body that may be left out (None then), e.g. a DELETE's confirmation."""
    raw = await _raw_body(request)
    return _validated(raw, model) if raw.strip() else None


async def _raw_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise ApiError(413, "too_large", f"The body is larger than {MAX_JSON_BODY // 1024} KiB.")
    raw = await request.content.read(MAX_JSON_BODY + 1)
    if len(raw) > MAX_JSON_BODY:
        raise ApiError(413, "too_large", f"The body is larger than {MAX_JSON_BODY // 1024} KiB.")
    return raw


def _validated(raw: bytes, model: type[M]) -> M:
    data = json_object(raw)
    _refuse_unstorable(data, "invalid_body", "body")
    try:
        return model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise ApiError(422, "invalid_body", "Some fields are invalid.", details=validation_details(exc)) from None


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object; 400 when it is not JSON, or not an object."""
    try:
        data = json.loads(raw or b"null", parse_constant=_not_json)
    except (ValueError, RecursionError):  # not JSON, not UTF-8 (a ValueError too), absurdly nested
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return data


def _not_json(constant: str) -> None:
    """Python's json reads NaN and Infinity; JSON has no such numbers."""
    raise ValueError(f"{constant} is not a JSON number")


def _refuse_unstorable(data: Mapping[str, Any], code: str, where: str) -> None:
    try:
        found = unstorable_at(data)
    except RecursionError:  # json.loads nests less deeply than this walk may: treat as unreadable
        raise ApiError(400, "invalid_json", "The body is nested too deeply.") from None
    if found is not None:
        place = ".".join(str(part) for part in found) or where
        raise ApiError(
            422,
            code,
            "Text may not hold NUL characters or unpaired surrogates.",
            details=[{"field": place, "message": "NUL or unpaired surrogate", "type": "unstorable_text"}],
        )
