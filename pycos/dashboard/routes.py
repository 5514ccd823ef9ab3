"""What each path of the dashboard answers: the page, its assets and the JSON twins.

Owns ``Reply`` (status, content type, body, extra headers), ``HEADERS`` (sent with every
answer: a Content-Security-Policy of ``default-src 'self'``, ``nosniff``, no caching, no
framing, and never a CORS header), ``answer`` (a request's path and query to a ``Reply``,
used with ``yield`` because a picture may have to be asked of the node's scheduler),
``paginate`` and the JSON encoding. Paths are looked up in a fixed table: nothing is ever read
from the file system, so no path can reach a file. Imports the standard library and its own
package.

JSON twins (every one takes ``?offset=N&limit=M``, ``M`` at most the page size, for its list):
``/api/v1/overview``, ``peers``, ``tasks``, ``channels``, ``topics``, ``services``,
``transfers``, ``counters``, ``snapshot`` (every section, each list cut at one page),
``graph`` (the mesh as JSON) and ``graph.svg``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from . import assets

__all__ = ["Reply", "HEADERS", "answer", "paginate", "error", "to_json", "SECTIONS", "CSP"]

CSP = ("default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
       "object-src 'none'")
#: Headers of every answer.
HEADERS = [
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("Server", "pycos-dashboard"),
]
JSON_TYPE = "application/json; charset=utf-8"
#: Each section's list that ``offset`` / ``limit`` page through (None: the section is a list).
SECTIONS: dict[str, str | None] = {
    "overview": "features", "peers": None, "tasks": "by_name", "channels": "registered",
    "topics": "topics", "services": "module_services", "transfers": "files_by_source",
    "counters": "",
}
REASONS = {200: b"OK", 303: b"See Other", 400: b"Bad Request", 401: b"Unauthorized",
           404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
           413: b"Content Too Large", 421: b"Misdirected Request",
           431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


@dataclass
class Reply:
    """One answer."""

    status: int
    content_type: str
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def reason(self) -> bytes:
        return REASONS.get(self.status, b"")


def to_json(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (anything not JSON-native as its ``repr``, a number
    that is not finite as null)."""
    try:
        text = json.dumps(value, separators=(",", ":"), default=repr, allow_nan=False,
                          ensure_ascii=False)
    except ValueError:
        text = json.dumps(_finite(value), separators=(",", ":"), default=repr,
                          allow_nan=False, ensure_ascii=False)
    return text.encode("utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    """A JSON error answer."""
    return Reply(status, JSON_TYPE, to_json({"error": message, "status": status}),
                 headers or [])


def _query(query: str, page_size: int) -> tuple[int, int]:
    """``(offset, limit)`` from a query string; ValueError when malformed."""
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, max_num_fields=8)
    offset, limit = 0, page_size
    for key, value in pairs:
        if key not in ("offset", "limit", "t"):
            raise ValueError(f"unknown parameter {key[:40]!r}")
        if key == "t":
            continue
        if not value.isdigit() or len(value) > 9:
            raise ValueError(f"{key} must be a non-negative integer")
        if key == "offset":
            offset = int(value)
        else:
            limit = int(value)
    if not 1 <= limit <= page_size:
        raise ValueError(f"limit must be in 1..{page_size}")
    return offset, limit


def paginate(section: str, value: Any, offset: int, limit: int, page_size: int) -> Any:
    """``value`` of ``section`` with its list cut to ``[offset:offset+limit]`` (and its total
    said), every other list cut to one page."""
    key = SECTIONS.get(section)
    if isinstance(value, list):
        return {"items": [_cap(v, page_size) for v in value[offset:offset + limit]],
                "total": len(value), "offset": offset, "limit": limit}
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k == key and isinstance(v, list | dict):
            items = list(v.items()) if isinstance(v, dict) else v
            page = items[offset:offset + limit]
            out[k] = dict(page) if isinstance(v, dict) else [_cap(x, page_size) for x in page]
            out[f"{k}_total"] = len(items)
        else:
            out[k] = _cap(v, page_size)
    if key:
        out["offset"], out["limit"] = offset, limit
    return out


def _cap(value: Any, page_size: int) -> Any:
    if isinstance(value, list):
        return [_cap(v, page_size) for v in value[:page_size]]
    if isinstance(value, dict):
        items = list(value.items())[:page_size]
        return {k: _cap(v, page_size) for k, v in items}
    return value


def answer(path: str, query: str, snapshots: Any, page_size: int
           ) -> Generator[Any, Any, Reply]:
    """Use with yield: the ``Reply`` to ``GET path?query``."""
    static = assets.STATIC.get(path)
    if static is not None:
        content_type, body = static
        return Reply(200, content_type, body)
    if path in ("/api/v1", "/api/v1/"):
        return Reply(200, JSON_TYPE, to_json({
            "sections": [f"/api/v1/{s}" for s in SECTIONS],
            "also": ["/api/v1/snapshot", "/api/v1/graph", "/api/v1/graph.svg"],
            "paging": f"?offset=N&limit=M (M <= {page_size})"}))
    if not path.startswith("/api/v1/"):
        return error(404, "no such page")
    name = path[len("/api/v1/"):]
    try:
        offset, limit = _query(query, page_size)
    except ValueError as exc:
        return error(400, str(exc))
    if name == "graph.svg":
        svg = yield from snapshots.mesh_svg()
        return Reply(200, "image/svg+xml; charset=utf-8", svg)
    if name == "graph":
        graph, version = yield from snapshots.mesh_graph()
        data = graph.to_dict() if graph is not None else {"nodes": [], "edges": []}
        data = paginate("graph", data, 0, page_size, page_size)
        data["version"] = version
        return Reply(200, JSON_TYPE, to_json(data))
    if name != "snapshot" and name not in SECTIONS:
        return error(404, "no such section")
    picture = yield from snapshots.picture()
    meta = {k: picture.get(k) for k in ("stale", "age", "busy_for", "taken_at")}
    if name == "snapshot":
        every = {s: paginate(s, picture.get(s), 0, page_size, page_size) for s in SECTIONS}
        return Reply(200, JSON_TYPE, to_json({**every, **meta}))
    section = paginate(name, picture.get(name), offset, limit, page_size)
    return Reply(200, JSON_TYPE, to_json({name: section, **meta}))
