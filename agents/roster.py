"""The agent roster (``agents.yaml``): who can take calls, on which softphone, with which skills.

Skills carry levels from 1 (can help) to 10 (expert); routing compares them with
each queue's minimum levels. Languages are the ones an agent can serve a caller in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ivr.configfile import load_config

AGENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SkillLevel = Annotated[int, Field(ge=1, le=10)]


class AgentSpec(BaseModel):
    """One agent as the roster describes them (their live state lives in :mod:`agents.state`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=AGENT_ID)
    name: str
    endpoint: str  # PJSIP/1001, a Twilio client identity (client:ana) or a SIP URI
    skills: dict[str, SkillLevel] = {}
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not re.match(r"^(PJSIP/[\w.-]+|SIP/[\w.-]+|client:[\w.@-]+|sips?:[^\s]+|\+?\d{7,15})$", v):
            raise ValueError(f"{v!r} is not a softphone endpoint; use PJSIP/1001, client:ana, sip:ana@pbx.example "
                             "or an E.164 number")
        return v


class Roster(BaseModel):
    """The whole ``agents.yaml``."""

    model_config = ConfigDict(extra="forbid")

    agents: list[AgentSpec] = Field(min_length=1)

    @field_validator("agents")
    @classmethod
    def _unique(cls, v: list[AgentSpec]) -> list[AgentSpec]:
        seen: set[str] = set()
        for a in v:
            if a.id in seen:
                raise ValueError(f"agent id {a.id!r} is listed twice; ids must be unique")
            seen.add(a.id)
        return v

    def by_id(self) -> dict[str, AgentSpec]:
        return {a.id: a for a in self.agents}


def load_roster(path: str | Path) -> Roster:
    """Read ``agents.yaml``; raises ConfigInvalid with file/line/path for every problem."""
    return load_config(path, Roster, docs="routing/README.md")
