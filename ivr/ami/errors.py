"""The AMI client's exception tree, drawn from what Asterisk 22's manager really answers.

::

    IvrError
    └── AmiError                E-AMI              any other AMI failure
        ├── AmiAuthError        E-AMI-AUTH         Login refused ("Authentication failed"): fix manager.conf
        ├── AmiUnavailable      E-AMI-UNAVAILABLE  no connection: refused, dropped, not yet (re)logged in
        ├── AmiTimeout          E-AMI-TIMEOUT      connected, but no answer within the action timeout
        └── AmiActionFailed     E-AMI-ACTION       ``Response: Error``; ``message`` is Asterisk's ``Message``

panoramisk and OS errors are translated here, at the boundary, so the engine
decides by class: an auth error needs an admin (never retried), an
unavailable Asterisk is retried by the supervisor, a failed action is a
business answer ("No such channel").

``outcome_unknown`` is set when a request may or may not have been carried
out: the connection dropped (or the timeout struck) after the action left.
For an ``Originate`` that means a call may be ringing; the engine must look
(``Status``, ARI ``GET /channels``) rather than retry blindly.

Messages carry the action *name* and ActionID only, never field values:
AMI fields hold caller numbers, names and variables, which are PHI.
"""

from __future__ import annotations

from typing import Any

from ivr.errors import IvrError

__all__ = ["AmiActionFailed", "AmiAuthError", "AmiError", "AmiTimeout", "AmiUnavailable"]


class AmiError(IvrError):
    """An AMI action, login or connection failed.

    ``message`` is Asterisk's own ``Message`` text when Asterisk answered, or a
    short description otherwise; ``action`` the action name (``Originate``),
    ``action_id`` its ActionID when one was sent.
    """

    error_id = "E-AMI"

    def __init__(
        self,
        message: str,
        *,
        action: str | None = None,
        action_id: str | None = None,
        outcome_unknown: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message
        self.action = action
        self.action_id = action_id
        self.outcome_unknown = outcome_unknown
        where = f"AMI {action}" if action else "AMI"
        info: dict[str, Any] = {"action": action, "action_id": action_id, "message": message,
                                "outcome_unknown": outcome_unknown}
        info.update(details or {})
        super().__init__(f"{where}: {message}", details=info)


class AmiAuthError(AmiError):
    """Asterisk refused the Login: wrong manager.conf user or secret; retrying only fills the security log."""

    error_id = "E-AMI-AUTH"


class AmiUnavailable(AmiError):
    """No usable connection: refused, dropped before the answer, or not (re)logged in yet."""

    error_id = "E-AMI-UNAVAILABLE"


class AmiTimeout(AmiError):
    """The connection is up but Asterisk did not answer within the timeout (a stuck or overloaded manager)."""

    error_id = "E-AMI-TIMEOUT"


class AmiActionFailed(AmiError):
    """Asterisk answered ``Response: Error``: ``message`` is its ``Message`` (e.g. ``No such channel``)."""

    error_id = "E-AMI-ACTION"
