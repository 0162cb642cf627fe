"""The Asterisk configuration in ``dialplans/`` and its generator, checked without Asterisk.

No Asterisk runs in CI, so these tests read the files the way Asterisk would:
a small parser for its config syntax (sections, templates, ``(+)``, ``;``
comments, ``#include``), the option lists Asterisk documents for pjsip.conf and
ari.conf and the applications and functions it has (``shared/asterisk/core-en_US.xml``,
the documentation XML of the Asterisk 22 build the transcripts were recorded on),
and a small interpreter for the subset of dialplan extensions.conf uses, so that
"the engine is down and the caller still reaches a person" is walked, not grepped.

The interpreter is strict on purpose: an application, function or expression it
does not model fails the test, so a new construct in extensions.conf comes with
a model of what it does.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agents.endpoints import (
    QUEUE_BLOCK_BEGIN,
    QUEUE_BLOCK_END,
    RESERVED_SECTION_NAMES,
    render_pjsip_agents,
    render_queue_members,
    replace_generated_block,
)
from agents.roster import AgentSpec, Roster, load_roster
from ivr.cli_dialplan import app
from conftest import ROOT
from standin.apidocs import shared_dir

DIALPLANS = ROOT / "dialplans"
# The files Asterisk loads by name; pjsip_agents.conf is read through pjsip.conf's #include.
CONF_FILES = ["pjsip.conf", "extensions.conf", "ari.conf", "http.conf", "manager.conf", "musiconhold.conf", "queues.conf"]
INCLUDED_FILES = ["pjsip_agents.conf"]


# ---------------------------------------------------------------------------------------------------------------------
# A parser for Asterisk's config syntax (main/config.c, the parts these files use)
# ---------------------------------------------------------------------------------------------------------------------

class ConfError(Exception):
    """A line Asterisk would reject or misread."""


@dataclass
class Entry:
    key: str
    op: str  # "=" or "=>"
    value: str
    where: str  # file:line


@dataclass
class Section:
    name: str
    options: tuple[str, ...]  # what stands in "(...)" after the name: "!", "+", template names
    entries: list[Entry] = field(default_factory=list)
    where: str = ""

    @property
    def is_template(self) -> bool:
        return "!" in self.options

    @property
    def templates(self) -> list[str]:
        return [o for o in self.options if o not in ("!", "+")]

    def get(self, key: str) -> str | None:
        """The last value of ``key`` (later assignments win for single-valued options)."""
        vals = [e.value for e in self.entries if e.key == key]
        return vals[-1] if vals else None

    def all(self, key: str) -> list[str]:
        return [e.value for e in self.entries if e.key == key]


@dataclass
class Conf:
    sections: list[Section]
    directives: list[tuple[str, str, str]]  # (include | tryinclude, file name, where)

    def named(self, name: str, *, type_: str | None = None) -> list[Section]:
        return [s for s in self.sections if s.name == name and (type_ is None or resolve(self, s).get("type") == type_)]

    def one(self, name: str, *, type_: str | None = None) -> Section:
        found = self.named(name, type_=type_)
        assert len(found) == 1, f"expected one section [{name}] of type {type_}, found {len(found)}"
        return found[0]


def _strip_comment(line: str, in_block: bool) -> tuple[str, bool]:
    """Drop ``;`` comments (``\\;`` is a literal semicolon) and ``;-- ... --;`` block comments."""
    out: list[str] = []
    i = 0
    while i < len(line):
        if in_block:
            end = line.find("--;", i)
            if end < 0:
                return "".join(out), True
            i, in_block = end + 3, False
            continue
        ch = line[i]
        if ch == "\\" and line[i + 1:i + 2] == ";":
            out.append(";")
            i += 2
        elif line.startswith(";--", i):
            in_block, i = True, i + 3
        elif ch == ";":
            break
        else:
            out.append(ch)
            i += 1
    return "".join(out), in_block


_HEADER = re.compile(r"^\[([^\[\]]+)\](?:\(([^()]*)\))?$")
_ENTRY = re.compile(r"^([^=\[\]]+?)\s*(=>|=)\s*(.*)$")


def parse_conf(path: Path, *, _conf: Conf | None = None, _current: list[Section | None] | None = None) -> Conf:
    """Parse one config file and what it ``#include``s, the way Asterisk reads them into one config.

    An included file continues the including file's current section (main/config.c keeps
    the current category across includes), so that is modelled too.
    """
    conf = _conf if _conf is not None else Conf([], [])
    current = _current if _current is not None else [None]
    in_block = False
    for no, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.name}:{no}"
        text, in_block = _strip_comment(raw, in_block)
        text = text.strip()
        if not text:
            continue
        if text.startswith("#"):
            m = re.match(r'^#(include|tryinclude)\s+"?([^"\s]+)"?$', text)
            if not m:
                raise ConfError(f"{where}: unknown directive {text!r}")
            kind, name = m.groups()
            conf.directives.append((kind, name, where))
            target = path.parent / name
            if target.exists():
                parse_conf(target, _conf=conf, _current=current)
            elif kind == "include":
                raise ConfError(f"{where}: #include {name}: no such file (Asterisk refuses the whole file)")
            continue
        if text.startswith("["):
            m = _HEADER.match(text)
            if not m:
                raise ConfError(f"{where}: malformed section header {text!r}")
            opts = tuple(o.strip() for o in (m.group(2) or "").split(",") if o.strip())
            if "+" in opts:  # append to an existing section
                targets = [s for s in conf.sections if s.name == m.group(1)]
                if not targets:
                    raise ConfError(f"{where}: [{m.group(1)}](+) appends to a section that does not exist")
                current[0] = targets[0]
                continue
            for t in opts:
                if t != "!" and not any(s.name == t for s in conf.sections):
                    raise ConfError(f"{where}: template {t!r} is used before it is defined")
            sec = Section(m.group(1), opts, where=where)
            conf.sections.append(sec)
            current[0] = sec
            continue
        m = _ENTRY.match(text)
        if not m:
            raise ConfError(f"{where}: not 'key = value': {text!r}")
        if current[0] is None:
            raise ConfError(f"{where}: {text!r} comes before any [section]")
        current[0].entries.append(Entry(m.group(1).strip(), m.group(2), m.group(3).strip(), where))
    if in_block:
        raise ConfError(f"{path.name}: unterminated ;-- block comment")
    return conf


def resolve(conf: Conf, sec: Section) -> Section:
    """The section with its templates' entries first (Asterisk copies them in, in order)."""
    entries: list[Entry] = []
    for t in sec.templates:
        entries += resolve(conf, conf.named(t)[0]).entries
    return Section(sec.name, sec.options, entries + sec.entries, sec.where)


