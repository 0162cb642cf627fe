"""Scenario files for ``ivr simulate-day``: who calls when, what they press, how long they talk, who answers.

A scenario is YAML, loaded with the same positioned errors as every other file an admin edits
(file, line, column, path). Paths inside it (``tree``, ``queues``) are relative to the scenario
file. The format is documented in ``scenarios/README.md``; in brief:

- ``arrivals``: calls per hour by local start hour (``"08:00": 120``); within an hour arrivals are
  Poisson (exponential gaps), the usual model for independent callers;
- ``mix``: what callers press in the tree (a key script, as ``ivr simulate --keys`` takes it),
  with shares; optional per-type talk time and patience;
- ``talk``: talk-time distribution per queue (``default`` for the rest): ``exponential`` (mean) or
  ``lognormal`` (mean and sd, the usual fit for handle times), or ``fixed``;
- ``patience``: how long callers wait in a queue before hanging up (none: they never do);
- ``callback_share``: of the callers whose patience runs out where the queue offers a callback
  key, the share who press it instead of hanging up;
- ``agents``: groups with skills, languages, a shift and breaks;
- ``wrap_up``: seconds per queue, overriding ``queues.yaml``;
- ``seed`` and ``replications``.
"""

from __future__ import annotations

import math
import random
import re
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Annotated, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agents.roster import AGENT_ID, AgentSpec
from agents.state import NOT_READY_REASONS
from ivr.configfile import load_config
from ivr.errors import IvrError
from ivr.simulate import parse_keys

_HHMM = re.compile(r"^([01]?\d|2[0-3])(?::([0-5]\d))?$")
Sampler = Callable[[random.Random], float]


class ScenarioInvalid(IvrError):
    """The scenario refers to something that does not exist (a queue, a file) or cannot run."""

    error_id = "E-SCENARIO-INVALID"


def clock_minutes(value: str) -> int:
    """``"08:30"`` (or ``"8"``) -> minutes after midnight; refuses anything else with the fix in the message."""
    m = _HHMM.match(str(value).strip())
    if not m:
        raise ValueError(f"{value!r} is not a time of day; write HH:MM, e.g. \"08:30\"")
    return int(m.group(1)) * 60 + int(m.group(2) or 0)


class Dist(BaseModel):
    """A duration distribution in seconds: ``exponential`` (mean), ``lognormal`` (mean, sd) or ``fixed`` (mean)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dist: Literal["exponential", "lognormal", "fixed"] = "exponential"
    mean: float = Field(gt=0)
    sd: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _sd(self) -> "Dist":
        if self.dist == "lognormal" and self.sd is None:
            raise ValueError("a lognormal distribution needs `sd` (its standard deviation in seconds) beside `mean`")
        if self.dist != "lognormal" and self.sd is not None:
            raise ValueError(f"`sd` only applies to lognormal; an {self.dist} distribution is set by `mean` alone")
        return self

    def sampler(self) -> Sampler:
        """A function of a random stream giving one draw. Lognormal from its mean m and sd s:
        σ² = ln(1 + s²/m²), μ = ln m − σ²/2, so the draws have exactly that mean and sd."""
        m = self.mean
        if self.dist == "fixed":
            return lambda rng: m
        if self.dist == "exponential":
            rate = 1.0 / m
            return lambda rng: rng.expovariate(rate)
        s = self.sd or 0.0
        sigma = math.sqrt(math.log1p((s / m) ** 2))
        mu = math.log(m) - sigma * sigma / 2
        return lambda rng: rng.lognormvariate(mu, sigma)


class MixEntry(BaseModel):
    """One kind of caller: what they press (a key script) and how often they call, relative to the others."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    share: float = Field(gt=0)
    keys: str = ""  # e.g. "1 1": the same key script `ivr simulate --keys` takes
    language: str | None = None  # the language the dialled number selects (None: the tree's default)
    caller_id: Literal["number", "withheld"] = "number"
    talk: Dist | None = None  # overrides the queue's talk time for this kind of call
    patience: Dist | None = None  # overrides the scenario's patience

    @field_validator("keys")
    @classmethod
    def _keys(cls, v: str) -> str:
        parse_keys(v)
        return v


