"""Asterisk ARI connector: a thin REST + events-WebSocket client and its exception tree."""

from .client import RECONNECTED, AriClient, AriConfig
from .errors import (
    AriAuthError,
    AriBadRequest,
    AriConflict,
    AriError,
    AriNotFound,
    AriServerError,
    AriUnavailable,
)

__all__ = [
    "RECONNECTED",
    "AriAuthError",
    "AriBadRequest",
    "AriClient",
    "AriConfig",
    "AriConflict",
    "AriError",
    "AriNotFound",
    "AriServerError",
    "AriUnavailable",
]