@cache
def load(name: str) -> Conf:
    return parse_conf(DIALPLANS / name)


def roster() -> Roster:
    return load_roster(ROOT / "agents.yaml")


def _roster(*endpoints: str) -> Roster:
    return Roster(agents=[AgentSpec(id=f"a{i}", name=f"Agent {i}", endpoint=e) for i, e in enumerate(endpoints)])


# ---------------------------------------------------------------------------------------------------------------------
# The parser itself: it must reject what Asterisk rejects, or "every file parses" proves nothing
# ---------------------------------------------------------------------------------------------------------------------

def test_parser_reads_templates_appends_comments_and_includes(tmp_path: Path):
    (tmp_path / "inc.conf").write_text("extra = 1\n[c](t)\nk => v ; c\n", encoding="utf-8")
    (tmp_path / "main.conf").write_text(
        "; comment\n[t](!)\nshared = yes\n;-- a block\ncomment --;\n[a](t)\nkey = va\\;lue ; tail\n"
        "#include \"inc.conf\"\n#tryinclude missing.conf\n[a](+)\nkey = later\n", encoding="utf-8")
    conf = parse_conf(tmp_path / "main.conf")
    assert [s.name for s in conf.sections] == ["t", "a", "c"]
    a = resolve(conf, conf.sections[1])
    assert a.all("key") == ["va;lue", "later"] and a.get("shared") == "yes" and a.get("extra") == "1"
    assert conf.sections[0].is_template and not conf.sections[1].is_template
    assert resolve(conf, conf.sections[2]).entries[-1] == Entry("k", "=>", "v", "inc.conf:3")
    assert [(k, n) for k, n, _ in conf.directives] == [("include", "inc.conf"), ("tryinclude", "missing.conf")]


@pytest.mark.parametrize("text, message", [
    ("[a\nk = v\n", "malformed section header"),
    ("[a]\njust words\n", "not 'key = value'"),
    ("k = v\n[a]\n", "before any [section]"),
    ("[a](nope)\n", "used before it is defined"),
    ("[a](+)\n", "does not exist"),
    ("[a]\n#include gone.conf\n", "no such file"),
    ("[a]\n;-- never closed\n", "unterminated"),
])
def test_parser_rejects_broken_config(tmp_path: Path, text: str, message: str):
    (tmp_path / "bad.conf").write_text(text, encoding="utf-8")
    with pytest.raises(ConfError, match=re.escape(message)):
        parse_conf(tmp_path / "bad.conf")


def test_every_file_in_dialplans_is_checked_here():
    on_disk = sorted(p.name for p in DIALPLANS.glob("*.conf"))
    assert on_disk == sorted(CONF_FILES + INCLUDED_FILES)
    included = {n for _, n, _ in load("pjsip.conf").directives}
    assert set(INCLUDED_FILES) <= included


@pytest.mark.parametrize("name", CONF_FILES)
def test_every_config_file_parses(name: str):
    conf = parse_conf(DIALPLANS / name)
    assert conf.sections, f"{name} has no sections"
    names = [s.name for s in conf.sections]
    for s in conf.sections:
        if s.is_template:
            assert names.count(s.name) == 1, f"template [{s.name}] is defined twice"


# ---------------------------------------------------------------------------------------------------------------------
# Asterisk's own documentation (the XML of the recorded build): option, application and function names
# ---------------------------------------------------------------------------------------------------------------------

@cache
def _docs() -> ET.Element | None:
    shared = shared_dir()
    if shared is None or not (shared / "core-en_US.xml").exists():
        return None
    return ET.parse(shared / "core-en_US.xml").getroot()


def docs() -> ET.Element:
    root = _docs()
    if root is None:
        pytest.skip("shared/asterisk/core-en_US.xml not found beside the clone nor at /work/shared")
    return root


def documented_options(conf_file: str) -> dict[str, set[str]]:
    """{object type: option names} for one config file, as Asterisk documents it."""
    out: dict[str, set[str]] = {}
    for cf in docs().iter("configFile"):
        if cf.get("name") == conf_file:
            for obj in cf.iter("configObject"):
                out.setdefault(obj.get("name", ""), set()).update(o.get("name", "") for o in obj.iter("configOption"))
    assert out, f"no documentation for {conf_file}"
    return out


def test_pjsip_options_are_ones_asterisk_knows():
    opts = documented_options("pjsip.conf")
    conf = load("pjsip.conf")
    for sec in conf.sections:
        r = resolve(conf, sec)
        type_ = r.get("type")
        assert type_ in opts, f"{sec.where}: [{sec.name}] has type {type_!r}"
        for e in r.entries:
            assert e.key in opts[type_], f"{e.where}: {e.key!r} is not a pjsip.conf {type_} option"


def test_ari_options_are_ones_asterisk_knows():
    opts = documented_options("ari.conf")
    conf = load("ari.conf")
    for sec in conf.sections:
        type_ = "general" if sec.name == "general" else sec.get("type")
        assert type_ in opts, f"{sec.where}: [{sec.name}] has type {type_!r}"
        for e in sec.entries:
            assert e.key in opts[type_], f"{e.where}: {e.key!r} is not an ari.conf {type_} option"


def test_auth_type_is_accepted_by_asterisk_20_and_22():
    conf = load("pjsip.conf")
    auths = [resolve(conf, s) for s in conf.sections if resolve(conf, s).get("type") == "auth"]
    assert len(auths) >= 3
    # "digest" only exists from 20.12/22.2 on; "userpass" is accepted (converted) everywhere.
    assert {a.get("auth_type") for a in auths} == {"userpass"}


def test_dialplan_uses_only_applications_and_functions_asterisk_has():
    apps = {a.get("name") for a in docs().iter("application")}
    funcs = {f.get("name") for f in docs().iter("function")}
    used_apps = {step.app for ctx in dialplan().contexts.values() for steps in ctx.values() for step in steps.values()}
    assert used_apps and used_apps <= apps, used_apps - apps
    text = (DIALPLANS / "extensions.conf").read_text(encoding="utf-8")
    used_funcs = set(re.findall(r"\$\{([A-Z_]+)\(", text))
    assert used_funcs and used_funcs <= funcs, used_funcs - funcs


# ---------------------------------------------------------------------------------------------------------------------
# pjsip.conf
# ---------------------------------------------------------------------------------------------------------------------

