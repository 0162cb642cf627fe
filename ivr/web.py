"""The engine's web endpoints, one aiohttp application: health now; Twilio webhooks and operations later.

``GET /health`` is for load balancers and monitoring: it answers without
authentication, so it shows counts and connection states only, never a call's
details. It is 200 while the engine can take calls (the store answers and, when
Asterisk is configured, the events socket is up) and 503 otherwise, so a probe
that fails means "send calls elsewhere" (the dialplan fallback does that by itself).
"""

from __future__ import annotations

from typing import Any, Callable

from aiohttp import web

HealthFn = Callable[[], Any]


def build_app(health: HealthFn, *, client_max_size: int = 1024 * 1024) -> web.Application:
    app = web.Application(client_max_size=client_max_size)

    async def get_health(_: web.Request) -> web.Response:
        report = await health()
        return web.json_response(report, status=200 if report.get("status") == "ok" else 503)

    app.router.add_get("/health", get_health)
    return app
