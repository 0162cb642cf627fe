"""`ivr agents` and `ivr queues` as an operator runs them: separate processes sharing one real SQLite file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from routing.service import RoutingService
from tests.conftest import ROOT


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
