"""Loading a call tree: YAML with positions -> schema -> checks -> a compiled :class:`CallTree`.

``check_tree`` returns every diagnostic at once (an admin fixing a tree wants
the whole list, not one error per run); ``load_tree`` raises
:class:`~ivr.errors.TreeInvalid` when anything blocks publication.
"""

from __future__ import annotations

import difflib
import wave
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import re

from pydantic import BaseModel, ValidationError

from ivr.errors import Diagnostic, DiagnosticSink, Severity, TreeInvalid
from ivr.schedule import Schedule
from ivr.schema import NODE_TYPES, TreeSpec
from ivr.yamlpos import load_yaml


@dataclass
class CallTree:
    """A validated tree plus what the interpreter needs at hand (schedules compiled, zone loaded)."""

    spec: TreeSpec
    file: str
    schedules: dict[str, Schedule]
    tz: ZoneInfo
    recordings_dir: Path
    positions: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    _durations: dict[str, float | None] = field(default_factory=dict)
    _uris: dict[tuple[str, str], str] = field(default_factory=dict)
    _open_memo: dict[tuple[str, int], bool] = field(default_factory=dict)

    @cached_property
    def label(self) -> str:
        return f"{self.spec.name} v{self.spec.version}"

    def pick(self, text: dict[str, str], language: str) -> str:
        """The text for ``language``, else the all-languages text, else the default language's."""
        got = text.get(language)
        if got is None:
            got = text.get("*")
        if got is None:
            got = text.get(self.spec.language)
        if got is None:
            got = next(iter(text.values()))
        return got

    def is_open(self, schedule: str, at: Any) -> bool:
        """``schedules[schedule].is_open(at)``, remembered per UTC minute.

        Exact, not approximate: every boundary of a schedule is a whole local
        minute, and every UTC offset in use is a whole number of minutes, so the
        answer cannot change inside a UTC minute. Saves a zone conversion per call.
        """
        key = (schedule, int(at.timestamp()) // 60)
        hit = self._open_memo.get(key)
        if hit is None:
            if len(self._open_memo) > 200_000:
                self._open_memo.clear()
            hit = self._open_memo[key] = self.schedules[schedule].is_open(at)
        return hit

    def audio_uri(self, audio: dict[str, str], language: str) -> str:
        """``sound:NAME`` as is; a file name resolves to ``LANG/file`` when recordings/LANG/file exists."""
        name = self.pick(audio, language)
        if name.startswith("sound:"):
            return name
        key = (name, language)
        uri = self._uris.get(key)
        if uri is None:  # cached: the file system is asked once per file and language, not once per call
            uri = self._uris[key] = f"{language}/{name}" if (self.recordings_dir / language / name).is_file() else name
        return uri

    def audio_duration(self, uri: str) -> float | None:
        """Length of a WAV file under recordings/ in seconds (cached); None when unknown."""
        if uri in self._durations:
            return self._durations[uri]
        dur: float | None = None
        if not uri.startswith("sound:"):
            path = self.recordings_dir / uri
            try:
                with wave.open(str(path), "rb") as w:
                    dur = w.getnframes() / float(w.getframerate())
            except (OSError, wave.Error, EOFError, ZeroDivisionError):
                dur = None
        self._durations[uri] = dur
        return dur


# ---------------------------------------------------------------------- pydantic errors -> diagnostics

_MODEL_FIELDS: list[frozenset[str]] = []


def _model_field_sets() -> list[frozenset[str]]:
    """The field names of every model of the language, one set per model."""
    if not _MODEL_FIELDS:
        import ivr.flowtest as flowtest
        import ivr.schedule as schedule
        import ivr.schema as schema

        for mod in (schema, schedule, flowtest):
            for obj in vars(mod).values():
                if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel and obj.model_fields:
                    _MODEL_FIELDS.append(frozenset(f.alias or n for n, f in obj.model_fields.items()))
    return _MODEL_FIELDS


def _fields_for(parent: Any, bad: str) -> set[str]:
    """Fields the mapping holding ``bad`` may take: its node type's, or the model that fits its other keys."""
    from ivr.schema import NODE_MODELS

    if isinstance(parent, dict) and parent.get("type") in NODE_MODELS:
        model = NODE_MODELS[parent["type"]]
        return {f.alias or n for n, f in model.model_fields.items()}
    keys = set(parent) - {bad} if isinstance(parent, dict) else set()
    fitting = [fs for fs in _model_field_sets() if keys <= fs and bad not in fs]
    return set().union(*fitting) if fitting else set()


def _model_fields_at(model: Any, loc: tuple[Any, ...]) -> set[str] | None:
    """The field names of the pydantic model reached by following ``loc`` (field names, and the list index
    or dict key after a container field) from ``model``; None when the path does not lead to exactly one
    model (a union of models, a plain value)."""
    import types
    import typing

    from pydantic import BaseModel

    def unwrap(ann: Any) -> tuple[Any, bool]:
        """(the single model in ``ann`` or None, whether it sits inside a list/dict)."""
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            return unwrap(typing.get_args(ann)[0])
        if origin in (typing.Union, types.UnionType):
            found = [unwrap(a) for a in typing.get_args(ann) if a is not type(None)]
            return found[0] if len(found) == 1 else (None, False)
        if origin in (list, dict, tuple, set, frozenset):
            inner = [unwrap(a) for a in typing.get_args(ann)[-1:]]
            return (inner[0][0], True) if inner and inner[0][0] is not None else (None, False)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            return ann, False
        return None, False

    cur, in_container = model, False
    for part in loc:
        if in_container:  # the index or key into the container: the model stays the same
            in_container = False
            continue
        fields = {f.alias or n: f for n, f in cur.model_fields.items()}
        if not isinstance(part, str) or part not in fields:
            return None
        cur, in_container = unwrap(fields[part].annotation)
        if cur is None:
            return None
    if in_container:
        return None
    return {f.alias or n for n, f in cur.model_fields.items()}


def _raw(data: Any, path: tuple[Any, ...]) -> Any:
    cur = data
    for part in path:
        cur = cur[part]
    return cur


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Map pydantic's ``loc`` onto the raw YAML, dropping union tags and validator names it inserts."""
    path: list[Any] = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, (dict, list)):
            continue  # a tag such as 'menu' or 'say': not in the file
        else:
            break
    return tuple(path)


