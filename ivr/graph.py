"""Draw a call tree for the admins who review it: Mermaid, Graphviz DOT or SVG.

A reviewer reads a YAML tree node by node; a picture shows what the YAML hides:
where every key leads, what happens on silence or a wrong key, where a call goes
when a queue is closed, and that the person key (0, or * during digit entry)
really works from every menu. So every way out of a node is drawn and labelled,
and the person key gets one dashed edge per menu instead of being implied.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivr.checks import edges, human_enabled
from ivr.schema import (
    HUMAN, AllCond, AnyCond, BranchNode, CallbackNode, CallerCond, ClosedCond, HangupNode, InputNode, LanguageCond,
    LookupNode, MenuNode, NotCond, OpenCond, QueueNode, RecordNode, SurveyNode, TransferNode, VarCond,
)

if TYPE_CHECKING:
    from ivr.tree import CallTree

FORMATS = ("mermaid", "dot", "svg")
DOT_TIMEOUT = 30  # seconds; dot on a tree of a few hundred nodes takes well under one


class GraphUnavailable(Exception):
    """SVG was asked for but Graphviz cannot produce it (not installed, or it failed)."""


@dataclass
class _Edge:
    src: str
    dst: str
    labels: list[str]
    dashed: bool


# style name -> (mermaid classDef, DOT node attributes). People are green, ends grey, asking blue.
_STYLES: dict[str, tuple[str, str]] = {
    "ask": ("fill:#dbe9ff,stroke:#3367d6", 'shape=box, style="rounded,filled", fillcolor="#dbe9ff", color="#3367d6"'),
    "logic": ("fill:#fff6d5,stroke:#b08800", 'shape=diamond, style=filled, fillcolor="#fff6d5", color="#b08800"'),
    "people": ("fill:#d9f2d9,stroke:#2e7d32", 'shape=box, style="rounded,filled", fillcolor="#d9f2d9", color="#2e7d32"'),
    "ends": ("fill:#e6e6e6,stroke:#777777", 'shape=box, style=filled, fillcolor="#e6e6e6", color="#777777"'),
    "step": ("fill:#ffffff,stroke:#999999", 'shape=box, style=filled, fillcolor="#ffffff", color="#999999"'),
    "emergency": ("fill:#ffd6d6,stroke:#cc0000,stroke-width:3px",
                  'shape=box, style="filled,bold", fillcolor="#ffd6d6", color="#cc0000", penwidth=3'),
    "missing": ("fill:#ffffff,stroke:#cc0000,stroke-dasharray:4", 'shape=box, style=dashed, color="#cc0000"'),
}
_MERMAID_SHAPES = {"ask": ('("', '")'), "logic": ('{"', '"}'), "people": ('(["', '"])'), "ends": ('[["', '"]]')}


def _style(tree: CallTree, nid: str, node: Any) -> str:
    if node is None:
        return "missing"
    if nid == tree.spec.emergency_notice:
        return "emergency"
    if isinstance(node, (MenuNode, InputNode, SurveyNode)):
        return "ask"
    if isinstance(node, BranchNode):
        return "logic"
    if isinstance(node, (QueueNode, TransferNode, CallbackNode)):
        return "people"
    if isinstance(node, (HangupNode, RecordNode)):
        return "ends"
    return "step"


def _detail(node: Any) -> str:
    """The one line that tells an admin what this node does without opening the YAML."""
    if isinstance(node, MenuNode):
        return "keys " + " ".join(node.options)
    if isinstance(node, QueueNode):
        skills = ", ".join(f"{k}>={v}" for k, v in node.requirements.skills.items())
        return f"{node.queue}: {skills}" if skills else node.queue
    if isinstance(node, TransferNode):
        return f"{node.label} ({node.to})" if node.label else node.to
    if isinstance(node, HangupNode):
        return node.outcome
    if isinstance(node, InputNode):
        return f"{node.variable} PHI" if node.is_sensitive else node.variable
    if isinstance(node, LookupNode):
        return f"hook {node.hook}"
    if isinstance(node, RecordNode) and node.mailbox:
        return f"mailbox {node.mailbox}"
    if isinstance(node, CallbackNode):
        return node.queue
    return ""


def _cond(c: Any) -> str:
    """A condition in a few words (`open: office`, `reason = billing`), for edge labels."""
    if isinstance(c, OpenCond):
        return f"open: {c.open}"
    if isinstance(c, ClosedCond):
        return f"closed: {c.closed}"
    if isinstance(c, LanguageCond):
        return "language: " + (c.language if isinstance(c.language, str) else ", ".join(c.language))
    if isinstance(c, VarCond):
        for op, val in (("=", c.equals), ("!=", c.not_equals), ("in", c.in_), ("~", c.matches)):
            if val is not None:
                return f"{c.var} {op} {', '.join(map(str, val)) if isinstance(val, list) else val}"
        return f"{c.var} {'set' if c.is_set in (True, None) else 'not set'}"
    if isinstance(c, CallerCond):
        s = c.caller
        for name, val in (("starts", s.starts_with), ("in", s.in_), ("~", s.matches)):
            if val is not None:
                return f"caller {name} {', '.join(val) if isinstance(val, list) else val}"
        return "caller withheld" if s.withheld else "caller shown"
    if isinstance(c, (AllCond, AnyCond)):
        parts = c.all if isinstance(c, AllCond) else c.any
        return (" and " if isinstance(c, AllCond) else " or ").join(f"({_cond(p)})" for p in parts)
    if isinstance(c, NotCond):
        return f"not ({_cond(c.not_)})"
    return "?"


def _edge_label(node: Any, path: tuple[Any, ...]) -> str:
    """Name a way out the way an admin would say it: the key, `no input`, `closed`, `on failure`."""
    head = path[0]
    if isinstance(node, MenuNode) and head == "options":
        opt = node.options[path[1]]
        return f"{path[1]} {opt.label}" if opt.label else str(path[1])
    if head in ("no_input", "invalid", "no_number", "after_call", "on_failure"):
        return head.replace("_", " ")
    if isinstance(node, BranchNode):
        return _cond(node.cases[path[1]].when) if head == "cases" else "default"
    if isinstance(node, QueueNode):
        return f"wait key {path[1]}" if head == "keys" else path[1].replace("_", " ")
    if isinstance(node, LookupNode):
        return "ok" if head == "next" else "fallback"
    if isinstance(node, InputNode):
        return "entered"
    return ""


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _collect(tree: CallTree) -> tuple[list[str], list[_Edge]]:
    """Every node id (plus any dangling target) and the merged, labelled edges between them."""
    spec = tree.spec
    ids = list(spec.nodes)
    merged: dict[tuple[str, str, bool], _Edge] = {}

    def add(src: str, dst: str, label: str, dashed: bool) -> None:
        dst = spec.human.target if dst == HUMAN else dst
        if dst not in ids:
            ids.append(dst)
        e = merged.setdefault((src, dst, dashed), _Edge(src, dst, [], dashed))
        if label and label not in e.labels:  # parallel edges (8 and 9 to the same menu) share one arrow
            e.labels.append(_short(label))

    for nid, node in spec.nodes.items():
        for path, target, _kind in edges(node):
            add(nid, target, _edge_label(node, path), False)
        if human_enabled(tree, node):
            key = spec.human.key if isinstance(node, MenuNode) else spec.human.input_key
            if not (isinstance(node, MenuNode) and key in node.options):  # an explicit option already shows it
                add(nid, spec.human.target, f"{key} person", True)
    return ids, list(merged.values())


def _node_text(tree: CallTree, nid: str) -> list[str]:
    node = tree.spec.nodes.get(nid)
    if node is None:
        return [nid, "missing node"]
    lines = [nid, node.type]
    if nid == tree.spec.emergency_notice:
        lines.append("EMERGENCY NOTICE")
    detail = _detail(node)
    return lines + ([_short(detail)] if detail else [])


# ----------------------------------------------------------------- mermaid

_MERMAID_ESC = {'"': "#quot;", "#": "#35;", "<": "#lt;", ">": "#gt;", "[": "#91;", "]": "#93;", "{": "#123;",
                "}": "#125;", "(": "#40;", ")": "#41;", "|": "#124;", "`": "#96;", "\n": " ", "\r": " "}


def _mq(text: str) -> str:
    """Escape for inside a quoted Mermaid label: entity codes, so quotes and brackets cannot end the label."""
    return "".join(_MERMAID_ESC.get(ch, ch) for ch in text)


def _mermaid_ids(ids: list[str]) -> dict[str, str]:
    """YAML keys may hold any character; Mermaid ids may not, and `end` alone is a keyword: prefix and sanitise."""
    out: dict[str, str] = {}
    for i, nid in enumerate(ids):
        safe = "n_" + "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in nid)
        out[nid] = safe if safe not in out.values() else f"{safe}_{i}"
    return out


def _mermaid(tree: CallTree) -> str:
    ids, edge_list = _collect(tree)
    mid = _mermaid_ids(ids)
    lines = ["flowchart TD", f"    %% {_mq(tree.label)}", '    s_start(("start"))']
    groups: dict[str, list[str]] = {}
    for nid in ids:
        style = _style(tree, nid, tree.spec.nodes.get(nid))
        groups.setdefault(style, []).append(mid[nid])
        left, right = _MERMAID_SHAPES.get(style, ('["', '"]'))
        lines.append(f"    {mid[nid]}{left}{'<br/>'.join(_mq(t) for t in _node_text(tree, nid))}{right}")
    lines.append(f"    s_start --> {mid[tree.spec.start]}")
    for e in edge_list:
        arrow = "-.->" if e.dashed else "-->"
        label = f'|"{_mq(", ".join(e.labels))}"|' if e.labels else ""
        lines.append(f"    {mid[e.src]} {arrow}{label} {mid[e.dst]}")
    for style, members in groups.items():
        lines.append(f"    classDef {style} {_STYLES[style][0]}")
        lines.append(f"    class {','.join(members)} {style}")
    lines.append("    style s_start fill:#333333,color:#ffffff")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------- dot

def _dq(text: str) -> str:
    """A DOT double-quoted string; backslashes doubled so `\\n` in a YAML text is not read as a line break."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ") + '"'


