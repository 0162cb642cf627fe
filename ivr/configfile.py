"""Loading any YAML configuration file (rosters, queues) into a pydantic model with positioned errors.

Trees, agent rosters and queue files share one loader so that every file an
admin edits gets the same treatment: file, line, column and path on every
error, all errors at once, suggestions for typos.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ivr.errors import Diagnostic, DiagnosticSink, IvrError, Severity
from ivr.tree import _pydantic_diagnostics
from ivr.yamlpos import load_yaml

M = TypeVar("M", bound=BaseModel)


class ConfigInvalid(IvrError):
    """A configuration file failed to load; ``diagnostics`` says where and why."""

    error_id = "E-CONFIG-INVALID"

    def __init__(self, file: str, diagnostics: list[Diagnostic]) -> None:
        super().__init__(f"{file}: {len(diagnostics)} problem(s)\n" + "\n".join(d.render() for d in diagnostics))
        self.file = file
        self.diagnostics = diagnostics


def check_config(path: str | Path, model: type[M], *, docs: str = "the file's README") -> tuple[M | None, DiagnosticSink]:
    """Parse ``path`` into ``model``; returns the model (None on errors) and the sink with every finding."""
    p = Path(path)
    sink = DiagnosticSink(str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        sink.error("E-FILE", f"cannot read the file: {exc}", hint="check the path and that the file is UTF-8 text")
        return None, sink
    loaded = load_yaml(text, str(p))
    sink.positions = loaded.positions
    sink.items.extend(loaded.diagnostics)
    if loaded.data is None or any(d.severity is Severity.ERROR for d in sink.items):
        return None, sink
    try:
        return model.model_validate(loaded.data), sink
    except ValidationError as exc:
        _pydantic_diagnostics(exc, loaded.data, sink, model=model, docs=docs)
        return None, sink


def load_config(path: str | Path, model: type[M], *, docs: str = "the file's README") -> M:
    """Like :func:`check_config`, raising :class:`ConfigInvalid` when anything is wrong."""
    obj, sink = check_config(path, model, docs=docs)
    if obj is None or any(d.blocking for d in sink.items):
        raise ConfigInvalid(str(path), [d for d in sink.items if d.blocking])
    return obj
