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


API_FIELDS = frozenset({"reason", "after_call"})  # what the agent API's write calls read from a body


def _flag(value: Any) -> bool | None:
    """A yes/no field from JSON (true/false) or a form ("true", "1", "on", ...); None when it is neither."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    return None


def add_agent_api(app: web.Application, routing: Any, *, token: str | None,
                  fan_out: Callable[[list[Any]], None] | None = None) -> None:
    """The operations API for agent state: what agents' desktop apps and supervisors call.

    ``GET /api/agents``; ``POST /api/agents/{id}/login|ready|pause|logout`` (pause takes ``reason``,
    one of the not-ready reasons; pause and logout take ``after_call: true`` to happen when the agent's
    current call and wrap-up end, never letting the router offer another call in between). Every request needs ``Authorization: Bearer <IVR_API_TOKEN>``; with no
    token configured the API answers 503. Changes go through the live engine's router, so an agent made
    ready is offered a waiting call at once, on Asterisk or Twilio (``fan_out`` hands the decisions to
    the adapters).
    """
    import hmac

    from agents.state import NOT_READY_REASONS, Status
    from ivr.errors import IvrError

    def authorized(request: web.Request) -> None:
        if not token:
            raise web.HTTPServiceUnavailable(text="the operations API is off: set IVR_API_TOKEN to enable it")
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode(), token.encode()):
            raise web.HTTPUnauthorized(text="missing or wrong bearer token",
                                       headers={"WWW-Authenticate": 'Bearer realm="ivr"'})

    def state_json(st: Any) -> dict[str, Any]:
        after = routing.router.after_call_to.get(st.agent_id)
        return {"agent": st.agent_id, "status": st.status.value, "reason": st.reason,
                "since": st.since.isoformat() if st.since else None, "missed": st.missed,
                "after_call": {"status": after[0].value, "reason": after[1]} if after else None}

    async def list_agents(request: web.Request) -> web.Response:
        authorized(request)
        return web.json_response([state_json(st) for _, st in routing.agent_states()])

    async def change(request: web.Request) -> web.Response:
        authorized(request)
        agent, action = request.match_info["agent"], request.match_info["action"]
        if agent not in routing.router.agents:
            return web.json_response({"error": "E-AGENT-UNKNOWN", "message": f"no agent {agent!r} in the roster"},
                                     status=404)
        body, problem = await read_fields(request)
        if problem is not None:
            return web.json_response({"error": "E-API-BODY", "message": problem}, status=400)
        after_call = _flag(body.get("after_call", False))
        if after_call is None:
            return web.json_response({"error": "E-API-BODY", "message": "after_call must be true or false "
                                      f"(got {str(body.get('after_call'))[:40]!r})"}, status=400)
        reason: str | None = None
        if action == "pause":
            reason = str(body.get("reason", ""))
            if reason not in NOT_READY_REASONS:
                return web.json_response({"error": "E-AGENT-REASON", "message": "reason must be one of "
                                          + ", ".join(NOT_READY_REASONS)}, status=400)
        if after_call and action not in ("pause", "logout"):
            return web.json_response({"error": "E-API-AFTER-CALL", "message": "after_call applies to pause and "
                                      "logout only"}, status=400)
        try:
            if after_call:  # "not ready after this call": at once if the agent is free, else when wrap-up ends
                to = Status.NOT_READY if action == "pause" else Status.LOGGED_OUT
                decisions = await routing.after_call(agent, to, reason=reason)
            else:
                decisions = await getattr(routing, action)(*((agent, reason) if action == "pause" else (agent,)))
        except IvrError as exc:
            if fan_out is not None:
                fan_out(getattr(exc, "due", []))
            return web.json_response({"error": exc.error_id, "message": str(exc)}, status=409)
        if fan_out is not None:
            fan_out(decisions)
        return web.json_response(state_json(routing.router.agents[agent]))

    async def read_fields(request: web.Request) -> tuple[dict[str, Any], str | None]:
        """The request's fields from a JSON object or a form; (fields, None) or ({}, what is wrong).

        Strict on purpose: a field the API does not know (``curl -d '{"after_call": true}'`` sends JSON as
        a form field name) is refused rather than ignored, since ignoring it would turn "after this
        call" into "now".
        """
        if not request.can_read_body:
            return {}, None
        ctype = request.content_type
        if ctype == "application/json":
            try:
                raw = await request.json()
            except ValueError:
                return {}, "the body is not valid JSON"
            if not isinstance(raw, dict):
                return {}, "send a JSON object"
            fields: dict[str, Any] = raw
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            fields = dict(await request.post())
        else:
            return {}, f"send JSON (application/json) or a form, not {ctype}"
        unknown = sorted(set(fields) - API_FIELDS)
        if unknown:
            return {}, f"unknown field(s) {', '.join(repr(k[:40]) for k in unknown)}; known: {', '.join(sorted(API_FIELDS))}"
        return fields, None

    app.router.add_get("/api/agents", list_agents)
    app.router.add_post(r"/api/agents/{agent}/{action:login|ready|pause|logout}", change)
