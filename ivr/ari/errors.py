"""The ARI client's exception tree, drawn from what Asterisk 22 really answers.

::

    IvrError
    └── AriError                 E-ARI              any other ARI failure (e.g. 405)
        ├── AriBadRequest        E-ARI-BAD-REQUEST  400: the request's shape is wrong (a client bug)
        ├── AriAuthError         E-ARI-AUTH         401/403: wrong ari.conf user or password
        ├── AriNotFound          E-ARI-NOT-FOUND    404: channel/bridge/playback gone (often a hangup race)
        ├── AriConflict          E-ARI-CONFLICT     409/422: channel not in Stasis, wrong bridge, duplicate id
        ├── AriServerError       E-ARI-SERVER       5xx: e.g. 500 {"error": "Allocation failed"} on originate
        └── AriUnavailable       E-ARI-UNAVAILABLE  refused, reset, timed out: Asterisk is down or stuck

Errors are translated here, at the boundary, so the engine never sees aiohttp
types and can decide by class: a 404 after a hangup is routine, an auth error
needs an admin, an unavailable Asterisk is retried.  Messages carry the method
and the path only, never the query string: query parameters hold caller ids
and variable values, which are PHI in a clinic.
"""

from __future__ import annotations

from typing import Any

from ivr.errors import IvrError


class AriError(IvrError):
    """An ARI request or the events WebSocket failed.

    ``message`` is Asterisk's own text (``{"message": ...}`` or ``{"error": ...}``)
    or a short description when there was no answer; ``status`` is the HTTP
    status (``None`` when no answer came back).
    """

    error_id = "E-ARI"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        where = f"{method} {path}" if method and path else (path or method or "ARI")
        head = f"{where} -> {status}" if status is not None else where
        info = {"status": status, "method": method, "path": path, "message": message}
        info.update(details or {})
        super().__init__(f"ARI {head}: {message}", details=info)


class AriBadRequest(AriError):
    """400: Asterisk refused the request's shape (missing or invalid parameter): a client bug."""

    error_id = "E-ARI-BAD-REQUEST"


class AriAuthError(AriError):
    """401/403: the ARI user or password is wrong; retrying cannot help, an admin must fix ari.conf."""

    error_id = "E-ARI-AUTH"


class AriNotFound(AriError):
    """404: the channel, bridge or playback does not exist (usually it just ended)."""

    error_id = "E-ARI-NOT-FOUND"


class AriConflict(AriError):
    """409/422: the object is in the wrong state (channel not in Stasis, not in this bridge, duplicate id)."""

    error_id = "E-ARI-CONFLICT"


class AriServerError(AriError):
    """5xx: Asterisk failed to carry out a valid request (allocation failed, module missing)."""

    error_id = "E-ARI-SERVER"


class AriUnavailable(AriError):
    """No usable answer: connection refused or reset, or the request timed out."""

    error_id = "E-ARI-UNAVAILABLE"


def error_for_status(status: int) -> type[AriError]:
    """The exception class for an HTTP error status, as Asterisk uses them."""
    if status == 400:
        return AriBadRequest
    if status in (401, 403):
        return AriAuthError
    if status == 404:
        return AriNotFound
    if status in (409, 422):
        return AriConflict
    if status >= 500:
        return AriServerError
    return AriError


def message_from_body(body: Any, fallback: str) -> str:
    """Asterisk's error text: ``{"message": ...}`` mostly, ``{"error": ...}`` for allocation failures."""
    if isinstance(body, dict):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return fallback
