"""Graph checks and safety lints on a call tree that passed the schema.

Errors (``E-``) mean the tree cannot run as written. Safety lints (``L-``)
block publication unless the tree waives them with a written reason. The
figures a reviewer wants to see (worst-case seconds until the caller can ask
for a person, the after-hours human path) are kept in ``tree.metrics`` so
``ivr validate`` can print them.

Lints:
- ``L-HUMAN-KEY``: every menu offers a person with one key.
- ``L-TIME-TO-HUMAN``: worst-case time from answer to the first moment the caller
  can press for a person is under ``lints.max_seconds_to_human`` (20 s).
- ``L-AFTER-HOURS-HUMAN``: with every schedule closed and every queue failing, a
  person (nurse line, answering service) is still reachable, from the start and
  from the person key.
- ``L-EMERGENCY-FIRST``: a medical tree plays its emergency notice before the first menu.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Iterator

from ivr.conditions import evaluate_closed, schedules_in, vars_in
from ivr.digits import PHI_KINDS, is_emergency_number
from ivr.errors import DiagnosticSink, Severity
from ivr.schema import (
    HUMAN, BranchNode, CallbackNode, GotoNode, HangupNode, InputNode, LookupNode, MenuNode, PlayNode, PlayPart,
    QueueNode, RecordNode, SayNode, SayPart, SetNode, SmsNode, SurveyNode, TransferNode,
)
from ivr.timing import prompt_seconds, speech_seconds

if TYPE_CHECKING:
    from ivr.tree import CallTree

LINTS = ("L-HUMAN-KEY", "L-TIME-TO-HUMAN", "L-AFTER-HOURS-HUMAN", "L-EMERGENCY-FIRST")
BUILTIN_VARS = {"caller", "called", "language"}
TERMINALS = (HangupNode, QueueNode, TransferNode, RecordNode, CallbackNode)
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def edges(node: Any) -> Iterator[tuple[tuple[Any, ...], str, str]]:
    """(path inside the node, target, kind) for every way out of ``node``.

    kind: ``instant`` (no caller input between), ``input`` (after the caller acts),
    ``fallback`` (routing or a transfer could not serve the call).
    """
    if isinstance(node, (SayNode, PlayNode, SetNode, SmsNode)):
        yield ("next",), node.next, "instant"
    elif isinstance(node, GotoNode):
        yield ("target",), node.target, "instant"
    elif isinstance(node, BranchNode):
        for i, case in enumerate(node.cases):
            yield ("cases", i, "next"), case.next, "instant"
        yield ("default",), node.default, "instant"
    elif isinstance(node, MenuNode):
        for key, opt in node.options.items():
            yield ("options", key), opt.next, "input"
        for h in ("no_input", "invalid"):
            handler = getattr(node, h)
            if handler is not None and handler.next:
                yield (h, "next"), handler.next, "input"
    elif isinstance(node, InputNode):
        yield ("next",), node.next, "input"
        for h in ("no_input", "invalid"):
            handler = getattr(node, h)
            if handler is not None and handler.next:
                yield (h, "next"), handler.next, "input"
    elif isinstance(node, SurveyNode):
        yield ("next",), node.next, "input"
    elif isinstance(node, QueueNode):
        for name in ("closed", "no_agents", "full", "timeout", "default"):
            t = getattr(node.fallback, name)
            if t:
                yield ("fallback", name), t, "fallback"
        for key, t in node.keys.items():
            yield ("keys", key), t, "input"
        if node.after_call:
            yield ("after_call",), node.after_call, "input"
    elif isinstance(node, TransferNode):
        if node.on_failure:
            yield ("on_failure",), node.on_failure, "fallback"
    elif isinstance(node, RecordNode):
        yield ("next",), node.next, "input"
    elif isinstance(node, CallbackNode):
        yield ("next",), node.next, "instant"
        if node.no_number:
            yield ("no_number",), node.no_number, "instant"
    elif isinstance(node, LookupNode):
        yield ("next",), node.next, "instant"
        yield ("fallback",), node.fallback, "instant"


def human_enabled(tree: "CallTree", node: Any) -> bool:
    h = tree.spec.human
    return h.enabled and isinstance(node, (MenuNode, InputNode)) and node.human


class _Checker:
    def __init__(self, tree: "CallTree", sink: DiagnosticSink, missing: set[str] | None = None) -> None:
        self.missing = missing or set()  # names of parts that failed the schema: defined, but not checkable
        self.tree = tree
        self.spec = tree.spec
        self.nodes = tree.spec.nodes
        self.sink = sink
        self.lint_hits: list[tuple[str, str | None, Any]] = []

    def resolve(self, target: str) -> str:
        return self.spec.human.target if target == HUMAN else target

    def succ(self, nid: str, kinds: tuple[str, ...] = ("instant", "input", "fallback")) -> list[str]:
        node = self.nodes[nid]
        out = [self.resolve(t) for _, t, k in edges(node) if k in kinds and self.resolve(t) in self.nodes]
        if "input" in kinds and human_enabled(self.tree, node) and self.spec.human.target in self.nodes:
            out.append(self.spec.human.target)
        return out

    # ------------------------------------------------------------------ references

    def check_references(self) -> bool:
        ok = True
        names = list(self.nodes)

        def ref(path: tuple[Any, ...], target: str, what: str) -> None:
            nonlocal ok
            if target == HUMAN or target in self.nodes or target in self.missing:
                return
            ok = False
            from ivr.tree import _suggest

            guess = _suggest(target, names)
            self.sink.error("E-UNKNOWN-TARGET", f"{what} '{target}' is not a node of this tree", path, found=target,
                            expected="the id of a node under `nodes:` (or `human`)",
                            hint=f"did you mean '{guess}'?" if guess else "add the node or fix the name")

        ref(("start",), self.spec.start, "start node")
        if self.spec.human.target == HUMAN:
            self.sink.error("E-UNKNOWN-TARGET", "the human target cannot be `human` itself", ("human", "target"))
            ok = False
        else:
            ref(("human", "target"), self.spec.human.target, "human target")
        if self.spec.emergency_notice:
            ref(("emergency_notice",), self.spec.emergency_notice, "emergency notice")
        for nid, node in self.nodes.items():
            for path, target, _ in edges(node):
                ref(("nodes", nid) + path, target, "target")
        return ok

    # ------------------------------------------------------------------ per-node checks

    def check_nodes(self) -> None:
        spec = self.spec
        langs = set(spec.languages)
        if spec.default_language and spec.default_language not in langs:
            self.sink.error("E-LANGUAGE", f"default language '{spec.default_language}' is not in `languages`",
                            ("default_language",), expected=", ".join(spec.languages))
        for lang in spec.voices:
            if lang not in langs:
                self.sink.error("E-LANGUAGE", f"a voice is set for '{lang}', which is not in `languages`", ("voices", lang))
        defined = set(BUILTIN_VARS)
        for node in self.nodes.values():
            defined |= _defines(node)
        for nid, node in self.nodes.items():
            base = ("nodes", nid)
            for path, text, is_audio in _texts(node):
                self._check_langs(base + path, text, is_audio)
                if is_audio:
                    self._check_audio(base + path, text)
                else:
                    for var in _TEMPLATE.findall(" ".join(text.values())):
                        if var not in defined:
                            self.sink.warning("W-UNKNOWN-VAR", f"text uses {{{var}}}, which no node sets", base + path,
                                              found=var, hint="set it with a `set`, `input` or `lookup` node, or fix the name")
            if isinstance(node, (MenuNode, InputNode)):
                kind = "menu" if isinstance(node, MenuNode) else "input"
                if isinstance(node, MenuNode) and node.timeout is None:
                    self.sink.error("E-MENU-NO-TIMEOUT", "this menu has no `timeout`", base,
                                    hint="add `timeout: 5` (seconds to wait for a key after the prompt)")
                for h, eid in (("invalid", "E-%s-NO-INVALID"), ("no_input", "E-%s-NO-NOINPUT")):
                    handler = getattr(node, h)
                    if handler is None or not handler.next:
                        self.sink.error(eid % kind.upper(), f"this {kind} does not say where to go after `{h}` retries run out",
                                        base + ((h,) if handler is not None else ()),
                                        hint=f"add `{h}: {{prompt: ..., next: human}}` (or another node)")
            if isinstance(node, MenuNode) and human_enabled(self.tree, node):
                key = spec.human.key
                opt = node.options.get(key)
                if opt is not None and self.resolve(opt.next) != spec.human.target:
                    self.sink.error("E-KEY-CONFLICT", f"key {key} is the person key everywhere in this tree, but here it goes to '{opt.next}'",
                                    base + ("options", key), found=key,
                                    hint=f"use another key for '{opt.next}', or set `human: false` on this menu (and waive L-HUMAN-KEY)")
            if isinstance(node, InputNode):
                if node.sensitive is False and node.validate_ is not None and node.validate_.kind in PHI_KINDS:
                    self.sink.warning("W-INPUT-NOT-SENSITIVE", f"a {node.validate_.kind.replace('_', ' ')} identifies a patient, "
                                      "but this input is marked `sensitive: false`", base + ("sensitive",),
                                      hint="remove `sensitive: false` so the digits stay out of traces and transcripts")
                if node.min_length > node.max_length:
                    self.sink.error("E-SCHEMA", "min_length is larger than max_length", base + ("min_length",), found=node.min_length)
                if node.terminator is not None and node.terminator == spec.human.input_key and human_enabled(self.tree, node):
                    self.sink.error("E-KEY-CONFLICT", f"the terminator {node.terminator} is also the person key for digit entry",
                                    base + ("terminator",), hint="use # as terminator, or change `human.input_key`")
            if isinstance(node, BranchNode):
                for i, case in enumerate(node.cases):
                    for sched in schedules_in(case.when):
                        if sched not in self.tree.schedules and f"schedule:{sched}" not in self.missing:
                            self._unknown_schedule(base + ("cases", i, "when"), sched)
                    for var in vars_in(case.when):
                        if var not in defined:
                            self.sink.warning("W-UNKNOWN-VAR", f"condition looks at '{var}', which no node sets",
                                              base + ("cases", i, "when"), found=var)
            if isinstance(node, QueueNode) and node.hours and node.hours not in self.tree.schedules \
                    and f"schedule:{node.hours}" not in self.missing:
                self._unknown_schedule(base + ("hours",), node.hours)
            if isinstance(node, QueueNode):
                missing = [o for o in ("closed", "no_agents", "full", "timeout") if node.fallback.target(o) is None]
                if missing:
                    self.sink.error("E-QUEUE-NO-FALLBACK", f"no fallback for: {', '.join(missing)}", base + ("fallback",),
                                    hint="name a node for each, or a `default:` for all (a callback, voicemail, another queue or line)")
            if isinstance(node, TransferNode):
                if is_emergency_number(node.to):
                    self.sink.error("E-EMERGENCY-DIAL", "the IVR must not dial emergency numbers", base + ("to",), found=node.to,
                                    hint="tell the caller to hang up and dial the emergency number (a `say` node), never transfer")
                if not node.on_failure:
                    self.sink.warning("W-TRANSFER-NO-FAILOVER", "nothing happens if this transfer fails (busy, no answer)",
                                      base, hint="add `on_failure:` pointing at voicemail or another line")
            if isinstance(node, SetNode) and "language" in node.vars and str(node.vars["language"]) not in langs \
                    and "{" not in str(node.vars["language"]):
                self.sink.error("E-LANGUAGE", f"language '{node.vars['language']}' is not in `languages`",
                                base + ("vars", "language"), expected=", ".join(spec.languages))
            if isinstance(node, MenuNode):
                for key, opt in node.options.items():
                    lang = opt.set.get("language")
                    if lang is not None and str(lang) not in langs:
                        self.sink.error("E-LANGUAGE", f"language '{lang}' is not in `languages`",
                                        base + ("options", key, "set", "language"), expected=", ".join(spec.languages))
            if isinstance(node, CallbackNode) and node.number != "caller" and node.number not in defined:
                self.sink.warning("W-UNKNOWN-VAR", f"callback number variable '{node.number}' is never set", base + ("number",))
        en = spec.emergency_notice
        if en and en in self.nodes and not isinstance(self.nodes[en], (SayNode, PlayNode)):
            self.sink.error("E-EMERGENCY-NOTICE", "the emergency notice must be a `say` or `play` node", ("emergency_notice",), found=en)

    def _unknown_schedule(self, path: tuple[Any, ...], name: str) -> None:
        from ivr.tree import _suggest

        guess = _suggest(name, self.tree.schedules)
        self.sink.error("E-UNKNOWN-SCHEDULE", f"schedule '{name}' is not defined under `schedules:`", path, found=name,
                        hint=f"did you mean '{guess}'?" if guess else "define it under `schedules:`")

    def _check_langs(self, path: tuple[Any, ...], text: dict[str, str], is_audio: bool) -> None:
        langs = self.spec.languages
        for lang in text:
            if lang != "*" and lang not in langs:
                self.sink.error("E-LANGUAGE", f"text for '{lang}', which is not in `languages`", path + (lang,),
                                expected=", ".join(langs))
        if "*" in text:
            if len(langs) > 1 and not is_audio:
                self.sink.error("E-MISSING-TRANSLATION", f"this text has one version but the tree speaks {', '.join(langs)}",
                                path, found=text["*"][:60], hint="write it per language: `{en: ..., es: ...}`")
            return
        missing = [lang for lang in langs if lang not in text]
        if missing:
            self.sink.error("E-MISSING-TRANSLATION", f"no text for {', '.join(missing)}", path,
                            hint="add a version for every language in `languages`")

    def _check_audio(self, path: tuple[Any, ...], audio: dict[str, str]) -> None:
        for lang in (self.spec.languages if "*" in audio else list(audio)):
            name = self.tree.pick(audio, lang)
            if name.startswith("sound:"):
                continue
            uri = self.tree.audio_uri(audio, lang)
            if not (self.tree.recordings_dir / uri).is_file():
                self.sink.error("E-AUDIO-MISSING", f"audio file '{name}' not found under {self.tree.recordings_dir}",
                                path, found=name, hint=f"add recordings/{name} (or recordings/{lang}/{name}), or fix the name")

    # ------------------------------------------------------------------ graph shape

    def check_person_key(self) -> None:
        """The person key must lead to a person (a queue or a human transfer), not back into the menus."""
        seen: set[str] = set()
        stack = [self.spec.human.target]
        while stack:
            nid = self.resolve(stack.pop())
            if nid in seen or nid not in self.nodes:
                continue
            seen.add(nid)
            node = self.nodes[nid]
            if isinstance(node, QueueNode) or (isinstance(node, TransferNode) and node.human):
                continue
            if isinstance(node, (MenuNode, InputNode, SurveyNode, HangupNode, RecordNode, CallbackNode)) or \
                    (isinstance(node, TransferNode) and not node.human):
                self.sink.error("E-HUMAN-TARGET", f"the person key leads to '{nid}' ({node.type}), not to a person",
                                ("human", "target"), found=self.spec.human.target,
                                hint="point `human.target` at a queue of people or a transfer with `human: true`, "
                                     "possibly after a short `say`")
                return
            stack.extend(t for _, t, k in edges(node) if k == "instant")

    def check_silence(self) -> None:
        """A caller who presses nothing must end up somewhere: no loop of menus feeding each other on no input."""
        silent: dict[str, list[str]] = {}
        for nid, node in self.nodes.items():
            outs = [t for path, t, k in edges(node) if k in ("instant", "fallback") or path[:1] in (("no_input",), ("next",))]
            if isinstance(node, (MenuNode, InputNode)):
                outs = [node.no_input.next] if node.no_input is not None and node.no_input.next else [HUMAN]
            silent[nid] = [self.resolve(t) for t in outs if self.resolve(t) in self.nodes]
        for scc in _sccs(silent):
            waits = [n for n in scc if isinstance(self.nodes[n], (MenuNode, InputNode, SurveyNode))]
            if waits and (len(scc) > 1 or scc[0] in silent[scc[0]]):
                self.sink.error("E-SILENT-LOOP", f"a caller who presses nothing goes round forever: {' -> '.join(sorted(scc))}",
                                ("nodes", sorted(waits)[0], "no_input"),
                                hint="send `no_input.next` somewhere that ends (a person, voicemail), not back into the loop")

    def check_graph(self) -> None:
        roots = [self.spec.start, self.spec.human.target]
        reach = self._reach(roots)
        for nid in self.nodes:
            if nid not in reach:
                self.sink.error("E-UNREACHABLE", f"node '{nid}' can never be reached from `start`", ("nodes", nid),
                                hint="link it from a menu option or a `next:`, or delete it")
        # loops made only of instant moves: the caller would be stuck hearing prompts forever
        instant = {nid: self.succ(nid, ("instant", "fallback")) for nid in self.nodes}
        for scc in _sccs(instant):
            if len(scc) > 1 or scc[0] in instant[scc[0]]:
                first = sorted(scc)[0]
                self.sink.error("E-LOOP-NO-INPUT", f"these nodes loop without waiting for the caller: {' -> '.join(sorted(scc))}",
                                ("nodes", first), hint="break the loop with a menu, or end it in a queue, transfer or hangup")
        # every node must be able to end the call somehow
        terminal = {nid for nid, n in self.nodes.items() if isinstance(n, TERMINALS)}
        back: dict[str, set[str]] = {nid: set() for nid in self.nodes}
        for nid in self.nodes:
            for t in self.succ(nid):
                back[t].add(nid)
        can_end = set(terminal)
        stack = list(terminal)
        while stack:
            n = stack.pop()
            for p in back[n]:
                if p not in can_end:
                    can_end.add(p)
                    stack.append(p)
        for nid in self.nodes:
            if nid in reach and nid not in can_end:
                self.sink.error("E-LOOP-NO-EXIT", f"from '{nid}' the call can never reach a queue, transfer, recording or hangup",
                                ("nodes", nid), hint="give the loop a way out (an option to a person, a hangup)")

    def _reach(self, roots: list[str]) -> set[str]:
        seen: set[str] = set()
        stack = [r for r in roots if r in self.nodes]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            stack.extend(self.succ(n))
        return seen

    # ------------------------------------------------------------------ safety lints

    def lint(self, lint_id: str, message: str, node: str | None, path: tuple[Any, ...], **kw: Any) -> None:
        self.lint_hits.append((lint_id, node, (message, path, kw)))

    def lint_human_key(self) -> None:
        for nid, node in self.nodes.items():
            if not isinstance(node, MenuNode):
                continue
            direct = any(self.resolve(o.next) == self.spec.human.target for o in node.options.values())
            if not (human_enabled(self.tree, node) or direct):
                self.lint("L-HUMAN-KEY", "no key in this menu reaches a person", nid, ("nodes", nid),
                          hint=f"remove `human: false` (key {self.spec.human.key} then works) or add an option to `human`")

    def lint_time_to_human(self) -> None:
        bound = self.spec.lints.max_seconds_to_human
        worst, path = self._worst_time(self.spec.start, {}, set())
        self.tree.metrics["seconds_to_human"] = round(worst, 1) if worst >= 0 else None
        self.tree.metrics["seconds_to_human_path"] = path
        self.tree.metrics["seconds_to_human_bound"] = bound
        if worst < 0:
            self.lint("L-TIME-TO-HUMAN", "no path from the start reaches a moment where the caller can ask for a person",
                      None, ("start",), hint="lead the call to a menu (the person key works there), a queue or a person")
        elif worst > bound:
            self.lint("L-TIME-TO-HUMAN",
                      f"a caller may wait {worst:.1f} s before they can press for a person (bound {bound:g} s): {' -> '.join(path)}",
                      None, ("start",), found=round(worst, 1),
                      hint="shorten the prompts before the first menu, or raise `lints.max_seconds_to_human` with care")

    def _node_seconds(self, node: Any) -> float:
        """How long a node keeps the caller before it moves on by itself (worst language)."""
        if isinstance(node, SayNode):
            return max(speech_seconds(self.tree.pick(node.text, lang), self.spec.lints.speech_rate_wpm) for lang in self.spec.languages)
        if isinstance(node, PlayNode):
            return prompt_seconds(self.tree, [PlayPart(audio=node.audio, duration=node.duration)])
        if isinstance(node, LookupNode):
            return node.timeout
        if isinstance(node, (MenuNode, InputNode, SurveyNode)):
            return prompt_seconds(self.tree, node.prompt) + (getattr(node, "timeout", None) or 0)
        return 0.0

    def _worst_time(self, nid: str, memo: dict[str, tuple[float, list[str]]], active: set[str]) -> tuple[float, list[str]]:
        """Longest time from ``nid`` to the first moment the caller can ask for a person, and its path.

        -1 when no path from here gets there. Memoised per node (trees with many branches in a row would
        otherwise take exponential time); loops are cut where the walk meets a node it is still inside.
        """
        nid = self.resolve(nid)
        if nid in memo:
            return memo[nid]
        if nid in active or nid not in self.nodes:
            return (-1.0, [])
        node = self.nodes[nid]
        result: tuple[float, list[str]]
        if isinstance(node, (MenuNode, InputNode)) and human_enabled(self.tree, node):
            result = (0.0, [nid])
        elif isinstance(node, TransferNode) and node.human:
            result = (0.0, [nid])
        elif isinstance(node, (HangupNode, RecordNode)):
            result = (-1.0, [])  # ends without a person: the after-hours lint looks at these
        else:
            active.add(nid)
            dt = self._node_seconds(node)
            # A queue is a person path, but routing may turn the call away at once (closed hours, nobody
            # logged in): then its fallbacks decide when the caller can next ask for a person.
            best = (0.0, [nid]) if isinstance(node, QueueNode) else (-1.0, [])
            for _, target, kind in edges(node):
                if isinstance(node, QueueNode) and kind != "fallback":
                    continue
                t, path = self._worst_time(target, memo, active)
                if t >= 0 and t + dt > best[0] or (best[0] < 0 <= t):
                    best = (t + dt, [nid] + path)
            active.discard(nid)
            result = best
        memo[nid] = result
        return result

    def _closed_reach(self, root: str) -> tuple[bool, list[str]]:
        """Search for a human transfer with every schedule closed and every queue failing."""
        root = self.resolve(root)
        parent: dict[str, str | None] = {root: None}
        stack = [root]
        while stack:
            nid = stack.pop()
            node = self.nodes.get(nid)
            if node is None:
                continue
            if isinstance(node, TransferNode) and node.human:
                chain = [nid]
                while parent[chain[-1]] is not None:
                    chain.append(parent[chain[-1]])  # type: ignore[arg-type]
                return True, list(reversed(chain))
            nexts: list[str] = []
            if isinstance(node, BranchNode):
                decided = False
                for case in node.cases:
                    v = evaluate_closed(case.when)
                    if v is False:
                        continue
                    nexts.append(case.next)
                    if v is True:
                        decided = True
                        break
                if not decided:
                    nexts.append(node.default)
            elif isinstance(node, QueueNode):
                names = ("closed",) if node.hours else ("closed", "no_agents", "full", "timeout")
                nexts = [t for t in (node.fallback.target(n) for n in names) if t]
            else:
                nexts = [t for _, t, _ in edges(node)]
                if human_enabled(self.tree, node):
                    nexts.append(HUMAN)
            for t in nexts:
                t = self.resolve(t)
                if t in self.nodes and t not in parent:
                    parent[t] = nid
                    stack.append(t)
        return False, []

    def lint_after_hours(self) -> None:
        ok_start, path_start = self._closed_reach(self.spec.start)
        ok_human, path_human = self._closed_reach(self.spec.human.target)
        self.tree.metrics["after_hours_human_path"] = path_start
        self.tree.metrics["after_hours_person_key_path"] = path_human
        if not ok_start:
            self.lint("L-AFTER-HOURS-HUMAN", "with every schedule closed and every queue failing, no path from the start reaches a person",
                      None, ("start",), hint="add a transfer to a nurse line or answering service (human: true) on the after-hours path")
        if not ok_human:
            self.lint("L-AFTER-HOURS-HUMAN", f"after hours, the person key leads to '{self.spec.human.target}', which never reaches a person",
                      None, ("human", "target"), hint="give the front-desk queue a fallback that transfers to the nurse line or answering service")

    def lint_emergency_first(self) -> None:
        if not self.spec.medical:
            return
        en = self.spec.emergency_notice
        if not en:
            self.lint("L-EMERGENCY-FIRST", "a medical tree needs an `emergency_notice` played before the first menu", None, (),
                      hint="add a `say` node telling callers to hang up and dial the emergency number, and name it in `emergency_notice:`")
            return
        seen: set[str] = set()
        stack = [self.spec.start]
        while stack:
            nid = self.resolve(stack.pop())
            if nid in seen or nid == en or nid not in self.nodes:
                continue
            seen.add(nid)
            node = self.nodes[nid]
            if isinstance(node, (MenuNode, InputNode)):
                self.lint("L-EMERGENCY-FIRST", f"the menu '{nid}' can be reached before the emergency notice '{en}' plays",
                          nid, ("nodes", nid), hint=f"route every path from `start` through '{en}' before the first menu")
                return
            stack.extend(t for _, t, _ in edges(node))

    def emit_lints(self) -> None:
        waivers = list(enumerate(self.spec.waivers))
        used: set[int] = set()
        for i, w in waivers:
            if w.node is not None and w.node not in self.nodes:
                from ivr.tree import _suggest

                guess = _suggest(w.node, list(self.nodes))
                self.sink.warning("W-WAIVER-NODE", f"waiver names node '{w.node}', which is not in this tree",
                                  ("waivers", i, "node"), found=w.node,
                                  hint=f"did you mean '{guess}'?" if guess else "fix the node id or remove `node:`")
            if w.lint not in LINTS:
                self.sink.warning("W-UNKNOWN-LINT", f"waiver for unknown lint '{w.lint}'", ("waivers", i, "lint"),
                                  expected=", ".join(LINTS))
        for lint_id, node, (message, path, kw) in self.lint_hits:
            reason = None
            for i, w in waivers:
                if w.lint == lint_id and (w.node is None or w.node == node):
                    reason = w.reason
                    used.add(i)
                    break
            self.sink.add(lint_id, Severity.LINT, message, path, waived=reason, **kw)
        for i, w in waivers:
            if i not in used and w.lint in LINTS:
                self.sink.warning("W-UNUSED-WAIVER", f"waiver for {w.lint} matches nothing", ("waivers", i),
                                  hint="remove it so it cannot hide a future problem")


def _defines(node: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(node, SetNode):
        out |= set(node.vars)
    elif isinstance(node, (InputNode, SurveyNode)):
        out.add(node.variable)
    elif isinstance(node, LookupNode):
        out |= set(node.into)
    elif isinstance(node, MenuNode):
        for opt in node.options.values():
            out |= set(opt.set)
    return out


def _texts(node: Any) -> Iterator[tuple[tuple[Any, ...], dict[str, str], bool]]:
    """(path, language map, is_audio) for every text and audio reference in a node."""
    if isinstance(node, SayNode):
        yield ("text",), node.text, False
    elif isinstance(node, PlayNode):
        yield ("audio",), node.audio, True
    elif isinstance(node, SmsNode):
        yield ("text",), node.text, False
    for fld in ("prompt",):
        parts = getattr(node, fld, None)
        if parts:
            yield from _part_texts((fld,), parts)
    for h in ("no_input", "invalid"):
        handler = getattr(node, h, None)
        if handler is not None and handler.prompt:
            yield from _part_texts((h, "prompt"), handler.prompt)


def _part_texts(base: tuple[Any, ...], parts: Any) -> Iterator[tuple[tuple[Any, ...], dict[str, str], bool]]:
    for i, p in enumerate(parts):
        if isinstance(p, SayPart):
            yield base + (i,), p.text, False
        elif isinstance(p, PlayPart):
            yield base + (i,), p.audio, True


def _sccs(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iterative (trees can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on.add(v)
            succs = graph.get(v, [])
            if i < len(succs):
                work.append((v, i + 1))
                w = succs[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def check(tree: "CallTree", sink: DiagnosticSink, missing: set[str] | None = None) -> None:
    """Run every check and lint; findings go into ``sink``, figures into ``tree.metrics``.

    ``missing`` names parts that failed the schema: they are set aside, the rest is checked, and the
    whole-graph checks and lints wait until the tree is complete.
    """
    c = _Checker(tree, sink, missing)
    refs_ok = c.check_references()
    c.check_nodes()
    if missing:
        sink.warning("W-CHECKS-WAITING", "the graph checks and safety lints run once the errors above are fixed", (),
                     hint="fix the schema errors, then run `ivr validate` again")
        return
    if not refs_ok:
        return  # graph checks on a tree with dangling links would only repeat the same errors
    c.check_graph()
    c.check_person_key()
    c.check_silence()
    c.lint_human_key()
    c.lint_time_to_human()
    c.lint_after_hours()
    c.lint_emergency_first()
    c.emit_lints()
