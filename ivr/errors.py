"""Diagnostics and the exception tree.

Every problem found in a call tree is a :class:`Diagnostic` with a stable id
(``E-...`` for errors, ``L-...`` for safety lints, ``W-...`` for warnings), the
file, line and column it comes from, the path inside the tree
(``nodes.main.options.3``), the value found, what was expected and what to do.
Stable ids let admins waive a lint by name and let tooling match on them
without parsing prose.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Severity(str, Enum):
    """How much a diagnostic blocks publication."""

    ERROR = "error"  # the tree cannot run as written
    LINT = "lint"  # a safety rule: blocks publication unless waived with a reason
    WARNING = "warning"  # worth a look; never blocks


def format_path(path: tuple[Any, ...]) -> str:
    """Render a path inside the tree the way admins read it: ``nodes.main.options.3``."""
    return ".".join(str(p) for p in path) if path else "(top level)"


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a call tree, pointing at the YAML that caused it."""

    id: str
    severity: Severity
    message: str
    file: str = ""
    line: int | None = None
    column: int | None = None
    path: tuple[Any, ...] = ()
    found: Any = None
    expected: str | None = None
    hint: str | None = None
    waived: str | None = None  # the written reason, when a lint was waived in the file

    @property
    def blocking(self) -> bool:
        """True when this finding prevents the tree from going live."""
        if self.severity is Severity.ERROR:
            return True
        return self.severity is Severity.LINT and not self.waived

    def location(self) -> str:
        """``file:line:column`` with whatever parts are known."""
        loc = self.file or "<tree>"
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc

    def render(self) -> str:
        """A multi-line human message: where, what, found, expected, what to do."""
        head = f"{self.location()}: {self.severity.value} {self.id} at {format_path(self.path)}: {self.message}"
        if self.waived:
            head += f" [waived: {self.waived}]"
        lines = [head]
        if self.found is not None:
            lines.append(f"    found:    {self.found!r}")
        if self.expected:
            lines.append(f"    expected: {self.expected}")
        if self.hint:
            lines.append(f"    fix:      {self.hint}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for ``ivr validate --json``."""
        data = asdict(self)
        data["severity"] = self.severity.value
        data["path"] = format_path(self.path)
        data["found"] = _jsonable(self.found)
        data["blocking"] = self.blocking
        return data


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class IvrError(Exception):
    """Root of the engine's exception tree; every error carries a stable ``error_id``."""

    error_id = "E-IVR"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


class TreeInvalid(IvrError):
    """A call tree failed to load or validate; ``diagnostics`` holds every finding at once."""

    error_id = "E-TREE-INVALID"

    def __init__(self, file: str, diagnostics: list[Diagnostic]) -> None:
        blocking = [d for d in diagnostics if d.blocking]
        super().__init__(f"{file}: {len(blocking)} blocking problem(s) in call tree")
        self.file = file
        self.diagnostics = diagnostics


class InterpreterError(IvrError):
    """The interpreter was driven in a way the protocol does not allow (an adapter bug)."""

    error_id = "E-INTERPRETER"


@dataclass
class DiagnosticSink:
    """Collects diagnostics with positions looked up from the loader's position map."""

    file: str
    positions: dict[tuple[Any, ...], tuple[int, int]] = field(default_factory=dict)
    items: list[Diagnostic] = field(default_factory=list)

    def position(self, path: tuple[Any, ...]) -> tuple[int | None, int | None]:
        """Line and column of ``path``, or of its nearest ancestor the YAML has."""
        p = tuple(path)
        while True:
            if p in self.positions:
                return self.positions[p]
            if not p:
                return (None, None)
            p = p[:-1]

    def add(
        self,
        id: str,
        severity: Severity,
        message: str,
        path: tuple[Any, ...] = (),
        **kw: Any,
    ) -> Diagnostic:
        line, col = self.position(path)
        d = Diagnostic(id=id, severity=severity, message=message, file=self.file, line=line, column=col, path=tuple(path), **kw)
        self.items.append(d)
        return d

    def error(self, id: str, message: str, path: tuple[Any, ...] = (), **kw: Any) -> Diagnostic:
        return self.add(id, Severity.ERROR, message, path, **kw)

    def warning(self, id: str, message: str, path: tuple[Any, ...] = (), **kw: Any) -> Diagnostic:
        return self.add(id, Severity.WARNING, message, path, **kw)
