"""`ivr agents` and `ivr queues` as an operator runs them: separate processes sharing one real SQLite file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from routing.service import RoutingService
from conftest import ROOT


def ivr(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IVR_DB_PATH": str(db)}
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "ivr.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def test_agent_state_changes_persist_between_commands(tmp_path: Path):
    db = tmp_path / "state.db"
    r = ivr(db, "agents", "login", "ana.lopez")
    assert r.returncode == 0 and "ana.lopez: logged_out -> ready" in r.stdout
    r = ivr(db, "agents", "pause", "ana.lopez", "lunch")
    assert "ready -> not_ready (lunch)" in r.stdout
    r = ivr(db, "agents", "list")
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("ana.lopez"))
    assert "not_ready (lunch)" in line and "scheduling:8" in line and "en,es" in line
    assert "logged_out" in next(ln for ln in r.stdout.splitlines() if ln.startswith("ben.carter"))
    r = ivr(db, "agents", "login", "ben.carter", "--not-ready")
    assert "logged_out -> not_ready (other)" in r.stdout


def test_refused_changes_are_clear_errors(tmp_path: Path):
    db = tmp_path / "state.db"
    r = ivr(db, "agents", "pause", "ana.lopez", "break")
    assert r.returncode == 1 and "E-AGENT-TRANSITION" in r.stderr and "log in first" in r.stderr
    ivr(db, "agents", "login", "ana.lopez")
    r = ivr(db, "agents", "pause", "ana.lopez", "nap")
    assert r.returncode == 1 and "unknown not-ready reason 'nap'" in r.stderr and "lunch" in r.stderr
    r = ivr(db, "agents", "ready", "zed")
    assert r.returncode == 1 and "E-AGENT-UNKNOWN" in r.stderr


def test_queues_explain_prints_why_a_call_went_where(tmp_path: Path):
    db = tmp_path / "state.db"

    async def route() -> None:
        svc = await RoutingService.open(ROOT / "agents.yaml", ROOT / "queues.yaml", url=f"sqlite+aiosqlite:///{db}")
        try:
            await svc.login("ben.carter")
            await svc.login("ana.lopez")
            await svc.enqueue("call-42", "scheduling", language="en", priority=2)
        finally:
            await svc.close()

    asyncio.run(route())
    r = ivr(db, "queues", "explain", "call-42")
    assert r.returncode == 0, r.stderr
    assert "call call-42 -> ana.lopez  (queue scheduling)" in r.stdout  # step 1 needs scheduling >= 7: only Ana
    assert "relaxation step 1: scheduling>=7, language en" in r.stdout and "longest idle" in r.stdout
    r = ivr(db, "queues", "status")
    assert "scheduling: 1 waiting" in r.stdout and "ringing ana.lopez" in r.stdout
    r = ivr(db, "queues", "explain", "call-0")
    assert r.returncode == 1 and "no routing decision recorded" in r.stderr


def test_read_only_commands_change_nothing_and_ringing_offers_stay(tmp_path: Path):
    db = tmp_path / "state.db"

    async def route() -> None:
        svc = await RoutingService.open(ROOT / "agents.yaml", ROOT / "queues.yaml", url=f"sqlite+aiosqlite:///{db}")
        try:
            await svc.login("ana.lopez")
            await svc.enqueue("call-7", "scheduling", language="en")
        finally:
            await svc.close()

    async def events() -> tuple[int, int]:
        from routing.store import Store

        store = await Store.open(f"sqlite+aiosqlite:///{db}")
        try:
            return len(await store.agent_events()), len(await store.explanations("call-7"))
        finally:
            await store.close()

    asyncio.run(route())
    before = asyncio.run(events())
    for args in (("agents", "list"), ("queues", "status"), ("queues", "explain", "call-7"), ("agents", "list")):
        assert ivr(db, *args).returncode == 0
    assert asyncio.run(events()) == before == (before[0], 1)  # no re-offer, no 'restart-settled'


def test_end_call_and_db_given_as_a_plain_path(tmp_path: Path):
    db = tmp_path / "plain.db"

    async def on_a_call() -> None:
        svc = await RoutingService.open(ROOT / "agents.yaml", ROOT / "queues.yaml", url=f"sqlite+aiosqlite:///{db}")
        try:
            await svc.login("ben.carter")
            await svc.enqueue("call-9", "records", language="en")
            await svc.answered("call-9")
        finally:
            await svc.close()

    asyncio.run(on_a_call())
    env_free = ["--db", str(db)]
    r = ivr(tmp_path / "unused.db", "agents", "logout", "ben.carter", *env_free)
    assert r.returncode == 1 and "on_call" in r.stderr
    r = ivr(tmp_path / "unused.db", "agents", "end-call", "ben.carter", *env_free)
    assert r.returncode == 0 and "on_call -> wrap_up" in r.stdout
