"""Asterisk AMI connector: a supervised panoramisk client, its exception tree, and presence tracking."""

from .client import (
    NEVER_RESENT,
    STABLE_AFTER,
    AmiAnswer,
    AmiClient,
    AmiConfig,
    AmiEvent,
    parse_frame,
)
from .errors import AmiActionFailed, AmiAuthError, AmiError, AmiTimeout, AmiUnavailable
from .presence import PresenceChange, PresenceTracker, read_presence

__all__ = [
    "NEVER_RESENT",
    "STABLE_AFTER",
    "AmiActionFailed",
    "AmiAnswer",
    "AmiAuthError",
    "AmiClient",
    "AmiConfig",
    "AmiError",
    "AmiEvent",
    "AmiTimeout",
    "AmiUnavailable",
    "PresenceChange",
    "PresenceTracker",
    "parse_frame",
    "read_presence",
]