def test_udp_transport_on_5060_and_a_commented_tls_example():
    t = load("pjsip.conf").one("transport-udp")
    assert (t.get("type"), t.get("protocol"), t.get("bind")) == ("transport", "udp", "0.0.0.0:5060")
    assert not [s for s in load("pjsip.conf").sections if resolve(load("pjsip.conf"), s).get("protocol") == "tls"]
    raw = (DIALPLANS / "pjsip.conf").read_text(encoding="utf-8")
    assert re.search(r"^;\[transport-tls\]$", raw, re.MULTILINE) and re.search(r"^;protocol = tls$", raw, re.MULTILINE)


def test_agent_template_settings():
    conf = load("pjsip.conf")
    ep = resolve(conf, conf.one("agent-template"))
    assert conf.one("agent-template").is_template
    assert ep.get("type") == "endpoint" and ep.get("context") == "from-agents"
    assert ep.get("disallow") == "all" and set(ep.get("allow").split(",")) == {"ulaw", "alaw", "g722"}
    assert ep.get("dtmf_mode") == "rfc4733" and ep.get("direct_media") == "no"
    assert (ep.get("rtp_symmetric"), ep.get("force_rport"), ep.get("rewrite_contact")) == ("yes", "yes", "yes")
    aor = resolve(conf, conf.one("agent-aor"))
    assert (aor.get("type"), aor.get("max_contacts"), aor.get("remove_existing")) == ("aor", "1", "yes")
    assert 0 < int(aor.get("qualify_frequency")) <= 60, "an unplugged phone must be noticed within a minute"


def test_pjsip_includes_the_generated_agents_and_then_the_secrets():
    directives = [(k, n) for k, n, _ in load("pjsip.conf").directives]
    assert directives == [("include", "pjsip_agents.conf"), ("tryinclude", "pjsip_secrets.conf")]
    last = (DIALPLANS / "pjsip.conf").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert last == "#tryinclude pjsip_secrets.conf", "secrets append with (+): they must come after every section"


def test_every_pjsip_agent_of_the_roster_is_a_registrable_endpoint():
    conf = load("pjsip.conf")
    exts = [a.endpoint.split("/", 1)[1] for a in roster().agents if a.endpoint.startswith("PJSIP/")]
    assert exts == [str(n) for n in range(1001, 1008)]
    for ext in exts:
        ep = resolve(conf, conf.one(ext, type_="endpoint"))
        assert ep.get("context") == "from-agents" and ep.get("transport") == "transport-udp"
        auth = resolve(conf, conf.one(ep.get("auth"), type_="auth"))
        assert auth.get("username") == ext
        aor = resolve(conf, conf.one(ep.get("aors"), type_="aor"))
        assert aor.get("max_contacts") == "1"
    for a in roster().agents:
        if not a.endpoint.startswith("PJSIP/"):
            assert not any(a.endpoint.split(":")[-1] == s.name for s in conf.sections)


def test_pjsip_references_point_at_sections_of_the_right_type():
    conf = load("pjsip.conf")
    refs = {"auth": "auth", "outbound_auth": "auth", "aors": "aor", "transport": "transport", "endpoint": "endpoint"}
    checked = 0
    for sec in conf.sections:
        if sec.is_template:
            continue
        r = resolve(conf, sec)
        for key, type_ in refs.items():
            for value in r.all(key):
                for name in value.split(","):
                    assert conf.named(name.strip(), type_=type_), f"{sec.where}: {key} = {name} is not a {type_}"
                    checked += 1
    assert checked > 20


def test_every_endpoint_context_exists_in_the_dialplan():
    conf = load("pjsip.conf")
    contexts = {resolve(conf, s).get("context") for s in conf.sections
                if not s.is_template and resolve(conf, s).get("type") == "endpoint"}
    assert contexts == {"from-agents", "from-trunk"}
    assert contexts <= set(dialplan().contexts)


def test_trunk_example_is_complete_and_is_what_the_dialplan_dials():
    conf = load("pjsip.conf")
    trunk = dialplan().globals["TRUNK"]
    ep = resolve(conf, conf.one(trunk, type_="endpoint"))
    assert ep.get("context") == "from-trunk" and ep.get("identify_by") == "ip"
    assert conf.one(ep.get("outbound_auth"), type_="auth")
    reg = [resolve(conf, s) for s in conf.sections if resolve(conf, s).get("type") == "registration"]
    ident = [resolve(conf, s) for s in conf.sections if resolve(conf, s).get("type") == "identify"]
    assert [r.get("endpoint") for r in reg] == [trunk] and [i.get("endpoint") for i in ident] == [trunk]
    assert reg[0].get("outbound_auth") == ep.get("outbound_auth")


# ---------------------------------------------------------------------------------------------------------------------
# No secrets committed; the engine's interfaces on loopback only
# ---------------------------------------------------------------------------------------------------------------------

SECRET_KEYS = {"password", "secret", "md5_cred", "password_digest", "oauth_secret", "refresh_token"}


@pytest.mark.parametrize("name", CONF_FILES)
def test_no_real_secret_is_committed(name: str):
    for sec in parse_conf(DIALPLANS / name).sections:
        for e in sec.entries:
            if e.key in SECRET_KEYS:
                assert e.value.startswith("CHANGE_ME"), f"{e.where}: {e.key} is not a placeholder"


def test_ari_user_for_the_engine():
    conf = load("ari.conf")
    general, user = conf.one("general"), conf.one("ivr-engine")
    assert general.get("enabled") == "yes" and general.get("pretty") == "no"
    assert (user.get("type"), user.get("read_only"), user.get("password")) == ("user", "no", "CHANGE_ME")
    assert [s.name for s in conf.sections] == ["general", "ivr-engine"], "one ARI user: the engine"


def test_http_serves_ari_on_loopback_8088_only():
    g = load("http.conf").one("general")
    assert (g.get("enabled"), g.get("bindaddr"), g.get("bindport")) == ("yes", "127.0.0.1", "8088")
    assert g.get("tlsenable") in (None, "no") and g.get("tlsbindaddr") is None


def test_ami_on_loopback_with_least_privilege():
    conf = load("manager.conf")
    g, user = conf.one("general"), conf.one("ivr-engine")
    assert (g.get("enabled"), g.get("bindaddr"), g.get("port")) == ("yes", "127.0.0.1", "5038")
    assert g.get("webenabled") == "no"
    assert user.all("deny") == ["0.0.0.0/0.0.0.0"] and user.all("permit") == ["127.0.0.1/255.255.255.255"]
    read, write = set(user.get("read").split(",")), set(user.get("write").split(","))
    # Presence needs system (ContactStatus, PeerStatus) and call (DeviceStateChange); nothing that floods (reporting: RTCP).
    assert {"system", "call"} <= read and not read & {"all", "reporting", "dialplan", "dtmf", "cdr", "cel"}
    # PJSIPShowEndpoints/Contacts are "system" actions; nothing that runs commands, edits config or originates.
    assert write == {"system"}
    assert [s.name for s in conf.sections] == ["general", "ivr-engine"]


