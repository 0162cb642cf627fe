"""``ivr prompts ...``: the spoken texts of call trees and the audio files Asterisk plays them from.

``list`` shows every text per language with its file key (templates marked),
``missing`` exits 1 while a recordable text has no audio file (or one Asterisk
cannot play), and ``manifest`` writes ``recordings/prompts/<lang>/manifest.tsv``
for the voice talent or a TTS tool. They read only the tree files and the
recordings folder: no database, no Asterisk. See ``recordings/README.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from ivr.prompts import (
    TEMPLATE_NOTE,
    PromptText,
    missing,
    prompt_texts,
    unplayable,
    write_manifests,
)

app = typer.Typer(no_args_is_help=True, help="Prompt audio for Asterisk: list the spoken texts, find the missing "
                                             "recordings, write the manifests for recording them.")

TreesArg = typer.Argument(..., metavar="TREE...", help="Tree files or folders (folders: every *.yaml except *.tests.yaml)")
RecordingsOpt = typer.Option(None, "--recordings",
                             help="The recordings folder holding prompts/<lang>/ (default: each tree's `recordings` "
                                  "folder, recordings/ for the sample trees)")


def _shown(path: Path) -> str:
    """A path relative to the current folder when it is inside it (shorter messages), else as is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _load(paths: list[Path]) -> list[tuple[Path, Any]]:
    """Load every tree; print the blocking problems and exit 1 when one does not load.

    Safety lints do not stop these commands: recording prompts for a draft is normal work.
    """
    from ivr.cli import _tree_files  # same folder rules as `ivr validate`
    from ivr.errors import TreeInvalid
    from ivr.tree import load_tree

    files = _tree_files(paths)
    if not files:
        typer.echo("no call-tree files found", err=True)
        raise typer.Exit(2)
    trees = []
    failed = False
    for f in files:
        try:
            trees.append((f, load_tree(f, allow_lints=True)))
        except TreeInvalid as exc:
            for d in exc.diagnostics:
                if d.blocking:
                    typer.echo(d.render(), err=True)
            typer.echo(f"{f}: the tree does not load; run `ivr validate {f}`", err=True)
            failed = True
    if failed:
        raise typer.Exit(1)
    return trees


def _base(tree: Any, recordings: Optional[Path]) -> Path:
    return tree.recordings_dir if recordings is None else recordings


def _nodes(p: PromptText) -> str:
    return ",".join(p.nodes or (p.node,))


@app.command("list")
def list_(
    paths: list[Path] = TreesArg,
    language: Optional[str] = typer.Option(None, "--language", "-l", help="Only this language (e.g. es)"),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable results"),
) -> None:
    """Every spoken text of the trees, per language, with the audio file key (templates marked TEMPLATE)."""
    trees = _load(paths)
    if language is not None and not any(language in t.spec.languages for _, t in trees):
        langs = sorted({lang for _, t in trees for lang in t.spec.languages})
        typer.echo(f"no tree speaks {language!r}; the trees' languages are: {', '.join(langs)}", err=True)
        raise typer.Exit(2)
    results = []
    for f, tree in trees:
        prompts = [p for p in prompt_texts(tree) if language is None or p.language == language]
        results.append((f, tree, prompts))
    templates = sum(p.is_template for _, _, ps in results for p in ps)
    if as_json:
        typer.echo(json.dumps({
            "files": [{"file": str(f), "languages": tree.spec.languages, "prompts": [p.to_json() for p in ps]}
                      for f, tree, ps in results],
            "template_note": TEMPLATE_NOTE,
        }, indent=2, ensure_ascii=False))
        return
    for f, tree, prompts in results:
        if language is not None and language not in tree.spec.languages:
            typer.echo(f"{f}: does not speak {language} (languages: {', '.join(tree.spec.languages)})")
            continue
        per_lang = {lang: sum(1 for p in prompts if p.language == lang) for lang in tree.spec.languages
                    if language is None or lang == language}
        n_tpl = sum(p.is_template for p in prompts)
        typer.echo(f"{f}: {len(prompts)} spoken text(s) ("
                   + ", ".join(f"{lang} {n}" for lang, n in per_lang.items())
                   + (f"), {n_tpl} template(s)" if n_tpl else ")"))
        rows = [(p.language, ("TEMPLATE " + " ".join(f"{{{v}}}" for v in p.variables)) if p.is_template else (p.key or ""),
                 _nodes(p), json.dumps(p.text, ensure_ascii=False)) for p in prompts]
        widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
        for r in rows:
            typer.echo("  " + "  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    if templates:
        typer.echo("")
        typer.echo(TEMPLATE_NOTE)


@app.command("missing")
def missing_(
    paths: list[Path] = TreesArg,
    recordings: Optional[Path] = RecordingsOpt,
) -> None:
    """Recordable texts with no audio file (or a file Asterisk cannot play). Exit 1 if there is any."""
    trees = _load(paths)
    bad = False
    for f, tree in trees:
        base = _base(tree, recordings)
        absent = missing(tree, base)
        broken = unplayable(tree, base)
        prompts = prompt_texts(tree)
        recordable = [p for p in prompts if not p.is_template]
        n_tpl = len(prompts) - len(recordable)
        folder = _shown(base / "prompts")
        if not absent and not broken:
            typer.echo(f"{f}: OK: all {len(recordable)} recordable text(s) have audio in {folder}/"
                       + (f"; {n_tpl} template(s) skipped" if n_tpl else ""))
            continue
        bad = True
        typer.echo(f"{f}: {len(absent)} of {len(recordable)} recordable text(s) have no audio in {folder}/"
                   + (f", {len(broken)} file(s) Asterisk cannot play" if broken else ""))
        for p in absent:
            typer.echo(f"  missing  {p.language}  {_shown(p.path(base))}  {_nodes(p)}  "
                       f"{json.dumps(p.text, ensure_ascii=False)}")
        for p, audio, why in broken:
            typer.echo(f"  cannot play  {p.language}  {_shown(audio)}  {_nodes(p)}: {why}")
        if n_tpl:
            typer.echo(f"  {n_tpl} template text(s) skipped: they are rendered per call "
                       "(`ivr prompts list` shows them and how they can be played)")
    if bad:
        typer.echo("Record them from the manifest (`ivr prompts manifest`), as 8 kHz mono 16-bit PCM WAV "
                   "(see recordings/README.md). Asterisk fails a prompt whose file is missing; the engine moves "
                   "on and the caller does not hear it.", err=True)
    raise typer.Exit(1 if bad else 0)


@app.command("manifest")
def manifest(
    paths: list[Path] = TreesArg,
    recordings: Optional[Path] = RecordingsOpt,
) -> None:
    """Write recordings/prompts/<lang>/manifest.tsv (key, node, text) for every language of the trees.

    Trees that share a recordings folder are merged into one manifest per language, so give every tree
    that uses the folder (e.g. `ivr prompts manifest calltrees/`).
    """
    trees = _load(paths)
    groups: dict[Path, list[Any]] = {}
    for _f, tree in trees:
        groups.setdefault(_base(tree, recordings).resolve(), []).append(tree)
    for base, group in groups.items():
        written = write_manifests(group, base)
        prompts = [p for t in group for p in prompt_texts(t)]
        for lang, path in written.items():
            n = len({p.key for p in prompts if p.language == lang and p.key is not None})
            typer.echo(f"wrote {_shown(path)}: {n} text(s) to record")
        n_tpl = len({(p.language, p.text) for p in prompts if p.is_template})
        if n_tpl:
            typer.echo(f"{n_tpl} template text(s) left out: they are rendered per call (see `ivr prompts list`)")
