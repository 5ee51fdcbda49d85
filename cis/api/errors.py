"""The one aiohttp middleware that turns CIS errors into JSON responses, and the request
id middleware. Anything unexpected is logged with its traceback and answered 500 with
the request id, never with internals."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from cis.domain import errors

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.AppKey("request_id_header", str)


def error_response(exc: errors.CisError, request_id: str) -> web.Response:
    body = exc.to_json()
    body["error"]["requestId"] = request_id
    headers = {"X-Request-Id": request_id}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(int(retry_after))
    return web.json_response(body, status=exc.http_status, headers=headers)


@web.middleware
async def request_id_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex[:16]
    request["request_id"] = request_id
    try:
        response = await handler(request)
    except errors.CisError as exc:
        if exc.http_status >= 500:
            log.warning("%s %s -> %s: %s [%s]", request.method, request.path, exc.code, exc, request_id)
        return error_response(exc, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status, "http_error")
        body = {"error": {"code": code, "message": exc.reason, "requestId": request_id}}
        return web.json_response(body, status=exc.status, headers={"X-Request-Id": request_id})
    except Exception:
        log.exception("unhandled error in %s %s [%s]", request.method, request.path, request_id)
        body = {"error": {"code": "internal", "message": "internal error", "requestId": request_id}}
        return web.json_response(body, status=500, headers={"X-Request-Id": request_id})
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    return response


async def read_json(request: web.Request) -> object:
    """The request body as JSON; malformed JSON is the client's error, naming the body."""
    if not request.can_read_body:
        raise errors.InvalidInput("", "a JSON body is required")
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput("", f"the body is not valid JSON: {exc}") from exc