def test_music_on_hold_classes_exist_and_the_fallback_queue_uses_one():
    moh = load("musiconhold.conf")
    for cls in ("default", "clinic"):
        sec = moh.one(cls)
        assert sec.get("mode") == "files" and sec.get("directory").startswith("/var/lib/asterisk/moh")
    assert load("queues.conf").one("ivr-fallback").get("musicclass") in {"default", "clinic"}


# ---------------------------------------------------------------------------------------------------------------------
# The generator and the committed files it produced
# ---------------------------------------------------------------------------------------------------------------------

def test_committed_pjsip_agents_conf_is_the_generator_output():
    committed = (DIALPLANS / "pjsip_agents.conf").read_text(encoding="utf-8")
    assert committed == render_pjsip_agents(roster()), "run: ivr dialplan endpoints --out dialplans/pjsip_agents.conf"


def _member_block(text: str) -> str:
    lines = text.splitlines(keepends=True)
    start = next(i for i, ln in enumerate(lines) if ln.rstrip() == QUEUE_BLOCK_BEGIN)
    end = next(i for i, ln in enumerate(lines) if ln.rstrip() == QUEUE_BLOCK_END)
    return "".join(lines[start:end + 1])


def test_committed_queue_members_are_the_generator_output():
    text = (DIALPLANS / "queues.conf").read_text(encoding="utf-8")
    assert _member_block(text) == render_queue_members(roster()), "run: ivr dialplan members --update dialplans/queues.conf"
    members = load("queues.conf").one("ivr-fallback").all("member")
    assert [m.split(",")[0] for m in members] == [f"PJSIP/{n}" for n in range(1001, 1008)]


def test_fallback_queue_rings_everyone_and_skips_busy_and_absent_agents():
    q = load("queues.conf").one("ivr-fallback")
    assert q.get("strategy") == "ringall" and q.get("ringinuse") == "no"
    assert {"unavailable", "invalid"} <= set(q.get("joinempty").split(",")), "no agent registered: do not wait"
    assert "inuse" not in q.get("joinempty").split(","), "all agents busy: wait for one"


def test_generator_skips_non_pjsip_endpoints_saying_why():
    r = _roster("PJSIP/2001", "client:hana", "sip:ivan@pharmacy.example", "sips:x@pbx.example", "SIP/old",
                "+15551230000", "PJSIP/2002")
    text = render_pjsip_agents(r)
    conf = _parse_text(text)
    assert sorted(_generated_names(text)) == ["2001", "2001-auth", "2002", "2002-auth"]
    assert conf.one("2001", type_="endpoint") and conf.one("2002-auth", type_="auth")
    skipped = [ln for ln in text.splitlines() if ln.startswith("; skipped ")]
    assert [ln.split()[2] for ln in skipped] == ["a1", "a2", "a3", "a4", "a5"]
    assert "Twilio" in skipped[0] and "another server" in skipped[1] and "chan_sip" in skipped[3]
    assert "trunk" in skipped[4]
    members = render_queue_members(r)
    assert [ln for ln in members.splitlines() if ln.startswith("member")] == \
        ["member => PJSIP/2001,0,Agent 0", "member => PJSIP/2002,0,Agent 6"]


def _generated_names(text: str) -> set[str]:
    return set(re.findall(r"^\[([^\]]+)\]", text, re.MULTILINE))


def _parse_text(text: str) -> Conf:
    """pjsip.conf with ``text`` as its agents include: how Asterisk reads a generated file."""
    tmp = Path(tempfile.mkdtemp())
    try:
        base = (DIALPLANS / "pjsip.conf").read_text(encoding="utf-8")
        assert "#include pjsip_agents.conf\n" in base
        (tmp / "pjsip_agents.conf").write_text(text, encoding="utf-8")
        (tmp / "pjsip.conf").write_text(base, encoding="utf-8")
        return parse_conf(tmp / "pjsip.conf")
    finally:
        shutil.rmtree(tmp)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True), min_size=1, max_size=5, unique=True))
def test_generator_renders_every_valid_pjsip_name(names: list[str]):
    names = [n for n in names if n.lower() not in RESERVED_SECTION_NAMES and not n.endswith("-auth")]
    if not names:
        return
    r = _roster(*(f"PJSIP/{n}" for n in names))
    conf = _parse_text(render_pjsip_agents(r))
    for n in names:
        ep = resolve(conf, conf.one(n, type_="endpoint"))
        assert ep.get("auth") == f"{n}-auth" and ep.get("aors") == n and ep.get("context") == "from-agents"
        assert resolve(conf, conf.one(n, type_="aor")).get("max_contacts") == "1"


def test_a_shared_phone_is_rendered_once_for_both_agents():
    r = Roster(agents=[AgentSpec(id="day", name="Day Desk", endpoint="PJSIP/3001"),
                       AgentSpec(id="night", name="Night Desk", endpoint="PJSIP/3001")])
    conf = _parse_text(render_pjsip_agents(r))
    assert resolve(conf, conf.one("3001", type_="endpoint")).get("callerid") == '"Day Desk / Night Desk" <3001>'
    assert render_queue_members(r).count("member =>") == 1


def test_generator_refuses_names_that_would_merge_with_other_sections():
    with pytest.raises(ValueError, match="clinic-trunk"):
        render_pjsip_agents(_roster("PJSIP/clinic-trunk"))
    with pytest.raises(ValueError, match="auth section"):
        render_pjsip_agents(_roster("PJSIP/4001", "PJSIP/4001-auth"))


def test_names_cannot_break_the_config_line():
    r = Roster(agents=[AgentSpec(id="q", name='Dr. "Q" <x>; Smith, MD', endpoint="PJSIP/5001")])
    conf = _parse_text(render_pjsip_agents(r))
    assert resolve(conf, conf.one("5001", type_="endpoint")).get("callerid") == '"Dr. Q x Smith, MD" <5001>'
    member = [ln for ln in render_queue_members(r).splitlines() if ln.startswith("member")]
    assert member == ["member => PJSIP/5001,0,Dr. \"Q\" <x> Smith MD"]