def _narrow_to_item(data: Any, path: tuple[Any, ...], message: str) -> tuple[Any, ...]:
    """When a check on a whole list names one of its items (a bad range among hours), point at that item."""
    value = _raw(data, path)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str) and item and (f"'{item}'" in message or f'"{item}"' in message):
                return path + (i,)
    return path


def _suggest(word: str, choices: Any) -> str | None:
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return match[0] if match else None


def _pydantic_diagnostics(exc: ValidationError, data: Any, sink: DiagnosticSink, *, model: Any = None,
                          docs: str = "calltrees/README.md") -> None:
    """Turn pydantic's errors into positioned diagnostics. ``model`` (the file's root model) lets an unknown
    field be matched against the fields of the model actually at that place; ``docs`` is where the file's
    format is documented (named in hints)."""
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        typ = err["type"]
        path = _data_path(data, loc)
        found = err.get("input")
        msg = err["msg"]
        if typ == "missing":
            name = loc[-1]
            sink.error("E-MISSING-FIELD", f"required field '{name}' is missing", path,
                       hint=f"add `{name}:` here (see {docs} for what it takes)")
        elif typ == "extra_forbidden":
            name = str(loc[-1])
            parent_path = path[:-1] if path and path[-1] == name else path
            known = _model_fields_at(model, loc[:-1]) if model is not None else None
            allowed = (known if known is not None else _fields_for(_raw(data, parent_path), name)) - {name}
            guess = _suggest(name, allowed)
            hint = f"did you mean '{guess}'?" if guess else (
                f"this takes: {', '.join(sorted(allowed))}" if allowed else f"remove it; see {docs}")
            sink.error("E-UNKNOWN-FIELD", f"unknown field '{name}'", parent_path + (name,), found=name, hint=hint)
        elif typ in ("union_tag_invalid",):
            tag = found.get("type") if isinstance(found, dict) else found
            guess = _suggest(tag, NODE_TYPES)
            sink.error("E-NODE-TYPE", f"unknown node type {tag!r}", path + ("type",), found=tag,
                       expected="one of " + ", ".join(NODE_TYPES),
                       hint=f"did you mean '{guess}'?" if guess else None)
        elif typ == "union_tag_not_found":
            sink.error("E-NODE-TYPE", "this node has no `type:`", path, expected="one of " + ", ".join(NODE_TYPES),
                       hint="add `type: menu` (or say, input, queue, ...)")
        elif typ == "condition":
            sink.error("E-CONDITION", "not a condition", path, found=found,
                       expected="a mapping with one of: open, closed, var, caller, language, all, any, not",
                       hint="e.g. `when: {open: office}` or `when: {var: reason, equals: billing}`")
        else:
            text = msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
            unknown = re.match(r"unknown field '([^']+)'", text)
            if unknown and isinstance(_raw(data, path), dict) and unknown.group(1) in _raw(data, path):
                # a nested model's own check (schedules) found a typo: point at the typo itself
                head, _, rest = text.partition("; ")
                sink.error("E-UNKNOWN-FIELD", head, path + (unknown.group(1),), found=unknown.group(1), hint=rest or None)
                continue
            path = _narrow_to_item(data, path, text)
            expected = None
            hint = None
            if typ.endswith("_type") or typ.endswith("_parsing"):
                expected = text
                text = "wrong kind of value"
                if isinstance(found, bool):
                    hint = "YAML reads yes/no/on/off/true/false as a boolean: put the word in quotes"
                elif isinstance(found, (int, float)) and typ == "string_type":
                    hint = "put the value in quotes"
            sink.error("E-SCHEMA", text, path, found=found if not isinstance(found, (dict, list)) else None,
                       expected=expected, hint=hint)