class Break(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    minutes: float = Field(gt=0, le=480)
    reason: str = "break"

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        clock_minutes(v)
        return v

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if v not in NOT_READY_REASONS:
            raise ValueError(f"unknown break reason {v!r}; use one of {', '.join(NOT_READY_REASONS)}")
        return v


class AgentGroup(BaseModel):
    """``count`` agents alike: ids ``NAME-01``, ``NAME-02``... (just ``NAME`` when count is 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=AGENT_ID)
    count: int = Field(default=1, ge=1, le=5000)
    skills: dict[str, Annotated[int, Field(ge=1, le=10)]] = {}
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    shift: str = "08:00-17:00"
    breaks: list[Break] = []

    @field_validator("shift")
    @classmethod
    def _shift(cls, v: str) -> str:
        parts = v.split("-")
        if len(parts) != 2:
            raise ValueError(f"shift {v!r} must be START-END, e.g. \"08:00-16:30\"")
        a, b = (clock_minutes(p) for p in parts)
        if b <= a:
            raise ValueError(f"shift {v!r} ends before it starts (overnight shifts are not supported: split the day)")
        return v

    @model_validator(mode="after")
    def _breaks_in_shift(self) -> "AgentGroup":
        a, b = self.shift_minutes
        for br in self.breaks:
            s = clock_minutes(br.start)
            if not a <= s < b:
                raise ValueError(f"break at {br.start} is outside the shift {self.shift}")
        return self

    @property
    def shift_minutes(self) -> tuple[int, int]:
        a, b = self.shift.split("-")
        return clock_minutes(a), clock_minutes(b)

    def ids(self) -> list[str]:
        return [self.name] if self.count == 1 else [f"{self.name}-{i:02d}" for i in range(1, self.count + 1)]

    def specs(self) -> list[AgentSpec]:
        """Roster entries for the router (the endpoint is never dialled: nothing rings in a simulation)."""
        return [AgentSpec(id=i, name=i, endpoint=f"PJSIP/sim-{i}", skills=dict(self.skills),
                          languages=list(self.languages)) for i in self.ids()]


class Scenario(BaseModel):
    """A whole ``scenario.yaml``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    tree: str
    queues: str
    date: date
    seed: int = 1
    replications: int = Field(default=10, ge=1, le=10_000)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    warmup_minutes: float = Field(default=0, ge=0)
    arrivals: dict[str, Annotated[float, Field(ge=0)]] = Field(min_length=1)
    mix: list[MixEntry] = Field(min_length=1)
    talk: dict[str, Dist] = {}
    patience: Dist | None = None
    callback_share: float = Field(default=0.0, ge=0, le=1)
    wrap_up: dict[str, Annotated[float, Field(ge=0)]] = {}
    answer_after: float = Field(default=3.0, ge=0)  # seconds an agent's phone rings before they pick up
    record_seconds: float = Field(default=20.0, gt=0)  # a voicemail or refill request a caller leaves
    hooks: dict[str, dict[str, object]] = {}  # canned results of the tree's lookup hooks
    agents: list[AgentGroup] = Field(min_length=1)

    @field_validator("arrivals")
    @classmethod
    def _hours(cls, v: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for k, calls in v.items():
            m = clock_minutes(k)
            if m % 60:
                raise ValueError(f"arrival hour {k!r} must start on the hour, e.g. \"09:00\"")
            key = f"{m // 60:02d}:00"
            if key in out:
                raise ValueError(f"hour {key} is listed twice")
            out[key] = calls
        if not any(out.values()):
            raise ValueError("no calls arrive: give at least one hour a number of calls above 0")
        return dict(sorted(out.items()))

    @field_validator("mix")
    @classmethod
    def _unique_mix(cls, v: list[MixEntry]) -> list[MixEntry]:
        names = [m.name for m in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"mix names must be unique: {', '.join(dup)} appear more than once")
        return v

    @field_validator("agents")
    @classmethod
    def _unique_agents(cls, v: list[AgentGroup]) -> list[AgentGroup]:
        seen: set[str] = set()
        for g in v:
            for i in g.ids():
                if i in seen:
                    raise ValueError(f"agent id {i!r} comes from two groups; give the groups different names")
                seen.add(i)
        return v

    # ------------------------------------------------------------------ derived

    def roster(self) -> list[AgentSpec]:
        return [s for g in self.agents for s in g.specs()]

    def hour_rates(self) -> list[tuple[int, float]]:
        """(hour of day, calls in that hour) in order."""
        return [(int(k[:2]), v) for k, v in self.arrivals.items()]

    def total_calls(self) -> float:
        return sum(self.arrivals.values())


class LoadedScenario(BaseModel):
    """A scenario with its paths resolved against the scenario file's folder."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    spec: Scenario
    file: Path
    tree_path: Path
    queues_path: Path


def load_scenario(path: str | Path) -> LoadedScenario:
    """Read and check a scenario; raises ConfigInvalid (positioned) or ScenarioInvalid (missing files)."""
    p = Path(path)
    spec = load_config(p, Scenario, docs="scenarios/README.md")
    base = p.resolve().parent
    tree_path = (base / spec.tree).resolve()
    queues_path = (base / spec.queues).resolve()
    for what, f in (("tree", tree_path), ("queues", queues_path)):
        if not f.is_file():
            raise ScenarioInvalid(f"{p}: {what} file {f} does not exist; `{what}:` is relative to the scenario file",
                                  details={"file": str(p), what: str(f)})
    return LoadedScenario(spec=spec, file=p, tree_path=tree_path, queues_path=queues_path)


def local_offset(day: date, minutes: float, tz: object, base_utc: datetime) -> float:
    """Seconds from ``base_utc`` to ``minutes`` after local midnight of ``day`` in ``tz`` (DST-correct)."""
    whole = int(minutes)
    local = datetime.combine(day, time(whole // 60, whole % 60), tzinfo=tz)  # type: ignore[arg-type]
    return (local.astimezone(timezone.utc) - base_utc).total_seconds() + (minutes - whole) * 60


def day_start_utc(day: date, tz: object) -> datetime:
    """Local midnight of ``day`` as a UTC instant: the simulation's time 0."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)  # type: ignore[arg-type]


__all__ = ["AgentGroup", "Break", "Dist", "LoadedScenario", "MixEntry", "Scenario", "ScenarioInvalid",
           "clock_minutes", "day_start_utc", "load_scenario", "local_offset"]
