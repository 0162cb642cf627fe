"""Flow tests: scenarios kept beside a tree (``NAME.tests.yaml``), run by ``ivr test``.

A scenario is a caller (number, language, time of day, keys) and what must
happen: where the call ends, what the caller hears, which nodes it passes.
Admins change a tree, run ``ivr test calltrees/``, and see at once which
patient journeys changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ivr.errors import Diagnostic, DiagnosticSink
from ivr.simulate import CallSimulator, HookTimeout, SimOptions, SimResult, parse_keys
from ivr.timeparse import parse_at
from ivr.tree import CallTree, _pydantic_diagnostics, check_tree
from ivr.yamlpos import load_yaml

TESTS_SUFFIX = ".tests.yaml"


QueueOutcome = Literal["handoff", "answered", "closed", "no_agents", "full", "timeout"]


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: str | None = None  # queue, agent, transfer, voicemail, record, hangup, abandoned, callback
    queue: str | None = None
    skills: dict[str, int] | None = None
    priority: int | None = None
    language: str | None = None
    transfer_to: str | None = None
    hangup_outcome: str | None = None
    agent: str | None = None  # the agent who answered (with a simulated roster)
    nodes: list[str] = []
    not_nodes: list[str] = []
    hears: list[str] = []
    not_hears: list[str] = []
    sms: str | None = None
    max_seconds: float | None = None
    min_seconds: float | None = None


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    at: str | datetime | None = None
    caller: str | None = "default"
    language: str | None = None
    keys: str = ""
    queue_outcomes: dict[str, QueueOutcome] = {}
    hooks: dict[str, Any] = {}
    failing_transfers: list[str] = []
    talk_seconds: float | None = None
    not_ready: list[str] = []  # agents paused in this scenario (with a roster)
    no_answer: list[str] = []  # agents who let offers ring out
    expect: Expect


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: str | datetime | None = None
    caller: str | None = "+15555550123"
    language: str | None = None
    hooks: dict[str, Any] = {}
    queue_outcomes: dict[str, QueueOutcome] = {}
    agents: str | None = None  # a roster: queues go to the real router over simulated agents
    queues: str | None = None  # queue configuration for `agents` (default: queues.yaml beside it)


class TestFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tree: str
    defaults: Defaults = Defaults()
    scenarios: list[Scenario] = Field(min_length=1)


@dataclass
class ScenarioResult:
    name: str
    passed: bool
    failures: list[str]
    result: SimResult | None = None


@dataclass
class FileResult:
    file: str
    tree_file: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    scenarios: list[ScenarioResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(d.blocking for d in self.diagnostics) and all(s.passed for s in self.scenarios)


def _hook(spec: Any) -> Any:
    """Scenario hook results: a mapping of values, ``timeout``, or ``error``."""
    if spec == "timeout":
        def fn(args: dict[str, Any]) -> dict[str, Any]:
            raise HookTimeout()
        return fn
    if spec == "error":
        return {"error": "simulated failure"}
    return spec


def run_scenario(sim: CallSimulator, tree: CallTree, sc: Scenario, defaults: Defaults,
                 base: Path | None = None) -> ScenarioResult:
    at_raw = sc.at if sc.at is not None else defaults.at
    at = parse_at(at_raw, tree.tz)
    routing = None
    if defaults.agents:
        from routing.simulated import SimRouting

        agents = (base or Path(".")) / defaults.agents
        queues = (base or Path(".")) / defaults.queues if defaults.queues else agents.with_name("queues.yaml")
        routing = SimRouting.from_files(agents, queues, at, not_ready=set(sc.not_ready), no_answer=set(sc.no_answer))
    caller = defaults.caller if sc.caller == "default" else sc.caller
    hooks = {**defaults.hooks, **sc.hooks}
    opts = SimOptions(
        at=at,
        caller=caller,
        language=sc.language or defaults.language,
        keys=parse_keys(sc.keys),
        queue_outcomes={**defaults.queue_outcomes, **sc.queue_outcomes},
        hooks={k: _hook(v) for k, v in hooks.items()},
        failing_transfers=set(sc.failing_transfers),
        call_id=f"test-{sc.name}",
        routing=routing,
    )
    if sc.talk_seconds is not None:
        opts.talk_seconds = sc.talk_seconds
    res = sim.run(opts)
    return ScenarioResult(sc.name, *_judge(sc.expect, res), result=res)


def _judge(ex: Expect, res: SimResult) -> tuple[bool, list[str]]:
    fails: list[str] = []
    o = res.state.outcome
    kind = o.kind if o else None
    d = o.detail if o else {}
    if ex.outcome is not None and kind != ex.outcome:
        fails.append(f"outcome: expected {ex.outcome}, got {kind} ({_where(res)})")
    if ex.queue is not None and d.get("queue") != ex.queue:
        fails.append(f"queue: expected {ex.queue}, got {d.get('queue')}")
    if ex.skills is not None and d.get("skills") != ex.skills:
        fails.append(f"skills: expected {ex.skills}, got {d.get('skills')}")
    if ex.priority is not None and d.get("priority") != ex.priority:
        fails.append(f"priority: expected {ex.priority}, got {d.get('priority')}")
    if ex.language is not None and res.state.language != ex.language:
        fails.append(f"language: expected {ex.language}, got {res.state.language}")
    if ex.transfer_to is not None and ex.transfer_to not in str(d.get("to", "")):
        fails.append(f"transfer: expected to {ex.transfer_to!r}, got {d.get('to')}")
    if ex.agent is not None and d.get("agent") != ex.agent:
        fails.append(f"agent: expected {ex.agent}, got {d.get('agent')}")
    if ex.hangup_outcome is not None and d.get("outcome") != ex.hangup_outcome:
        fails.append(f"hangup outcome: expected {ex.hangup_outcome}, got {d.get('outcome')}")
    visited = [e.node for e in res.state.trace if e.kind == "enter"]
    missing = _subsequence_missing(ex.nodes, visited, lambda want, got: want == got)
    if missing is not None:
        fails.append(f"nodes: expected to pass {missing!r} (in order); passed {' -> '.join(visited)}")
    for n in ex.not_nodes:
        if n in visited:
            fails.append(f"nodes: expected not to pass {n!r}")
    heard = [ln.text for ln in res.lines if ln.kind == "hear"]
    missing = _subsequence_missing(ex.hears, heard, lambda want, got: want.lower() in got.lower())
    if missing is not None:
        fails.append(f"hears: expected to hear {missing!r} (in order)")
    for phrase in ex.not_hears:
        if any(phrase.lower() in h.lower() for h in heard):
            fails.append(f"hears: expected not to hear {phrase!r}")
    if ex.sms is not None and not any(ln.text.startswith("text message") and ex.sms in ln.text for ln in res.lines):
        fails.append(f"sms: expected a text containing {ex.sms!r}")
    secs = (o.at - res.state.started_at).total_seconds() if o else res.seconds
    if ex.max_seconds is not None and secs > ex.max_seconds:
        fails.append(f"time: ended after {secs:.1f} s, expected at most {ex.max_seconds:g} s")
    if ex.min_seconds is not None and secs < ex.min_seconds:
        fails.append(f"time: ended after {secs:.1f} s, expected at least {ex.min_seconds:g} s")
    return (not fails, fails)


def _where(res: SimResult) -> str:
    from ivr.simulate import describe_outcome

    return describe_outcome(res.state)


def _subsequence_missing(wanted: list[str], got: list[str], match: Any) -> str | None:
    """The first wanted item not found after the previous ones, or None when all are there in order."""
    i = 0
    for w in wanted:
        while i < len(got) and not match(w, got[i]):
            i += 1
        if i == len(got):
            return w
        i += 1
    return None


def find_test_files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(p.rglob("*" + TESTS_SUFFIX)))
        elif p.name.endswith(TESTS_SUFFIX):
            out.append(p)
        elif p.suffix in (".yaml", ".yml"):
            sibling = p.with_name(p.name[: -len(p.suffix)] + TESTS_SUFFIX)
            if sibling.exists():
                out.append(sibling)
    return out


def run_file(path: Path) -> FileResult:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        from ivr.errors import Severity

        return FileResult(str(path), "", [Diagnostic(id="E-FILE", severity=Severity.ERROR, file=str(path),
                                                     message=f"cannot read the file: {exc}")])
    loaded = load_yaml(text, str(path))
    sink = DiagnosticSink(str(path), loaded.positions, list(loaded.diagnostics))
    fr = FileResult(str(path), "")
    if loaded.data is None:
        fr.diagnostics = sink.items
        return fr
    try:
        tf = TestFile.model_validate(loaded.data)
    except ValidationError as exc:
        _pydantic_diagnostics(exc, loaded.data, sink)
        fr.diagnostics = sink.items
        return fr
    tree_path = (path.parent / tf.tree).resolve()
    fr.tree_file = str(tree_path)
    tree, diags = check_tree(tree_path)
    fr.diagnostics = [d for d in diags if d.blocking]
    if tree is None or fr.diagnostics:
        return fr
    sim = CallSimulator(tree)
    for i, sc in enumerate(tf.scenarios):
        unknown = [n for n in sc.expect.nodes + sc.expect.not_nodes if n not in tree.spec.nodes]
        if unknown:  # a typo in not_nodes would otherwise pass for ever
            line, _ = sink.position(("scenarios", i, "expect"))
            fr.scenarios.append(ScenarioResult(sc.name, False, [f"{path}:{line}: expect names nodes the tree does not have: "
                                                                f"{', '.join(unknown)}"]))
            continue
        try:
            fr.scenarios.append(run_scenario(sim, tree, sc, tf.defaults, base=path.parent))
        except ValueError as exc:  # a bad time or queue outcome in the scenario itself
            line, _ = sink.position(("scenarios", i))
            fr.scenarios.append(ScenarioResult(sc.name, False, [f"{path}:{line}: scenario is invalid: {exc}"]))
    return fr
