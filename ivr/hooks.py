"""Lookup hooks: Python callables a deployment registers (scheduling system, EHR).

A tree's ``lookup`` node names a hook; the deployment provides it::

    from ivr.hooks import register

    @register("find_appointment")
    def find_appointment(args: dict) -> dict:
        return {"date": "December 3", "id": "A-17"}

The interpreter never calls hooks itself (it stays pure): it emits ``CallHook``
and the adapter runs the hook with the node's timeout and reports a
``HookResult``. Load a deployment's hooks with ``ivr simulate --hooks FILE.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable

from ivr.errors import IvrError

HookFn = Callable[[dict[str, Any]], dict[str, Any]]
_REGISTRY: dict[str, HookFn] = {}


class HookLoadError(IvrError):
    error_id = "E-HOOKS-LOAD"


def register(name: str) -> Callable[[HookFn], HookFn]:
    """Decorator: make ``fn`` available to ``lookup`` nodes as ``hook: name``."""

    def deco(fn: HookFn) -> HookFn:
        _REGISTRY[name] = fn
        return fn

    return deco


def registered() -> dict[str, HookFn]:
    return dict(_REGISTRY)


def load(spec: str) -> dict[str, HookFn]:
    """Import a hooks module (``path/to/hooks.py`` or ``package.module``) and return what it registered."""
    try:
        if spec.endswith(".py"):
            path = Path(spec)
            mod_spec = importlib.util.spec_from_file_location(f"ivr_hooks_{path.stem}", path)
            if mod_spec is None or mod_spec.loader is None:
                raise HookLoadError(f"cannot load hooks from {spec}")
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except HookLoadError:
        raise
    except Exception as exc:
        raise HookLoadError(f"cannot load hooks from {spec}: {type(exc).__name__}: {exc}. "
                            "Check the path, and that the module imports cleanly") from exc
    return registered()
