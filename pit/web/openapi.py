"""The API's OpenAPI 3 document, made from the same declarations that register its routes.

Each route of `pit/web/api.py` is added through `Routes.get` / `Routes.post`, which registers
it on the app and records what it takes (path and query parameters, a JSON body) and what it
answers (a TypedDict of `pit/web/shapes.py` per status). `document()` turns the record into
OpenAPI 3.1, the TypedDicts into JSON Schema components: the handlers are typed to return
those TypedDicts, so mypy holds the code to the document, and the schemathesis check in the
tests holds the running server to it.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

import attrs
from quart_trio import QuartTrio

F = TypeVar("F", bound=Callable[..., Any])

JSON = "application/json"


@attrs.frozen(kw_only=True)
class Operation:
    method: str
    path: str
    """In Quart's form (`/api/runs/<run_id>`)."""
    summary: str
    answers: Mapping[int, Any]
    """Status -> the TypedDict of its JSON body (or `str` for a text body, None for no body)."""
    query: Mapping[str, tuple[Any, str]] = attrs.field(factory=dict)
    """Name -> (its type or JSON Schema, what it means)."""
    body: Any = None
    """The TypedDict or JSON Schema of the JSON body taken, if any (always optional)."""
    media: str = JSON
    """The media type of the answers with a body."""


@attrs.define
class Routes:
    """Registers routes on `app` and records them for the document."""

    app: QuartTrio
    operations: list[Operation] = attrs.field(factory=list)

    def get(
        self, path: str, summary: str, answers: Mapping[int, Any], **kw: Any
    ) -> Callable[[F], F]:
        return self._route("GET", path, summary, answers, **kw)

    def post(
        self, path: str, summary: str, answers: Mapping[int, Any], **kw: Any
    ) -> Callable[[F], F]:
        return self._route("POST", path, summary, answers, **kw)

    def _route(
        self, method: str, path: str, summary: str, answers: Mapping[int, Any], **kw: Any
    ) -> Callable[[F], F]:
        self.operations.append(
            Operation(method=method, path=path, summary=summary, answers=answers, **kw)
        )
        route = self.app.route(path, methods=[method])

        def register(handler: F) -> F:
            route(handler)
            return handler

        return register

    def document(self, *, title: str, version: str, errors: Mapping[int, Any]) -> dict[str, Any]:
        """OpenAPI 3.1. `errors`: answers every operation may give (401, 403, 503...)."""
        components: dict[str, Any] = {}
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            openapi_path, names = _path(op.path)
            parameters = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in names
            ]
            parameters += [
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": meaning,
                    "schema": _schema(kind, components),
                }
                for name, (kind, meaning) in op.query.items()
            ]
            answers = {**errors, **op.answers}
            operation: dict[str, Any] = {
                "summary": op.summary,
                "operationId": f"{op.method.lower()}_{_operation_name(op.path)}",
                "parameters": parameters,
                "responses": {
                    str(status): _response(status, shape, op.media, components)
                    for status, shape in sorted(answers.items())
                },
            }
            if op.body is not None:
                operation["requestBody"] = {
                    "required": False,
                    "content": {JSON: {"schema": _schema(op.body, components)}},
                }
            paths.setdefault(openapi_path, {})[op.method.lower()] = operation
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": components,
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            },
            "security": [{"bearer": []}, {}],
        }


def _response(status: int, shape: Any, media: str, components: dict[str, Any]) -> dict[str, Any]:
    """An answer: `media` for success, JSON (an error) for the rest."""
    answer: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "answer")}
    if shape is not None:
        kind = media if status < 300 else JSON
        answer["content"] = {kind: {"schema": _schema(shape, components)}}
    return answer


_DESCRIPTIONS = {
    200: "done",
    202: "accepted",
    206: "the part asked for",
    400: "a bad parameter or body",
    401: "no token, or a wrong one",
    403: "not allowed with this token, or from this address",
    404: "no such thing",
    409: "not now: see the error",
    413: "the body is too large",
    503: "pit is stopping, busy, or cannot read its token",
}


def _path(path: str) -> tuple[str, list[str]]:
    """`/api/runs/<run_id>` -> (`/api/runs/{run_id}`, ["run_id"])."""
    names: list[str] = []
    parts = []
    for part in path.split("/"):
        if part.startswith("<") and part.endswith(">"):
            names.append(part[1:-1])
            parts.append("{" + part[1:-1] + "}")
        else:
            parts.append(part)
    return "/".join(parts), names


def _operation_name(path: str) -> str:
    return "_".join(p.strip("<>") for p in path.split("/") if p and p != "api") or "root"


def _schema(kind: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a Python type (TypedDicts become components, referred to; each
    holds its keys and no others), or `kind` itself when it is a JSON Schema already."""
    if isinstance(kind, dict):
        return kind
    if kind is None or kind is type(None):
        return {"type": "null"}
    if kind is str:
        return {"type": "string"}
    if kind is bool:
        return {"type": "boolean"}
    if kind is int:
        return {"type": "integer"}
    if kind is float:
        return {"type": "number"}
    if kind is Any:
        return {}
    origin = get_origin(kind)
    if origin is Literal:
        return {"enum": list(get_args(kind))}
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_schema(arg, components) for arg in get_args(kind)]}
    if origin is list:
        (item,) = get_args(kind)
        return {"type": "array", "items": _schema(item, components)}
    if origin is dict:
        _, value = get_args(kind)
        return {"type": "object", "additionalProperties": _schema(value, components)}
    if typing.is_typeddict(kind):
        name = kind.__name__
        if name not in components:
            components[name] = {}  # a placeholder first: a TypedDict may refer to itself
            hints = typing.get_type_hints(kind)
            components[name] = {
                "type": "object",
                "properties": {key: _schema(hint, components) for key, hint in hints.items()},
                "required": sorted(kind.__required_keys__),
                "additionalProperties": False,
            }
        return {"$ref": f"#/components/schemas/{name}"}
    raise TypeError(f"no JSON Schema for {kind!r}")
