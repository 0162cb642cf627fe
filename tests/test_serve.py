"""``ivr serve`` as a user runs it: a real process, real HTTP, real signals, and the ARI stand-in as Asterisk."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from standin import apidocs
from standin.ari import AriStandIn

from ivr import engine_config, logsetup
from ivr.configfile import ConfigInvalid

ROOT = Path(__file__).resolve().parent.parent
SAFETY = 20.0  # a safety net for process start-up, never a timing assertion


async def start_serve(tmp: Path, *args: str, env: dict[str, str] | None = None) -> tuple[asyncio.subprocess.Process, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "DATABASE_URL"))}
    e.update(IVR_DB_PATH=str(tmp / "state.db"), **(env or {}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.cli", "serve", "--port", "0", *args, cwd=tmp, env=e,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    line = await asyncio.wait_for(proc.stdout.readline(), SAFETY)
    if b"listening on" not in line:
        err = await proc.stderr.read()
        raise AssertionError(f"serve did not start: {line!r} {err.decode()[-2000:]}")
    url = line.decode().split("listening on ", 1)[1].split(" ", 1)[0]
    return proc, url


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), SAFETY)
    return proc.returncode, out.decode(), err.decode()


def test_serve_runs_on_embedded_defaults_and_stops_on_sigterm(tmp_path: Path):
    async def go():
        proc, url = await start_serve(tmp_path)
        try:
            assert url.startswith("http://127.0.0.1:")
            async with aiohttp.ClientSession() as s, s.get(url + "/health") as r:
                assert r.status == 200
                body = await r.json()
        finally:
            rc, out, err = await stop(proc)
        assert body["status"] == "ok" and body["store"] == "ok"
        assert body["trees"] == ["calltrees/clinic-main.yaml"] and "asterisk" not in body
        assert rc == 0 and "ivr engine stopped" in out
        assert (tmp_path / "state.db").exists()  # the embedded SQLite store

    asyncio.run(go())


@pytest.mark.skipif(apidocs.shared_dir() is None, reason="shared/asterisk not found beside the clone")
def test_serve_with_asterisk_takes_a_call_and_hands_it_to_the_fallback_on_sigterm(tmp_path: Path):
    async def go():
        async with AriStandIn() as ari:
            proc, url = await start_serve(tmp_path, env={
                "IVR_ARI_URL": ari.base_url, "IVR_ARI_USER": ari.username, "IVR_ARI_PASSWORD": ari.password,
                "IVR_ARI_APP": ari.app_name})
            try:
                await asyncio.wait_for(ari.wait_connected(), SAFETY)
                for _ in range(200):
                    async with aiohttp.ClientSession() as s, s.get(url + "/health") as r:
                        body = await r.json()
                    if body.get("asterisk", {}).get("connected"):
                        break
                    await asyncio.sleep(0.02)
                assert r.status == 200 and body["asterisk"]["connected"] is True
                cid = await ari.inject_call(caller="+15555550123")
                for _ in range(500):
                    if any(q[1].endswith(f"/{cid}/play") for q in ari.requests):
                        break
                    await asyncio.sleep(0.01)
                assert ("POST", f"/ari/channels/{cid}/answer", {}, None) in ari.requests
                pb = ari.channels[cid].queue[0].id
                await ari.finish_playback(pb)  # the chime ends; the greeting starts
            finally:
                rc, out, err = await stop(proc)
            assert rc == 0
            cont = [q for q in ari.requests if q[1] == f"/ari/channels/{cid}/continue"]
            assert cont and cont[0][2] == {"context": "ivr-fallback", "extension": "s", "priority": "1"}
            assert "5555550123" not in err and "5555550123" not in out  # no caller number in any log line

    asyncio.run(go())


def test_serve_refuses_asterisk_without_its_password_and_a_broken_config_with_its_line(tmp_path: Path):
    async def go():
        e = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr.cli", "serve", cwd=tmp_path, env={**e, "IVR_ARI_URL": "http://127.0.0.1:1/ari"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), SAFETY)
        assert proc.returncode == 2 and b"E-CONFIG-SECRET" in err and b"IVR_ARI_PASSWORD" in err
        cfg = tmp_path / "ivr-engine.yaml"
        cfg.write_text("listen:\n  host: 127.0.0.1\n  prot: 8080\n")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ivr.cli", "serve", "--config", str(cfg), cwd=tmp_path, env=e,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), SAFETY)
        assert proc.returncode == 2 and b"ivr-engine.yaml:3" in err and b"prot" in err

    asyncio.run(go())


def test_config_file_env_overrides_and_relative_paths(tmp_path: Path, monkeypatch):
    (tmp_path / "conf").mkdir()
    f = tmp_path / "conf" / "ivr-engine.yaml"
    f.write_text("agents: ../roster.yaml\ntrees:\n  default: main.yaml\n  numbers: {'200': pharmacy.yaml}\n"
                 "asterisk:\n  app: clinic\n  announce_every: 30\n")
    cfg = engine_config.load(f, {"IVR_ARI_PASSWORD": "s3cret", "IVR_AMI_PORT": "5039", "IVR_PORT": "9000",
                                 "DATABASE_URL": "postgresql://u@db/ivr"})
    assert cfg.path(cfg.agents) == tmp_path / "roster.yaml"
    assert cfg.path(cfg.trees.default) == tmp_path / "conf" / "main.yaml"
    assert cfg.asterisk.app == "clinic" and cfg.asterisk.ami_port == 5039 and cfg.asterisk.announce_every == 30
    assert cfg.listen.port == 9000 and cfg.database == "postgresql://u@db/ivr"
    assert cfg.ari_password == "s3cret" and "s3cret" not in repr(cfg) and "s3cret" not in cfg.model_dump_json()
    monkeypatch.chdir(tmp_path)  # no config and no sample files here: the clone's samples are used
    none = engine_config.load(None, {})
    assert none.asterisk is None and none.path("agents.yaml") == ROOT / "agents.yaml"
    f.write_text("asterisk:\n  announce_every: -1\n")
    with pytest.raises(ConfigInvalid) as exc:
        engine_config.load(f, {"IVR_ARI_PASSWORD": "x"})
    assert "ivr-engine.yaml:2" in str(exc.value)


def test_log_lines_never_carry_phone_numbers_or_phi_fields(capsys):
    logsetup.configure(json=True)
    log = logging.getLogger("ivr.test")
    log.warning("call from +1 555 555 0123 with DOB 04121980 on channel 1795348549.21")
    try:
        raise ValueError("lookup failed for member 998877665544")
    except ValueError:
        log.exception("hook failed")
    import structlog
    structlog.get_logger("ivr.test").info("sms", to="+15555550123", number="5551234567", queue="billing")
    lines = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.startswith("{")]
    text = json.dumps(lines)
    for secret in ("5555550123", "555 555 0123", "04121980", "998877665544", "5551234567"):
        assert secret not in text
    assert "1795348549.21" in lines[0]["event"]  # call ids stay readable: they tie log lines to call records
    assert "***0123" in lines[0]["event"] and lines[2]["queue"] == "billing" and lines[2]["to"] == "[redacted]"
    assert lines[0]["timestamp"].startswith("20")  # the processors' own fields are left alone
    logging.getLogger().handlers.clear()


def test_the_example_config_loads_and_names_files_that_exist():
    cfg = engine_config.load(ROOT / "ivr-engine.example.yaml", {"IVR_ARI_PASSWORD": "x", "IVR_TWILIO_AUTH_TOKEN": "t"})
    assert cfg.twilio is not None and cfg.twilio.public_url == "https://ivr.clinic.example"
    assert cfg.asterisk is not None and cfg.asterisk.app == "ivr-engine"
    for p in (cfg.agents, cfg.queues, cfg.trees.default, *cfg.trees.numbers.values(), cfg.hooks):
        assert cfg.path(p).exists(), p


def test_the_agent_api_is_authenticated_and_changes_state_through_the_live_router(tmp_path: Path):
    async def go():
        proc, url = await start_serve(tmp_path, env={"IVR_API_TOKEN": "ops-secret"})
        auth = {"Authorization": "Bearer ops-secret"}
        try:
            async with aiohttp.ClientSession() as s:
                async with s.get(url + "/api/agents") as r:
                    assert r.status == 401
                async with s.post(url + "/api/agents/ana.lopez/login", headers={"Authorization": "Bearer nope"}) as r:
                    assert r.status == 401
                async with s.post(url + "/api/agents/ana.lopez/login", headers=auth) as r:
                    assert r.status == 200 and (await r.json())["status"] == "ready"
                async with s.post(url + "/api/agents/ana.lopez/pause", headers=auth, json={"reason": "naps"}) as r:
                    assert r.status == 400 and (await r.json())["error"] == "E-AGENT-REASON"
                async with s.post(url + "/api/agents/ana.lopez/pause", headers=auth, json={"reason": "lunch"}) as r:
                    body = await r.json()
                    assert r.status == 200 and (body["status"], body["reason"]) == ("not_ready", "lunch")
                async with s.post(url + "/api/agents/ana.lopez/ready", headers=auth) as r:
                    assert r.status == 200 and (await r.json())["after_call"] is None
                # "After this call" for a free agent happens at once (the router test covers a busy one).
                async with s.post(url + "/api/agents/ana.lopez/pause", headers=auth,
                                  data={"reason": "lunch", "after_call": "true"}) as r:
                    body = await r.json()
                    assert r.status == 200 and (body["status"], body["reason"]) == ("not_ready", "lunch")
                async with s.post(url + "/api/agents/ana.lopez/ready", headers=auth, json={"after_call": True}) as r:
                    assert r.status == 400 and (await r.json())["error"] == "E-API-AFTER-CALL"
                async with s.post(url + "/api/agents/ana.lopez/ready", data=b"{nope",
                                  headers={**auth, "Content-Type": "application/json"}) as r:
                    assert r.status == 400 and (await r.json())["error"] == "E-API-BODY"
                # Bodies the API cannot read are refused, never taken as "now" (ana stays paused throughout):
                # JSON sent as a form (curl -d '{...}'), an unknown content type, an after_call that is not yes/no.
                for data, ctype in ((b'{"after_call": true}', "application/x-www-form-urlencoded"),
                                    (b'{"after_call": true}', "text/plain"),
                                    (b'{"reason": "lunch", "after_call": "later"}', "application/json"),
                                    (b'["logout"]', "application/json")):
                    async with s.post(url + "/api/agents/ana.lopez/logout", data=data,
                                      headers={**auth, "Content-Type": ctype}) as r:
                        assert r.status == 400 and (await r.json())["error"] == "E-API-BODY", (data, ctype)
                async with s.post(url + "/api/agents/ana.lopez/pause", headers=auth,
                                  data={"reason": "break", "after_call": "on"}) as r:  # an HTML checkbox
                    body = await r.json()
                    assert r.status == 200 and (body["status"], body["reason"]) == ("not_ready", "break")
                async with s.post(url + "/api/agents/ben.carter/ready", headers=auth) as r:
                    assert r.status == 409 and (await r.json())["error"] == "E-AGENT-TRANSITION"  # logged out
                async with s.post(url + "/api/agents/nobody/login", headers=auth) as r:
                    assert r.status == 404
                async with s.get(url + "/api/agents", headers=auth) as r:
                    states = {a["agent"]: a["status"] for a in await r.json()}
                    assert states["ana.lopez"] == "not_ready" and states["ben.carter"] == "logged_out"
        finally:
            rc, _, _ = await stop(proc)
        assert rc == 0
        proc, url = await start_serve(tmp_path)  # no token: the write API is off, not open
        try:
            async with aiohttp.ClientSession() as s, s.post(url + "/api/agents/ana.lopez/ready") as r:
                assert r.status == 503
        finally:
            await stop(proc)

    asyncio.run(go())


def test_serve_with_twilio_checks_signatures_on_the_public_url(tmp_path: Path):
    from twilio.request_validator import RequestValidator

    async def go():
        proc, url = await start_serve(tmp_path, env={
            "IVR_TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "IVR_TWILIO_AUTH_TOKEN": "tok",
            "IVR_PUBLIC_URL": "https://ivr.clinic.example"})
        form = {"CallSid": "CA" + "2" * 32, "From": "+15555550123", "To": "+15550100000", "CallStatus": "ringing"}
        sig = RequestValidator("tok").compute_signature("https://ivr.clinic.example/twilio/voice", form)
        try:
            async with aiohttp.ClientSession() as s:
                async with s.post(url + "/twilio/voice", data=form) as r:
                    assert r.status == 403
                async with s.post(url + "/twilio/voice", data=form, headers={"X-Twilio-Signature": sig}) as r:
                    assert r.status == 200 and "<Gather" in await r.text()
                async with s.get(url + "/health") as r:
                    assert (await r.json())["twilio"]["calls_in_progress"] == 1
        finally:
            rc, out, err = await stop(proc)
        assert rc == 0 and "5555550123" not in err

    asyncio.run(go())
