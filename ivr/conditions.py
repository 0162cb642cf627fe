"""Evaluating ``branch`` conditions: schedules, variables, caller number, language.

Pure: the instant to judge schedules at is passed in.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterator

from ivr.schema import AllCond, AnyCond, CallerCond, ClosedCond, LanguageCond, NotCond, OpenCond, VarCond

if TYPE_CHECKING:
    from ivr.tree import CallTree


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def evaluate(cond: Any, tree: "CallTree", vars_: dict[str, Any], language: str, caller: str | None, at: datetime) -> bool:
    """True when ``cond`` holds for this call at instant ``at``."""
    if isinstance(cond, OpenCond):
        return tree.is_open(cond.open, at)
    if isinstance(cond, ClosedCond):
        return not tree.is_open(cond.closed, at)
    if isinstance(cond, VarCond):
        present = cond.var in vars_ and vars_[cond.var] not in (None, "")
        if cond.is_set is not None and present != cond.is_set:
            return False
        value = vars_.get(cond.var)
        if cond.equals is not None and str(value) != str(cond.equals):
            return False
        if cond.not_equals is not None and str(value) == str(cond.not_equals):
            return False
        if cond.in_ is not None and str(value) not in {str(v) for v in cond.in_}:
            return False
        if cond.matches is not None and (value is None or not _regex(cond.matches).fullmatch(str(value))):
            return False
        return True
    if isinstance(cond, CallerCond):
        spec = cond.caller
        if spec.withheld is not None and (not caller) != spec.withheld:
            return False
        if spec.starts_with is not None:
            prefixes = [spec.starts_with] if isinstance(spec.starts_with, str) else spec.starts_with
            if not caller or not any(caller.startswith(p) for p in prefixes):
                return False
        if spec.in_ is not None and caller not in spec.in_:
            return False
        if spec.matches is not None and (not caller or not _regex(spec.matches).fullmatch(caller)):
            return False
        return True
    if isinstance(cond, LanguageCond):
        wanted = [cond.language] if isinstance(cond.language, str) else cond.language
        return language in wanted
    if isinstance(cond, AllCond):
        return all(evaluate(c, tree, vars_, language, caller, at) for c in cond.all)
    if isinstance(cond, AnyCond):
        return any(evaluate(c, tree, vars_, language, caller, at) for c in cond.any)
    if isinstance(cond, NotCond):
        return not evaluate(cond.not_, tree, vars_, language, caller, at)
    raise TypeError(f"unknown condition {cond!r}")


def leaves(cond: Any) -> Iterator[Any]:
    """Every simple condition inside ``cond`` (through all / any / not), for the validator."""
    if isinstance(cond, AllCond):
        for c in cond.all:
            yield from leaves(c)
    elif isinstance(cond, AnyCond):
        for c in cond.any:
            yield from leaves(c)
    elif isinstance(cond, NotCond):
        yield from leaves(cond.not_)
    else:
        yield cond


def schedules_in(cond: Any) -> set[str]:
    """Names of the schedules a condition looks at."""
    return {c.open if isinstance(c, OpenCond) else c.closed for c in leaves(cond) if isinstance(c, (OpenCond, ClosedCond))}


def vars_in(cond: Any) -> set[str]:
    """Names of the variables a condition looks at."""
    return {c.var for c in leaves(cond) if isinstance(c, VarCond)}


def evaluate_closed(cond: Any) -> bool | None:
    """The condition's value when every schedule is closed, or None when it depends on more than schedules.

    Used by the after-hours lint: with all schedules closed, ``open: x`` is
    false and ``closed: x`` true; variables, caller and language may be anything.
    """
    if isinstance(cond, OpenCond):
        return False
    if isinstance(cond, ClosedCond):
        return True
    if isinstance(cond, NotCond):
        v = evaluate_closed(cond.not_)
        return None if v is None else not v
    if isinstance(cond, AllCond):
        vals = [evaluate_closed(c) for c in cond.all]
        if any(v is False for v in vals):
            return False
        return True if all(v is True for v in vals) else None
    if isinstance(cond, AnyCond):
        vals = [evaluate_closed(c) for c in cond.any]
        if any(v is True for v in vals):
            return True
        return False if all(v is False for v in vals) else None
    return None
