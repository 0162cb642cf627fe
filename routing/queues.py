"""Queue configuration (``queues.yaml``): requirements, relaxation steps, targets, limits, overflow.

Requirements are relaxed as a caller waits, the way Genesys' bullseye rings,
Asterisk's penalty rules and TaskRouter's workflow targets do it: a queue lists
``steps``; each applies until its ``until`` (seconds waited) and says how strict
matching is during that time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ivr.configfile import load_config

Strategy = Literal["longest_idle", "most_skilled", "fewest_calls", "round_robin"]
SkillLevel = Annotated[int, Field(ge=1, le=10)]


class Step(BaseModel):
    """How strict matching is until ``until`` seconds of waiting (the last step has no ``until``).

    - ``skills``: replaces the call's skill requirements for this step (absolute levels);
    - ``relax``: lowers every required level by this much (never below 1), or ``all`` drops skills;
    - ``language``: ``caller`` (the agent must speak the caller's language) or ``any``;
    - ``preferred_agent``: for this many seconds into the step, only the caller's preferred agent
      (e.g. the patient's last agent) is offered the call, if they are eligible and logged in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    until: float | None = Field(default=None, gt=0)
    skills: dict[str, SkillLevel] | None = None
    relax: int | Literal["all"] = 0
    language: Literal["caller", "any"] = "caller"
    preferred_agent: float | None = Field(default=None, gt=0)


class ServiceLevel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float = Field(default=30, gt=0)
    target: float = Field(default=0.8, gt=0, le=1)


class Overflow(BaseModel):
    """After ``after`` seconds, move the call to queue ``to`` (keeping its place: the time waited counts there)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    after: float = Field(gt=0)
    to: str


class QueueSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    skills: dict[str, SkillLevel] = {}
    strategy: Strategy = "longest_idle"
    steps: list[Step] = Field(default_factory=lambda: [Step()])
    service_level: ServiceLevel = ServiceLevel()
    max_wait: float | None = Field(default=None, gt=0)  # longest wait: then the tree's `timeout` fallback
    max_length: int | None = Field(default=None, ge=1)  # callers waiting: then the tree's `full` fallback
    wrap_up: float = Field(default=30, ge=0)
    ring_timeout: float = Field(default=20, gt=0)
    max_no_answer: int = Field(default=3, ge=0)  # offers missed in a row before the agent is made not ready; 0 = never
    when_nobody_logged_in: Literal["fail", "wait"] = "fail"
    overflow: Overflow | None = None

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[Step]) -> list[Step]:
        if not v:
            raise ValueError("a queue needs at least one step (or leave `steps` out)")
        last = 0.0
        for i, step in enumerate(v):
            if step.until is None and i != len(v) - 1:
                raise ValueError(f"step {i + 1} has no `until` but is not the last step; only the last step is open-ended")
            if step.until is not None:
                if step.until <= last:
                    raise ValueError(f"step {i + 1} ends at {step.until:g} s, not after the step before it ({last:g} s)")
                last = step.until
        if v[-1].until is not None:
            raise ValueError("the last step must have no `until`: it applies however long the caller waits")
        return v


class QueuesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queues: dict[str, QueueSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _overflow_targets(self) -> "QueuesFile":
        for name, q in self.queues.items():
            if q.overflow is not None and q.overflow.to not in self.queues:
                raise ValueError(f"queue {name!r} overflows to {q.overflow.to!r}, which is not defined")
            if q.overflow is not None and q.overflow.to == name:
                raise ValueError(f"queue {name!r} overflows to itself")
        return self


def load_queues(path: str | Path) -> dict[str, QueueSpec]:
    return load_config(path, QueuesFile, docs="routing/README.md").queues
