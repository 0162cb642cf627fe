"""The two Twilio REST calls the engine makes (move a waiting call to its agent, send a text), off the event loop.

The twilio library's client is synchronous, so each call runs in a worker thread
(``asyncio.to_thread``): a slow Twilio API never stalls other calls' webhooks.
``api_base`` points the client somewhere else than ``https://api.twilio.com``
(the tests' fake Twilio; a regional edge).
"""

from __future__ import annotations

import asyncio
from typing import Any

from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

TWILIO_API = "https://api.twilio.com"


class _Rebased(TwilioHttpClient):
    def __init__(self, base: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base = base.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kw: Any) -> Any:  # type: ignore[override]
        if url.startswith(TWILIO_API):
            url = self.base + url[len(TWILIO_API):]
        return super().request(method, url, *args, **kw)


class TwilioRest:
    def __init__(self, account_sid: str, auth_token: str, public_url: str, *, api_base: str | None = None,
                 timeout: float = 5.0) -> None:
        http = _Rebased(api_base, timeout) if api_base else TwilioHttpClient(timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=http)
        self.public_url = public_url.rstrip("/")

    async def redirect(self, call_sid: str, path: str) -> None:
        """Send a live call to ``path`` on the engine (it leaves ``<Enqueue>`` and fetches new TwiML)."""
        url = self.public_url + path
        await asyncio.to_thread(lambda: self.client.calls(call_sid).update(url=url, method="POST"))

    async def send_sms(self, from_: str, to: str, body: str) -> None:
        await asyncio.to_thread(lambda: self.client.messages.create(from_=from_, to=to, body=body))
