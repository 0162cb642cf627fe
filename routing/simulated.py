"""A simulated contact center for ``ivr simulate``: the real router over a roster of simulated agents.

Agents are logged in and ready when the call starts (longest idle in roster
order) unless listed as not ready; they answer an offer after a short ring,
unless listed as not answering (then the router's ring-no-answer rules play
out). Nothing here is fake routing: the decisions and explanations are the
router's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from agents.roster import load_roster
from routing.queues import load_queues
from routing.router import Router


@dataclass
class SimRouting:
    router: Router
    answer_after: float = 4.0  # seconds an agent's phone rings before they pick up
    no_answer: set[str] = field(default_factory=set)  # agents who let offers ring out

    @classmethod
    def from_files(cls, agents: str | Path, queues: str | Path, at: datetime, *,
                   not_ready: set[str] | None = None, no_answer: set[str] | None = None) -> "SimRouting":
        roster = load_roster(agents)
        router = Router(load_queues(queues), roster.agents)
        unknown = (set(not_ready or ()) | set(no_answer or ())) - {a.id for a in roster.agents}
        if unknown:
            raise ValueError(f"not in {agents}: {', '.join(sorted(unknown))}")
        for i, a in enumerate(roster.agents):  # logged in ten minutes before the call, a second apart
            router.login(a.id, at - timedelta(seconds=600 - i), ready=a.id not in (not_ready or set()))
        return cls(router, no_answer=set(no_answer or ()))
