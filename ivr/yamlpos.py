"""YAML loading that remembers where every value came from.

PyYAML's ``safe_load`` forgets line numbers and silently keeps the last of two
duplicate keys (so a menu with key ``1`` written twice loses an option without
a word). We compose the node graph ourselves, build plain Python values, and
record ``path -> (line, column)`` for every mapping key, sequence item and
value, so that later checks can say "clinic.yaml:42:7 at nodes.main.options.3".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivr.errors import Diagnostic, Severity

Path = tuple[Any, ...]


@dataclass
class LoadedYaml:
    """Plain data plus where each piece of it stands in the file."""

    data: Any
    positions: dict[Path, tuple[int, int]]
    diagnostics: list[Diagnostic]


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[Path, tuple[int, int]] = {}
        self.diagnostics: list[Diagnostic] = []
        self._scalars = SafeConstructor()

    def _mark(self, path: Path, node: Node) -> None:
        # PyYAML marks are 0-based; editors count from 1.
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))

    def build(self, node: Node, path: Path) -> Any:
        self._mark(path, node)
        if isinstance(node, ScalarNode):
            try:
                return self._scalars.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError) as exc:
                # An impossible unquoted date (2026-02-30), an unknown tag (!include): say so, keep the text.
                problem = getattr(exc, "problem", None) or str(exc)
                what = "not a valid date" if node.tag.endswith(":timestamp") else "cannot read this value"
                self._error("E-YAML-SYNTAX", f"{what}: {problem}", path, node, found=node.value,
                            hint="check the value; write dates as YYYY-MM-DD and quote text that YAML might misread")
                return node.value
        if isinstance(node, SequenceNode):
            return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
        if isinstance(node, MappingNode):
            try:
                self._scalars.flatten_mapping(node)  # honour YAML merge keys (<<: *defaults)
            except yaml.YAMLError as exc:
                self._error("E-YAML-SYNTAX", f"bad merge key: {getattr(exc, 'problem', exc)}", path,
                            getattr(exc, "problem_mark", None) and _MarkNode(exc.problem_mark) or node,  # type: ignore[union-attr]
                            hint="`<<:` takes an anchored mapping, e.g. `<<: *defaults`")
                return {}
            result: dict[Any, Any] = {}
            seen: dict[Any, Node] = {}
            for key_node, value_node in node.value:
                # Keys are the text the admin wrote: `yes:` stays "yes" (YAML 1.1 would make it True),
                # and `1:` and `"1":` are the same DTMF key.
                key = key_node.value if isinstance(key_node, ScalarNode) else None
                if key is None or key == "":
                    self._error(
                        "E-YAML-KEY",
                        "a mapping key must be a plain word or number",
                        path,
                        key_node,
                        found=key_node.value if isinstance(key_node, ScalarNode) else type(key_node.value).__name__,
                        hint="write keys as plain scalars, e.g. `next:` or `\"1\":`",
                    )
                    continue
                norm = key
                if norm in seen:
                    first = seen[norm]
                    self._error(
                        "E-DUPLICATE-KEY",
                        f"key {norm!r} appears twice in the same mapping (first at line {first.start_mark.line + 1}); "
                        "YAML would silently keep only the last one",
                        path + (norm,),
                        key_node,
                        found=norm,
                        hint="remove or rename one of the two entries",
                    )
                    continue
                seen[norm] = key_node
                child_path = path + (norm,)
                self._mark(child_path, key_node)
                result[norm] = self.build(value_node, child_path)
            return result
        raise TypeError(f"unexpected YAML node {node!r}")  # pragma: no cover - PyYAML has only three kinds

    def _error(self, id: str, message: str, path: Path, node: Node, **kw: Any) -> None:
        self.diagnostics.append(
            Diagnostic(
                id=id,
                severity=Severity.ERROR,
                message=message,
                file=self.file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
                path=path,
                **kw,
            )
        )


class _MarkNode:
    """Lets a bare PyYAML mark stand where a node is expected (for its position)."""

    def __init__(self, mark: Any) -> None:
        self.start_mark = mark


def load_yaml(text: str, file: str = "<string>") -> LoadedYaml:
    """Parse one YAML document, keeping positions and reporting syntax errors as diagnostics."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        return LoadedYaml(
            None,
            {},
            [
                Diagnostic(
                    id="E-YAML-SYNTAX",
                    severity=Severity.ERROR,
                    message=f"the file is not valid YAML: {problem}",
                    file=file,
                    line=line,
                    column=col,
                    hint="check indentation (spaces, not tabs), colons after keys and quotes around text with ': ' or '#'",
                )
            ],
        )
    except yaml.YAMLError as exc:  # e.g. a second document, reader errors
        return LoadedYaml(
            None,
            {},
            [Diagnostic(id="E-YAML-SYNTAX", severity=Severity.ERROR, message=f"the file is not valid YAML: {exc}", file=file)],
        )
    if root is None:
        return LoadedYaml(
            None,
            {},
            [Diagnostic(id="E-YAML-EMPTY", severity=Severity.ERROR, message="the file is empty", file=file, hint="start from the example in calltrees/README.md")],
        )
    builder = _Builder(file)
    try:
        data = builder.build(root, ())
    except RecursionError:
        return LoadedYaml(None, {}, [Diagnostic(
            id="E-YAML-SYNTAX", severity=Severity.ERROR, file=file,
            message="the file nests too deeply, or an alias refers to itself (&a ... *a inside itself)",
            hint="remove the self-referencing alias")])
    return LoadedYaml(data, builder.positions, builder.diagnostics)