def _dot(tree: CallTree) -> str:
    ids, edge_list = _collect(tree)
    start = "(start)"  # a pseudo-node; YAML ids are free text, so make sure it cannot clash
    while start in ids:
        start = "(" + start + ")"
    lines = [f"digraph {_dq(tree.spec.name)} {{", '    graph [rankdir=TB, charset="UTF-8", label=' + _dq(tree.label) + ', labelloc=t];',
             '    node [fontname="Helvetica", fontsize=11];', '    edge [fontname="Helvetica", fontsize=10];',
             f'    {_dq(start)} [shape=circle, style=filled, fillcolor="#333333", fontcolor="#ffffff", label="start"];']
    for nid in ids:
        label = "\\n".join(_dq(t)[1:-1] for t in _node_text(tree, nid))
        lines.append(f'    {_dq(nid)} [label="{label}", {_STYLES[_style(tree, nid, tree.spec.nodes.get(nid))][1]}];')
    lines.append(f"    {_dq(start)} -> {_dq(tree.spec.start)};")
    for e in edge_list:
        attrs = [f"label={_dq(', '.join(e.labels))}"] if e.labels else []
        if e.dashed:
            attrs.append('style=dashed, color="#2e7d32", fontcolor="#2e7d32"')
        lines.append(f"    {_dq(e.src)} -> {_dq(e.dst)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _svg(tree: CallTree) -> str:
    """Graphviz is an optional system package, so a missing or failing `dot` is an explained error, not a crash."""
    exe = shutil.which("dot")
    hint = "install Graphviz (apt-get install graphviz) or use --format mermaid / --format dot"
    if exe is None:
        raise GraphUnavailable(f"Graphviz `dot` is not installed; {hint}")
    try:
        proc = subprocess.run([exe, "-Tsvg"], input=_dot(tree).encode("utf-8"), capture_output=True, timeout=DOT_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GraphUnavailable(f"running Graphviz failed: {exc}; {hint}") from exc
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise GraphUnavailable(f"Graphviz `dot` failed (exit {proc.returncode}): {err}; {hint}")
    return proc.stdout.decode("utf-8")


def render(tree: CallTree, fmt: str) -> str:
    """The tree as text in ``fmt`` (mermaid, dot or svg). Raises GraphUnavailable for svg without Graphviz."""
    if fmt == "mermaid":
        return _mermaid(tree)
    if fmt == "dot":
        return _dot(tree)
    if fmt == "svg":
        return _svg(tree)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
