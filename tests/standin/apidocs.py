"""ARI API description loader and request validator.

``validate(method, path, query, body)`` returns a :class:`Route` (the request is
accepted by Asterisk; ``route.warnings`` lists contract problems that Asterisk
itself tolerates, e.g. unknown query parameters or a non-integer ``int``) or an
:class:`ApiError` carrying the status and JSON body real Asterisk 22 answers.

Rules that only exist in Asterisk's handlers (not in the Swagger description)
but were observed in ``f_error_responses.jsonl`` are in ``HANDLER_RULES``.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any


def shared_dir() -> Path | None:
    """Locate ``shared/asterisk``: beside the clone (CI) or /work/shared."""
    here = Path(__file__).resolve()
    candidates = []
    env = os.environ.get("ASTERISK_SHARED_DIR")
    if env:
        candidates.append(Path(env))
    # tests/standin/apidocs.py -> parents[2] is the repo root, parents[3] its parent
    for up in (2, 3):
        if len(here.parents) > up:
            candidates.append(here.parents[up] / "shared" / "asterisk")
    candidates.append(Path("/work/shared/asterisk"))
    for c in candidates:
        if (c / "ari-api-docs").is_dir():
            return c
    return None


@dataclass
class ApiError:
    status: int
    body: Any
    reason: str = ""
    headers: dict = field(default_factory=dict)
    # False when the exact answer was not observed in the transcripts (a guess)
    recorded: bool = True
    nickname: str | None = None

    def __bool__(self) -> bool:  # an error is "falsy" as a verdict
        return False


@dataclass
class Route:
    nickname: str
    resource: str  # channels, bridges, ...
    template: str  # /channels/{channelId}/play
    method: str
    path_params: dict
    query: dict  # normalized: name -> str | list[str]
    body: Any
    response_class: str
    operation: dict
    warnings: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return True


REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 412: "Precondition Failed", 422: "Unprocessable Entity",
           500: "Internal Server Error"}


def _err(status, message=None, key="message", recorded=True, **kw) -> ApiError:
    body = None if message is None else {key: message}
    return ApiError(status, body, REASONS.get(status, ""), recorded=recorded, **kw)


class _Node:
    def __init__(self):
        self.literal: dict[str, _Node] = {}
        self.var: tuple[str, _Node] | None = None
        self.ops: dict[str, dict] = {}
        self.template = ""
        self.resource = ""


class ApiDocs:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.root = _Node()
        self.models: dict[str, dict] = {}
        self.resources: dict[str, dict] = {}
        for f in sorted(self.folder.glob("*.json")):
            doc = json.loads(f.read_text())
            if "models" in doc:
                self.models.update(doc["models"])
            if f.stem == "resources":
                continue
            self.resources[f.stem] = doc
            for api in doc.get("apis", []):
                node = self.root
                for seg in api["path"].strip("/").split("/"):
                    m = re.fullmatch(r"\{(\w+)\}", seg)
                    if m:
                        if node.var is None:
                            node.var = (m.group(1), _Node())
                        node = node.var[1]
                    else:
                        node = node.literal.setdefault(seg, _Node())
                node.template = api["path"]
                node.resource = f.stem
                for op in api["operations"]:
                    node.ops[op["httpMethod"].upper()] = op

    # -- lookup -------------------------------------------------------------
    def _resolve(self, path: str):
        segs = [s for s in path.strip("/").split("/") if s != ""]
        params: dict[str, str] = {}

        def walk(node, i):
            if i == len(segs):
                return node if (node.ops or node.template) else None
            seg = segs[i]
            if seg in node.literal:  # Asterisk prefers a literal child
                r = walk(node.literal[seg], i + 1)
                if r is not None:
                    return r
            if node.var is not None:
                params[node.var[0]] = seg
                r = walk(node.var[1], i + 1)
                if r is not None:
                    return r
                params.pop(node.var[0], None)
            return None

        return walk(self.root, 0), params

    def operation(self, method: str, template: str) -> dict | None:
        node, _ = self._resolve(template)
        return node.ops.get(method.upper()) if node else None

    def event_models(self) -> dict[str, dict]:
        return {k: v for k, v in self.models.items()
                if "Event" in v.get("extends", "") or k == "Event"}

    # -- validation ---------------------------------------------------------
    def validate(self, method: str, path: str, query: dict | None = None, body: Any = None):
        method = method.upper()
        if "?" in path:
            path = path.split("?", 1)[0]
        if path.startswith("/ari/") or path == "/ari":
            path = path[4:]
        node, pparams = self._resolve(path)
        if node is None or not node.ops:
            return _err(404, "Resource not found")
        op = node.ops.get(method)
        if op is None:
            allow = ",".join(["OPTIONS"] + list(node.ops))
            return _err(405, "Invalid method", headers={"Allow": allow})
        nick = op["nickname"]
        q = {k: ("true" if v is True else "false" if v is False else
                 v if isinstance(v, list) else str(v)) for k, v in (query or {}).items()}
        params = {p["name"]: p for p in op.get("parameters", [])}
        warnings: list[str] = []
        norm: dict[str, Any] = {}
        for name, value in q.items():
            p = params.get(name)
            if p is None or p["paramType"] not in ("query", "body"):
                # Asterisk silently ignores unknown query parameters
                warnings.append(f"unknown query parameter {name!r} for {nick}")
                continue
            values = value if isinstance(value, list) else (
                value.split(",") if p.get("allowMultiple") else [value])
            for v in values:
                w = _type_problem(p, v)
                if w:
                    warnings.append(f"{nick}: parameter {name}={v!r}: {w}")
            norm[name] = values if p.get("allowMultiple") else values[0]
        # Asterisk-specific rules first (they carry the real answer)
        rule = HANDLER_RULES.get((node.resource, nick))
        if rule:
            e = rule(norm, pparams)
            if e is not None:
                e.nickname = nick
                return e
        for name, p in params.items():
            if p["paramType"] == "query" and p.get("required") and name not in norm:
                return _err(400, f"Missing parameter {name}", recorded=False, nickname=nick)
            if p["paramType"] == "body" and p.get("required") and not body:
                return _err(400, f"Missing parameter {name}", recorded=False, nickname=nick)
            av = p.get("allowableValues")
            if name in norm and av and av.get("valueType") == "LIST":
                vals = norm[name] if isinstance(norm[name], list) else [norm[name]]
                bad = [v for v in vals if v not in av["values"]]
                if bad:
                    return _err(400, f"Invalid {name} {bad[0]}", recorded=False, nickname=nick)
        return Route(nick, node.resource, node.template, method, pparams, norm, body,
                     op.get("responseClass", "void"), op, warnings)


def _type_problem(p: dict, v: str) -> str | None:
    dt = p.get("dataType", "string")
    if dt in ("int", "long"):
        if not re.fullmatch(r"-?\d+", v):
            return f"not an {dt} (Asterisk would silently use 0)"
        av = p.get("allowableValues")
        if av and av.get("valueType") == "RANGE":
            if "min" in av and int(v) < av["min"]:
                return f"below minimum {av['min']}"
            if "max" in av and int(v) > av["max"]:
                return f"above maximum {av['max']}"
    elif dt == "boolean":
        if v not in ("true", "false"):
            return "not 'true'/'false'"
    elif dt in ("double", "float"):
        try:
            float(v)
        except ValueError:
            return f"not a {dt}"
    return None


# --- rules implemented in Asterisk's handlers, observed in transcript f -------
HANGUP_REASONS = None  # filled lazily from the API description


def _originate(q, pp):
    ep = q.get("endpoint")
    if not ep:
        return _err(400, "Endpoint must be specified")
    if "/" not in ep:
        return _err(400, "Invalid endpoint specified")
    if not q.get("app") and not q.get("extension"):
        return _err(400, "Application or extension must be specified")
    return None


def _channel_create(q, pp):
    ep = q.get("endpoint")
    if not ep:
        return _err(400, "Endpoint must be specified", recorded=False)
    if not q.get("app"):
        return _err(400, "Missing parameter app", recorded=False)
    return None


def _play(q, pp):
    if not q.get("media"):
        return _err(500, "Failed to queue media for playback")
    return None


def _dtmf(q, pp):
    if not q.get("dtmf"):
        return _err(400, "DTMF is required")
    return None


def _bridge_channel(q, pp):
    if not q.get("channel"):
        return _err(400, "Missing parameter channel")
    return None


def _control(q, pp):
    op = q.get("operation")
    if not op:
        return _err(400, "Missing operation")
    if op not in ("restart", "pause", "unpause", "reverse", "forward"):
        return _err(400, f"Invalid operation {op}")
    return None


def _hangup(q, pp):
    reason, code = q.get("reason"), q.get("reason_code")
    if reason is not None and code is not None:
        return _err(400, "The reason and reason_code can't both be specified")
    if code is not None and not re.fullmatch(r"\d+", code):
        return _err(400, "Invalid reason for hangup reason code provided")
    if reason is not None and reason not in _hangup_reasons():
        return _err(400, "Invalid reason for hangup reason provided")
    return None


def _hangup_reasons():
    global HANGUP_REASONS
    if HANGUP_REASONS is None:
        op = docs().operation("DELETE", "/channels/x")
        p = next(p for p in op["parameters"] if p["name"] == "reason")
        HANGUP_REASONS = set(p["allowableValues"]["values"])
    return HANGUP_REASONS


HANDLER_RULES = {
    ("channels", "originate"): _originate,
    ("channels", "originateWithId"): _originate,
    ("channels", "create"): _channel_create,
    ("channels", "play"): _play,
    ("channels", "playWithId"): _play,
    ("channels", "sendDTMF"): _dtmf,
    ("channels", "hangup"): _hangup,
    ("bridges", "addChannel"): _bridge_channel,
    ("bridges", "removeChannel"): _bridge_channel,
    ("playbacks", "control"): _control,
}


@cache
def docs() -> ApiDocs:
    d = shared_dir()
    if d is None:
        raise FileNotFoundError("shared/asterisk/ari-api-docs not found")
    return ApiDocs(d / "ari-api-docs")


def validate(method: str, path: str, query: dict | None = None, body: Any = None):
    return docs().validate(method, path, query, body)