def test_password_placeholder_is_configurable_but_never_breaks_the_file():
    conf = _parse_text(render_pjsip_agents(_roster("PJSIP/6001"), password_var="CHANGE_ME_{ext}"))
    assert resolve(conf, conf.one("6001-auth")).get("password") == "CHANGE_ME_6001"
    for bad in ("a;b", "", " x", "a\nb", "[x]"):
        with pytest.raises(ValueError):
            render_pjsip_agents(_roster("PJSIP/6001"), password_var=bad)


def test_replace_generated_block():
    text = f"[q]\nstrategy = ringall\n{QUEUE_BLOCK_BEGIN}\nmember => PJSIP/old\n{QUEUE_BLOCK_END}\n; after\n"
    out = replace_generated_block(text, render_queue_members(_roster("PJSIP/7001")))
    assert "PJSIP/old" not in out and "member => PJSIP/7001,0,Agent 0" in out
    assert out.startswith("[q]\nstrategy = ringall\n") and out.endswith(f"{QUEUE_BLOCK_END}\n; after\n")
    for broken in ("[q]\n", f"{QUEUE_BLOCK_END}\n{QUEUE_BLOCK_BEGIN}\n", f"{QUEUE_BLOCK_BEGIN}\n{QUEUE_BLOCK_END}\n" * 2):
        with pytest.raises(ValueError):
            replace_generated_block(broken, "x\n")


# ---------------------------------------------------------------------------------------------------------------------
# `ivr dialplan ...`
# ---------------------------------------------------------------------------------------------------------------------

def test_cli_endpoints_prints_the_generator_output():
    result = CliRunner().invoke(app, ["endpoints", "--agents", str(ROOT / "agents.yaml")])
    assert result.exit_code == 0, result.output
    assert result.stdout == render_pjsip_agents(roster())
    assert result.stdout == (DIALPLANS / "pjsip_agents.conf").read_text(encoding="utf-8")