# ---------------------------------------------------------------------- entry points


def check_tree_text(text: str, file: str, *, base_dir: Path | None = None) -> tuple[CallTree | None, list[Diagnostic]]:
    """Parse and check a tree given as text. Returns the tree (None if it cannot run) and all diagnostics."""
    loaded = load_yaml(text, file)
    sink = DiagnosticSink(file, loaded.positions, list(loaded.diagnostics))
    if loaded.data is None:
        return None, sink.items
    if not isinstance(loaded.data, dict):
        sink.error("E-SCHEMA", "a call tree is a mapping with name, timezone, start, human and nodes", (),
                   found=type(loaded.data).__name__, hint="start from the example in calltrees/README.md")
        return None, sink.items
    missing: set[str] = set()
    try:
        spec = TreeSpec.model_validate(loaded.data)
    except ValidationError as exc:
        _pydantic_diagnostics(exc, loaded.data, sink)
        # Keep going on what is valid, so one run reports as much as it can: set the broken parts aside
        # and check the rest. Their names still count as defined, so they cause no follow-on errors.
        repaired = _without_broken_parts(loaded.data, exc, missing)
        try:
            spec = TreeSpec.model_validate(repaired) if repaired is not None else None
        except ValidationError:
            spec = None
        if spec is None:
            return None, sink.items
    if any(d.severity is Severity.ERROR for d in sink.items) and not missing:
        return None, sink.items  # duplicate keys: the data is ambiguous, stop before graph checks
    base = base_dir if base_dir is not None else Path(file).resolve().parent
    default_tz = spec.timezone
    schedules = {name: Schedule.compile(s, default_tz, name) for name, s in spec.schedules.items()}
    tree = CallTree(spec=spec, file=file, schedules=schedules, tz=ZoneInfo(spec.timezone),
                    recordings_dir=(base / spec.recordings).resolve(), positions=loaded.positions)
    from ivr.checks import check  # the checks need a CallTree; imported here to keep the module graph acyclic

    check(tree, sink, missing=missing)
    tree.diagnostics = sink.items
    blocking = any(d.severity is Severity.ERROR for d in sink.items)
    return (None if blocking else tree), sink.items


# Top-level fields that can be set aside (or defaulted) so the rest of a broken tree still gets checked.
_DEFAULTS = {"timezone": "UTC", "lints": {}, "waivers": [], "voices": {}}


def _without_broken_parts(data: dict[str, Any], exc: ValidationError, missing: set[str]) -> dict[str, Any] | None:
    """A copy of ``data`` without the nodes and schedules that failed, or None when that cannot help."""
    broken_nodes: set[str] = set()
    broken_schedules: set[str] = set()
    broken_top: set[str] = set()
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        if not loc:
            return None
        if loc[0] == "nodes" and len(loc) > 1 and isinstance(loc[1], str):
            broken_nodes.add(loc[1])
        elif loc[0] == "schedules" and len(loc) > 1 and isinstance(loc[1], str):
            broken_schedules.add(loc[1])
        elif loc[0] in _DEFAULTS or (loc[0] == "waivers"):
            broken_top.add(str(loc[0]))
        else:
            return None  # name, start, human...: the tree cannot be checked further without them
    repaired = dict(data)
    if broken_nodes:
        nodes = data.get("nodes")
        if not isinstance(nodes, dict):
            return None
        repaired["nodes"] = {k: v for k, v in nodes.items() if k not in broken_nodes}
        if not repaired["nodes"]:
            return None
    if broken_schedules and isinstance(data.get("schedules"), dict):
        repaired["schedules"] = {k: v for k, v in data["schedules"].items() if k not in broken_schedules}
    for name in broken_top:
        repaired[name] = _DEFAULTS.get(name, [])
    missing |= broken_nodes | {f"schedule:{n}" for n in broken_schedules} | {"partial"}
    return repaired


def check_tree(path: str | Path) -> tuple[CallTree | None, list[Diagnostic]]:
    """Read and check the tree at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Diagnostic(id="E-FILE", severity=Severity.ERROR, message=f"cannot read the file: {exc}", file=str(path),
                                 hint="check the path and that the file is UTF-8 text")]
    return check_tree_text(text, str(path), base_dir=p.resolve().parent)


def load_tree(path: str | Path, *, allow_lints: bool = False) -> CallTree:
    """Load a tree ready to take calls; raises TreeInvalid when anything blocks publication.

    ``allow_lints`` lets the simulator walk a tree that still has unwaived
    safety lints (an admin testing a draft); errors always block.
    """
    tree, diags = check_tree(path)
    blocking = [d for d in diags if d.blocking and (not allow_lints or d.severity is Severity.ERROR)]
    if tree is None or blocking:
        raise TreeInvalid(str(path), diags)
    return tree