def test_cli_endpoints_writes_the_include(tmp_path: Path):
    out = tmp_path / "pjsip_agents.conf"
    result = CliRunner().invoke(app, ["endpoints", "--agents", str(ROOT / "agents.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == render_pjsip_agents(roster())


def test_cli_reports_a_broken_roster_with_its_position(tmp_path: Path):
    bad = tmp_path / "agents.yaml"
    bad.write_text("agents:\n  - {id: x, name: X, endpoint: 'tel:1'}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["endpoints", "--agents", str(bad)])
    assert result.exit_code == 1
    assert "agents.yaml:2" in result.output and "not a softphone endpoint" in result.output


def test_cli_members_rewrites_the_queue_block(tmp_path: Path):
    q = tmp_path / "queues.conf"
    committed = (DIALPLANS / "queues.conf").read_text(encoding="utf-8")
    q.write_text(committed.replace("member => PJSIP/1003,0,Chen Wu\n", ""), encoding="utf-8")
    result = CliRunner().invoke(app, ["members", "--agents", str(ROOT / "agents.yaml"), "--update", str(q)])
    assert result.exit_code == 0, result.output
    assert q.read_text(encoding="utf-8") == committed
    printed = CliRunner().invoke(app, ["members", "--agents", str(ROOT / "agents.yaml")])
    assert printed.exit_code == 0 and printed.stdout == render_queue_members(roster())


# ---------------------------------------------------------------------------------------------------------------------
# extensions.conf: a model of the dialplan, and an interpreter for the subset it uses
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    app: str
    data: str
    label: str | None
    where: str


@dataclass
class Dialplan:
    globals: dict[str, str]
    contexts: dict[str, dict[str, dict[int, Step]]]  # context -> extension -> priority -> step
    includes: dict[str, list[str]]

    def find(self, context: str, exten: str) -> str | None:
        """The extension Asterisk would run for ``exten``: an exact name first, then the most specific pattern."""
        exts = self.contexts[context]
        if exten in exts:
            return exten
        matching = [p for p in exts if p.startswith("_") and _pattern_regex(p).fullmatch(exten)]
        return min(matching, key=_specificity) if matching else None


def _pattern_parts(pattern: str) -> Iterator[tuple[str, int]]:
    """(regex, how many characters it admits) per position of an Asterisk ``_`` pattern."""
    body, i = pattern[1:], 0
    while i < len(body):
        ch = body[i]
        if ch.upper() in "XZN":
            yield {"X": ("[0-9]", 10), "Z": ("[1-9]", 9), "N": ("[2-9]", 8)}[ch.upper()]
        elif ch == "[":
            end = body.index("]", i)
            chars: set[str] = set()
            inner, j = body[i + 1:end], 0
            while j < len(inner):
                if j + 2 < len(inner) and inner[j + 1] == "-":
                    chars |= {chr(c) for c in range(ord(inner[j]), ord(inner[j + 2]) + 1)}
                    j += 3
                else:
                    chars.add(inner[j])
                    j += 1
            yield "[" + "".join(re.escape(c) for c in sorted(chars)) + "]", len(chars)
            i = end
        elif ch == ".":
            yield ".+", 1000
        elif ch == "!":
            yield ".*", 1001
        else:
            yield re.escape(ch), 1
        i += 1


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(r for r, _ in _pattern_parts(pattern)))


def _specificity(pattern: str) -> list[int]:
    return [n for _, n in _pattern_parts(pattern)]


def _split_top(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split on ``sep`` outside parentheses, ``${}``, ``$[]`` and quotes (how Asterisk splits app arguments)."""
    parts, depth, quote, cur = [], 0, False, []
    for ch in text:
        if ch == '"':
            quote = not quote
        elif not quote and ch in "([{":
            depth += 1
        elif not quote and ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0 and not quote and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


@cache
def dialplan() -> Dialplan:
    conf = load("extensions.conf")
    globals_ = {e.key: e.value for e in conf.one("globals").entries}
    contexts: dict[str, dict[str, dict[int, Step]]] = {}
    includes: dict[str, list[str]] = {}
    for sec in conf.sections:
        if sec.name in ("general", "globals"):
            continue
        assert sec.name not in contexts, f"context [{sec.name}] is defined twice"
        exts: dict[str, dict[int, Step]] = contexts.setdefault(sec.name, {})
        includes[sec.name] = []
        last: tuple[str, int] | None = None
        for e in sec.entries:
            assert e.op == "=>", f"{e.where}: dialplan lines use '=>'"
            if e.key == "include":
                includes[sec.name].append(e.value)
                continue
            if e.key == "exten":
                name, prio, rest = _split_top(e.value, ",", 2)
            elif e.key == "same":
                assert last is not None, f"{e.where}: 'same' with no extension before it"
                name = last[0]
                prio, rest = _split_top(e.value, ",", 1)
            else:
                raise AssertionError(f"{e.where}: unknown dialplan keyword {e.key!r}")
            m = re.fullmatch(r"(\d+|n|hint)(?:\(([\w-]+)\))?", prio.strip())
            assert m, f"{e.where}: bad priority {prio!r}"
            if m.group(1) == "hint":
                continue
            number = int(m.group(1)) if m.group(1).isdigit() else (last[1] + 1 if last and last[0] == name else 0)
            assert number >= 1, f"{e.where}: priority n with no priority before it"
            am = re.fullmatch(r"(\w+)(?:\((.*)\))?", rest.strip(), re.DOTALL)
            assert am, f"{e.where}: cannot read application {rest!r}"
            steps = exts.setdefault(name.strip(), {})
            assert number not in steps, f"{e.where}: priority {number} of {name} is defined twice"
            steps[number] = Step(am.group(1), am.group(2) or "", m.group(2), e.where)
            last = (name.strip(), number)
    for ctx, exts in contexts.items():
        for name, steps in exts.items():
            assert 1 in steps and sorted(steps) == list(range(1, len(steps) + 1)), f"{ctx},{name}: priorities have gaps"
            labels = [s.label for s in steps.values() if s.label]
            assert len(labels) == len(set(labels)), f"{ctx},{name}: a label is used twice"
    return Dialplan(globals_, contexts, includes)


# --- expressions: $[ ... ] -------------------------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:("(?:[^"]*)")|(!=|<=|>=|[=<>|&+\-()])|([^\s"=<>!|&+\-()]+))')


def evaluate(expr: str) -> str:
    """Evaluate an Asterisk ``$[...]`` expression body: | & = != < > <= >= + - and parentheses."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr.rstrip()):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise AssertionError(f"cannot read expression {expr!r} at {pos}")
        s, op, word = m.groups()
        tokens.append(("v", s[1:-1]) if s is not None else ("o", op) if op else ("v", word))
        pos = m.end()

    def num(v: str) -> int | None:
        return int(v) if re.fullmatch(r"-?\d+", v) else None

    def cmp(a: str, b: str, op: str) -> str:
        x, y = (num(a), num(b)) if num(a) is not None and num(b) is not None else (a, b)
        return "1" if {"=": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op] else "0"

    def parse(level: int, i: int) -> tuple[str, int]:
        ops = [("|",), ("&",), ("=", "!=", "<", ">", "<=", ">="), ("+", "-")]
        if level == len(ops):
            if i >= len(tokens):
                raise AssertionError(f"expression {expr!r} ends where a value is expected")
            kind, val = tokens[i]
            if (kind, val) == ("o", "("):
                v, i = parse(0, i + 1)
                assert i < len(tokens) and tokens[i] == ("o", ")"), f"unbalanced ( in {expr!r}"
                return v, i + 1
            if kind != "v":
                raise AssertionError(f"expression {expr!r}: operator {val!r} where a value is expected")
            return val, i + 1
        left, i = parse(level + 1, i)
        while i < len(tokens) and tokens[i][0] == "o" and tokens[i][1] in ops[level]:
            op = tokens[i][1]
            right, i = parse(level + 1, i + 1)
            if op == "|":
                left = left if left not in ("", "0") else right
            elif op == "&":
                left = right if left not in ("", "0") and right not in ("", "0") else "0"
            elif op in ("+", "-"):
                a, b = num(left), num(right)
                assert a is not None and b is not None, f"{expr!r}: {left!r} {op} {right!r} is not arithmetic"
                left = str(a + b if op == "+" else a - b)
            else:
                left = cmp(left, right, op)
        return left, i

    value, end = parse(0, 0)
    assert end == len(tokens), f"expression {expr!r} has trailing tokens"
    return value


# --- one call through the dialplan ------------------------------------------------------------------------------------

World = Callable[[str, list[str]], dict[str, str]]
"""What the outside does when the call runs an application: ``{"VAR": "value"}`` to set
(STASISSTATUS, QUEUESTATUS, DIALSTATUS), ``{"hangup": "why"}`` when the call ends there
(a person answered and the conversation finished, or the caller hung up), or
``{"continue": "context,exten,priority"}`` for ARI continueInDialplan."""

LOADED_MODULES = frozenset({"app_queue.so"})


@dataclass
class Call:
    """What the caller experienced: ``(application, expanded arguments)`` in order, and how it ended."""

    events: list[tuple[str, tuple[str, ...]]]
    ended: str

    def apps(self) -> list[str]:
        return [a for a, _ in self.events]

    def index(self, app: str, first_arg_prefix: str = "") -> int:
        return next(i for i, (a, args) in enumerate(self.events) if a == app and args[0].startswith(first_arg_prefix))

    def dials(self) -> list[str]:
        return [args[0] for a, args in self.events if a == "Dial"]


def run(context: str, exten: str, world: World, *, modules: frozenset[str] = LOADED_MODULES,
        caller: str = "+15551230000", max_steps: int = 500) -> Call:
    """Walk one call from ``context,exten,1`` to its end, as Asterisk would run it."""
    dp = dialplan()
    chan: dict[str, str] = {}
    events: list[tuple[str, tuple[str, ...]]] = []
    functions: dict[str, Callable[[str], str]] = {
        "CALLERID": lambda arg: {"num": caller, "name": ""}[arg],
        "IFMODULE": lambda arg: "1" if arg in modules else "0",
    }

    def lookup(name: str) -> str:
        m = re.fullmatch(r"([A-Z_]+)\((.*)\)", name)
        if m:
            assert m.group(1) in functions, f"function {m.group(1)} is not modelled"
            return functions[m.group(1)](m.group(2))
        builtins = {"EXTEN": where[1], "CONTEXT": where[0], "CHANNEL": "PJSIP/caller-00000001"}
        return chan.get(name, builtins.get(name, dp.globals.get(name, "")))

    def expand(text: str) -> str:
        out, i = [], 0
        while i < len(text):
            if text.startswith("${", i) or text.startswith("$[", i):
                close = "}" if text[i + 1] == "{" else "]"
                depth, j = 0, i + 1
                while True:
                    if text[j] in "{[":
                        depth += 1
                    elif text[j] in "}]":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                    assert j < len(text), f"unterminated {text[i:i + 2]} in {text!r}"
                inner = expand(text[i + 2:j])
                out.append(lookup(inner) if close == "}" else evaluate(inner))
                i = j + 1
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def goto(target: str) -> None:
        parts = [p.strip() for p in target.split(",")]
        ctx, ext = where[0], where[1]
        if len(parts) == 3:
            ctx, ext, prio = parts
        elif len(parts) == 2:
            ext, prio = parts
        else:
            (prio,) = parts
        enter(ctx, ext, prio)

    def enter(ctx: str, ext: str, prio: str) -> None:
        assert ctx in dp.contexts, f"no context {ctx!r}"
        name = dp.find(ctx, ext)
        if name is None:  # Asterisk runs the context's 'i' (invalid) extension, or hangs up
            assert "i" in dp.contexts[ctx], f"{ctx},{ext}: no such extension and no 'i': Asterisk hangs up"
            name = ext = "i"
        steps = dp.contexts[ctx][name]
        number = int(prio) if prio.isdigit() else next((n for n, s in steps.items() if s.label == prio), None)
        assert number in steps, f"{ctx},{name}: no priority or label {prio!r}"
        where[:] = [ctx, ext, name, number]

    where: list = [context, exten, "", 0]
    enter(context, exten, "1")
    for _ in range(max_steps):
        ctx, _, name, number = where
        step = dp.contexts[ctx][name].get(number)
        if step is None:
            return Call(events, f"fell off the end of {ctx},{name}")  # autofallthrough: Asterisk hangs up
        where[3] = number + 1
        data = expand(step.data)
        if step.app in ("NoOp", "Verbose"):
            continue
        if step.app == "Set":
            var, _, value = data.partition("=")
            chan[var.lstrip("_")] = value
            continue
        if step.app == "Goto":
            goto(data)
            continue
        if step.app == "GotoIf":
            cond, _, targets = data.partition("?")
            yes, _, no = targets.partition(":")
            chosen = yes if evaluate_cond(cond) else no
            if chosen:
                goto(chosen)
            continue
        args = tuple(a.strip() for a in _split_top(data, ",")) if data else ()
        events.append((step.app, args))
        if step.app == "Hangup":
            return Call(events, "Hangup()")
        if step.app in ("Answer", "Progress", "Playback"):
            continue
        if step.app in ("Stasis", "Queue", "Dial"):
            outcome = world(step.app, list(args))
            if "hangup" in outcome:
                return Call(events, outcome["hangup"])
            if "continue" in outcome:
                goto(outcome["continue"])
            chan.update({k: v for k, v in outcome.items() if k != "continue"})
            continue
        raise AssertionError(f"{step.where}: application {step.app} is not modelled by this test")
    raise AssertionError(f"the call did not end in {max_steps} steps: a loop")


def evaluate_cond(value: str) -> bool:
    """pbx_checkcondition: empty or 0 is false, anything else true."""
    value = value.strip()
    return bool(value) and not (re.fullmatch(r"-?\d+", value) and int(value) == 0)


def world(stasis: str = "FAILED", queue: str = "TIMEOUT", dial: str | dict[str, str] = "NOANSWER") -> World:
    """A simple outside: the engine's Stasis result, the queue's result, and each Dial's result (by number)."""
    def react(app_: str, args: list[str]) -> dict[str, str]:
        if app_ == "Stasis":
            return {"STASISSTATUS": stasis}
        if app_ == "Queue":
            return {"hangup": "an agent answered"} if queue == "ANSWERED" else {"QUEUESTATUS": queue}
        status = dial if isinstance(dial, str) else next((v for k, v in dial.items() if k in args[0]), "NOANSWER")
        return {"hangup": f"{args[0]} answered"} if status == "ANSWER" else {"DIALSTATUS": status}
    return react


def nurse() -> str:
    g = dialplan().globals
    return f"PJSIP/{g['NURSE_LINE']}@{g['TRUNK']}"


def service() -> str:
    g = dialplan().globals
    return f"PJSIP/{g['ANSWERING_SERVICE']}@{g['TRUNK']}"


# --- static properties ------------------------------------------------------------------------------------------------

def test_the_contexts_of_the_engine_contract_exist():
    dp = dialplan()
    assert {"from-trunk", "ivr-fallback", "ivr-transfer", "from-agents"} <= set(dp.contexts)
    assert 1 in dp.contexts["ivr-fallback"]["s"]
    assert {"_X.", "_+X."} <= set(dp.contexts["ivr-transfer"])
    assert dp.globals["NURSE_LINE"].startswith("+") and dp.globals["TRUNK"] == "clinic-trunk"


def test_inbound_calls_go_to_the_ivr_engine_stasis_app_with_a_failed_branch():
    steps = dialplan().contexts["from-trunk"]["_[+0-9]."]
    stasis = [s for s in steps.values() if s.app == "Stasis"]
    assert [s.data for s in stasis] == ["ivr-engine,inbound,${EXTEN}"]
    after = [s for n, s in sorted(steps.items()) if n > next(n for n, s in steps.items() if s.app == "Stasis")]
    assert after[0].app == "GotoIf" and after[0].data == '$["${STASISSTATUS}" = "FAILED"]?ivr-fallback,s,1'


def test_every_goto_and_include_target_exists():
    dp = dialplan()
    checked = 0
    for ctx, exts in dp.contexts.items():
        assert all(inc in dp.contexts for inc in dp.includes[ctx]), f"{ctx}: includes an unknown context"
        for name, steps in exts.items():
            for step in steps.values():
                if step.app == "Goto":
                    targets = [step.data]
                elif step.app == "GotoIf":
                    targets = [t for t in step.data.rpartition("?")[2].split(":") if t]
                else:
                    continue
                for target in targets:
                    parts = target.split(",")
                    c = parts[0] if len(parts) == 3 else ctx
                    e = parts[-2] if len(parts) >= 2 else name
                    p = parts[-1]
                    e = e.replace("${MAIN_DID}", dp.globals["MAIN_DID"])
                    assert c in dp.contexts, f"{step.where}: no context {c}"
                    found = dp.find(c, e)
                    assert found, f"{step.where}: no extension {e} in {c}"
                    prios = dp.contexts[c][found]
                    assert (p.isdigit() and int(p) in prios) or any(s.label == p for s in prios.values()), \
                        f"{step.where}: no priority {p} in {c},{found}"
                    checked += 1
    assert checked >= 8


def test_nothing_but_the_engine_can_reach_ivr_transfer():
    conf = load("pjsip.conf")
    contexts = {resolve(conf, s).get("context") for s in conf.sections}
    assert "ivr-transfer" not in contexts and "ivr-fallback" not in contexts
    assert not any("ivr-transfer" in incs for incs in dialplan().includes.values())
    for ctx in ("from-trunk", "from-agents"):
        for steps in dialplan().contexts[ctx].values():
            assert not any("ivr-transfer" in s.data for s in steps.values())


# --- calls walked through the dialplan --------------------------------------------------------------------------------

def test_engine_connected_the_engine_owns_the_call():
    call = run("from-trunk", "+15550100000", world(stasis="SUCCESS"))
    assert call.events == [("Stasis", ("ivr-engine", "inbound", "+15550100000")), ("Hangup", ())]


@pytest.mark.parametrize("did", ["+15550100000", "15550100000", "5550100"])
def test_engine_down_the_caller_still_reaches_agents_then_the_nurse_line(did: str):
    call = run("from-trunk", did, world(stasis="FAILED"))
    assert call.events[0] == ("Stasis", ("ivr-engine", "inbound", did))
    apps = call.apps()
    assert apps[1:4] == ["Answer", "Playback", "Queue"], "answered, told to hold, then the agents ring"
    assert call.events[3][1][0] == "ivr-fallback"
    assert call.index("Queue") < call.index("Dial", nurse()) < apps.index("Hangup")
    assert call.ended == "Hangup()"


def test_an_unknown_stasis_status_is_treated_as_failed():
    call = run("from-trunk", "+15550100000", world(stasis=""))
    assert "Queue" in call.apps() and nurse() in call.dials()


def test_trunks_without_a_did_use_the_main_number():
    call = run("from-trunk", "s", world(stasis="SUCCESS"))
    assert call.events[0] == ("Stasis", ("ivr-engine", "inbound", dialplan().globals["MAIN_DID"]))


def test_fallback_tries_people_every_round_before_apologising():
    call = run("ivr-fallback", "s", world())  # nobody answers anywhere: trunk down, agents away
    rounds = int(dialplan().globals["FALLBACK_ROUNDS"])
    assert call.apps().count("Queue") == rounds and call.dials() == [nurse(), service()] * rounds
    hangup = call.apps().index("Hangup")
    assert hangup == len(call.events) - 1 and call.ended == "Hangup()"
    assert call.events[hangup - 1] == ("Playback", ("im-sorry&pls-try-call-later",))
    # Never silence: the caller is always hearing a prompt, the queue's music or the far end ringing.
    assert set(call.apps()) <= {"Answer", "Playback", "Queue", "Dial", "Hangup"}


def test_an_agent_answering_ends_the_fallback():
    call = run("ivr-fallback", "s", world(queue="ANSWERED"))
    assert call.apps() == ["Answer", "Playback", "Queue"] and call.ended == "an agent answered"


def test_no_agent_registered_goes_straight_to_the_nurse_line():
    call = run("ivr-fallback", "s", world(queue="JOINEMPTY", dial={dialplan().globals["NURSE_LINE"]: "ANSWER"}))
    assert call.apps() == ["Answer", "Playback", "Queue", "Dial"] and call.dials() == [nurse()]
    assert call.ended == f"{nurse()} answered"


def test_the_answering_service_is_tried_when_the_nurse_line_is_busy():
    g = dialplan().globals
    call = run("ivr-fallback", "s", world(dial={g["NURSE_LINE"]: "BUSY", g["ANSWERING_SERVICE"]: "ANSWER"}))
    assert call.dials() == [nurse(), service()] and call.ended == f"{service()} answered"


def test_without_app_queue_the_fallback_still_dials_the_nurse_line():
    call = run("ivr-fallback", "s", world(dial="ANSWER"), modules=frozenset())
    assert "Queue" not in call.apps() and call.dials() == [nurse()]


def test_engine_hand_back_with_continue_in_dialplan_reaches_people():
    def engine_gives_up(app_: str, args: list[str]) -> dict[str, str]:
        if app_ == "Stasis":
            return {"continue": "ivr-fallback,s,1", "STASISSTATUS": "SUCCESS"}
        return world()(app_, args)

    call = run("from-trunk", "+15550100000", engine_gives_up)
    assert call.apps()[:4] == ["Stasis", "Answer", "Playback", "Queue"] and nurse() in call.dials()


@pytest.mark.parametrize("number", ["+15550109999", "15550109999"])
def test_ivr_transfer_dials_through_the_trunk(number: str):
    trunk = dialplan().globals["TRUNK"]
    ok = run("ivr-transfer", number, world(dial="ANSWER"))
    assert ok.events == [("Dial", (f"PJSIP/{number}@{trunk}", dialplan().globals["TRANSFER_RING_SECONDS"]))]
    failed = run("ivr-transfer", number, world(dial={number: "CONGESTION", dialplan().globals["NURSE_LINE"]: "ANSWER"}))
    assert failed.apps()[:4] == ["Dial", "Answer", "Playback", "Queue"] and failed.dials()[-1] == nurse()


def test_an_odd_transfer_target_still_reaches_people():
    call = run("ivr-transfer", "front-desk", world(dial="ANSWER"))
    assert call.apps()[:3] == ["Answer", "Playback", "Queue"] and call.dials() == [nurse()]


def test_agents_dial_each_other_the_nurse_line_and_911():
    trunk = dialplan().globals["TRUNK"]
    assert run("from-agents", "1002", world(dial="ANSWER")).dials() == ["PJSIP/1002"]
    assert run("from-agents", "68773", world(dial="ANSWER")).dials() == [nurse()]
    assert run("from-agents", "911", world(dial="ANSWER")).dials() == [f"PJSIP/911@{trunk}"]


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\+?[0-9*#]{2,15}", fullmatch=True))
def test_agent_phones_are_not_an_outside_line(number: str):
    call = run("from-agents", number, world(dial="ANSWER"))
    trunk = dialplan().globals["TRUNK"]
    for target in call.dials():
        if target.endswith(f"@{trunk}"):
            assert target in (nurse(), f"PJSIP/911@{trunk}"), f"{number} got out through the trunk as {target}"
        else:
            assert re.fullmatch(r"PJSIP/1\d{3}", target)
    if number not in ("911", "68773") and not re.fullmatch(r"1\d{3}", number):
        assert call.dials() == [] and ("Playback", ("cannot-complete-as-dialed", "noanswer")) in call.events


def test_the_interpreter_catches_a_broken_fallback(monkeypatch: pytest.MonkeyPatch):
    """The walk fails loudly on a dialplan Asterisk would choke on: here FALLBACK_ROUNDS left empty,
    which makes ``$[1 < ]`` a syntax error (Asterisk would log it and end the caller's fallback early)."""
    broken = Dialplan({**dialplan().globals, "FALLBACK_ROUNDS": ""}, dialplan().contexts, dialplan().includes)
    monkeypatch.setattr(sys.modules[__name__], "dialplan", lambda: broken)
    with pytest.raises(AssertionError, match="ends where a value is expected"):
        run("ivr-fallback", "s", world())
