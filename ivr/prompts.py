"""The spoken texts of a call tree, and the audio files Asterisk plays them from.

Asterisk has no text-to-speech of its own: the engine plays each ``say`` text
as ``sound:ivr/<key>`` (:func:`ivr.ari.media.prompt_key`), so every text must
exist as ``recordings/prompts/<lang>/<key>.wav`` before a tree goes live on
Asterisk. This module lists those texts, finds the ones with no audio yet, and
writes a manifest per language for the voice talent or a TTS tool
(``recordings/prompts/<lang>/manifest.tsv``). ``ivr prompts ...``
(:mod:`ivr.cli_prompts`) is the command line for it; ``recordings/README.md``
describes the folder and how to install it on Asterisk.

A text is listed once per language the tree speaks, exactly as the interpreter
picks it for that language (:meth:`CallTree.pick`), so the key is the one the
engine asks Asterisk for. Where the texts live is the same walk the tree checks
use (:func:`ivr.checks._texts`: ``say`` nodes, every ``prompt`` - menu, input,
survey, record/voicemail, callback, hangup goodbyes - and the menu/input
``no_input``/``invalid`` retry prompts); SMS text is not spoken and is left out.
The emergency notice is a ``say`` node and is covered like any other. Queue
announcements use Asterisk's stock ``queue-*`` sounds, not tree texts.

Texts with ``{variables}`` are rendered per call and cannot be recorded ahead:
they are listed with ``is_template`` set and no key, and :func:`missing` and the
manifest skip them (see :data:`TEMPLATE_NOTE`).
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ivr.ari.media import prompt_key
from ivr.checks import _TEMPLATE, _texts
from ivr.schema import SmsNode
from ivr.tree import CallTree

PROMPTS_DIR = "prompts"
MANIFEST = "manifest.tsv"
MANIFEST_HEADER = ("key", "node", "text")
# Asterisk's format_wav plays 8 kHz from ``.wav`` and 16 kHz from ``.wav16``; it does not resample.
AUDIO_RATES = {".wav": 8000, ".wav16": 16000}

TEMPLATE_NOTE = (
    "Texts marked TEMPLATE contain {variables} filled in during the call, so no audio file can be "
    "recorded for them ahead of time; `ivr prompts missing` and the manifest skip them. On Asterisk they "
    "need per-call speech synthesis, or a rewrite of the tree so the fixed words are recorded prompts and "
    "the variable is said by Asterisk itself where it is a number or digits (say-number / say-digits, the "
    "ARI media `number:` and `digits:`). Until then the engine asks Asterisk for a file that does not exist: "
    "the playback fails, the call goes on, and the caller does not hear that text."
)


@dataclass(frozen=True)
class PromptText:
    """One spoken text in one language.

    ``node`` is the first node (in tree order) that speaks it; ``nodes`` all of them, since the same
    text (``Sorry, that is not an option.``) is often shared and needs one recording. ``key`` is
    :func:`prompt_key` of the text, the file name without ``.wav``; None for a template, which has no
    file. ``variables`` are the template's ``{names}``.
    """

    node: str
    language: str
    text: str
    key: str | None
    is_template: bool
    nodes: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()

    @property
    def filename(self) -> str | None:
        """``<key>.wav``, relative to ``recordings/prompts/<lang>/``; None for a template."""
        return None if self.key is None else f"{self.key}.wav"

    def path(self, recordings_dir: str | Path) -> Path | None:
        """Where the audio belongs: ``<recordings_dir>/prompts/<lang>/<key>.wav``; None for a template."""
        if self.key is None:
            return None
        return Path(recordings_dir) / PROMPTS_DIR / self.language / f"{self.key}.wav"

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node, "nodes": list(self.nodes), "language": self.language, "text": self.text,
            "key": self.key, "is_template": self.is_template, "variables": list(self.variables),
            "audio": None if self.key is None else f"{PROMPTS_DIR}/{self.language}/{self.key}.wav",
        }


def spoken_texts(tree: CallTree) -> Iterator[tuple[str, tuple[Any, ...], dict[str, str]]]:
    """(node id, path inside the node, language map) for every text the interpreter can speak, in tree order."""
    for nid, node in tree.spec.nodes.items():
        for path, text, is_audio in _texts(node):
            if is_audio:
                continue  # a `play` file: listed by the tree checks (E-AUDIO-MISSING), not a text
            if isinstance(node, SmsNode) and path == ("text",):
                continue  # sent as a text message, never spoken
            yield nid, path, text


def prompt_texts(tree: CallTree) -> list[PromptText]:
    """Every spoken text of ``tree`` in every language it speaks, once per (language, text).

    Ordered by language (as in the tree's ``languages``), then by where the text first appears.
    """
    found: dict[tuple[str, str], list[Any]] = {}  # (language, text) -> [first node, nodes]
    for lang in tree.spec.languages:
        for nid, _path, text_map in spoken_texts(tree):
            text = tree.pick(text_map, lang)
            entry = found.get((lang, text))
            if entry is None:
                found[(lang, text)] = [nid, [nid]]
            elif nid not in entry[1]:
                entry[1].append(nid)
    out: list[PromptText] = []
    for (lang, text), (first, nodes) in found.items():
        names = tuple(dict.fromkeys(_TEMPLATE.findall(text)))
        template = bool(names)
        out.append(PromptText(node=first, language=lang, text=text, key=None if template else prompt_key(text, lang),
                              is_template=template, nodes=tuple(nodes), variables=names))
    return out


# ---------------------------------------------------------------------- audio files


def audio_file(recordings_dir: str | Path, prompt: PromptText) -> Path | None:
    """The recorded file for ``prompt`` (``<key>.wav``, else ``<key>.wav16``), or None if there is none."""
    if prompt.key is None:
        return None
    folder = Path(recordings_dir) / PROMPTS_DIR / prompt.language
    for ext in AUDIO_RATES:
        f = folder / f"{prompt.key}{ext}"
        if f.is_file():
            return f
    return None


def missing(tree: CallTree, recordings_dir: str | Path | None = None) -> list[PromptText]:
    """Texts that can be recorded (not templates) and have no audio under ``recordings_dir``.

    ``recordings_dir`` defaults to the tree's own ``recordings`` folder. A ``<key>.wav16`` (16 kHz)
    counts as present, since Asterisk plays it for ``sound:ivr/<key>`` too.
    """
    base = tree.recordings_dir if recordings_dir is None else Path(recordings_dir)
    return [p for p in prompt_texts(tree) if not p.is_template and audio_file(base, p) is None]


def audio_problem(path: str | Path) -> str | None:
    """Why Asterisk would refuse to play this file, or None when it is fine.

    Asterisk's WAV reader takes plain PCM (format 1), mono, 16-bit, at exactly 8000 Hz for ``.wav`` and
    16000 Hz for ``.wav16``; anything else fails the playback just like a missing file.
    """
    p = Path(path)
    want = AUDIO_RATES.get(p.suffix.lower(), 8000)
    try:
        with open(p, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return "not a WAV file (no RIFF/WAVE header)"
            while True:
                chunk = f.read(8)
                if len(chunk) < 8:
                    return "no `fmt ` chunk"
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = f.read(min(size, 16))
                    break
                f.seek(size + (size & 1), os.SEEK_CUR)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if len(fmt) < 16:
        return "`fmt ` chunk too short"
    tag, channels, rate, _bps, _align, bits = struct.unpack("<HHIIHH", fmt)
    problems = []
    if tag != 1:
        problems.append("not plain PCM" + (" (WAVE_FORMAT_EXTENSIBLE)" if tag == 0xFFFE else f" (format {tag})"))
    if channels != 1:
        problems.append(f"{channels} channels, not mono")
    if bits != 16:
        problems.append(f"{bits}-bit, not 16-bit")
    if rate != want:
        hint = f"; save {rate} Hz audio as .wav16" if rate == 16000 and want == 8000 else ""
        problems.append(f"{rate} Hz, a {p.suffix} must be {want} Hz{hint}")
    return "; ".join(problems) or None


def unplayable(tree: CallTree, recordings_dir: str | Path | None = None) -> list[tuple[PromptText, Path, str]]:
    """Recorded prompts whose file Asterisk cannot play: (prompt, file, why)."""
    base = tree.recordings_dir if recordings_dir is None else Path(recordings_dir)
    out = []
    for p in prompt_texts(tree):
        f = audio_file(base, p)
        if f is not None:
            why = audio_problem(f)
            if why:
                out.append((p, f, why))
    return out


# ---------------------------------------------------------------------- manifest


class ManifestRow(NamedTuple):
    key: str
    node: str  # the nodes speaking the text, comma-separated
    text: str


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _escape(value: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in value)


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in _UNESCAPES:
            out.append(_UNESCAPES[value[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def manifest_rows(prompts: Iterable[PromptText], language: str) -> list[ManifestRow]:
    """Rows for one language: recordable texts only, one per key, nodes merged, in first-seen order."""
    rows: dict[str, tuple[list[str], str]] = {}
    for p in prompts:
        if p.language != language or p.key is None:
            continue
        nodes, _text = rows.setdefault(p.key, ([], p.text))
        for n in p.nodes or (p.node,):
            if n not in nodes:
                nodes.append(n)
    return [ManifestRow(key, ",".join(nodes), text) for key, (nodes, text) in rows.items()]


def render_manifest(rows: Iterable[ManifestRow]) -> str:
    """Tab-separated, UTF-8, a header line; tabs, newlines and backslashes in a field are escaped as ``\\t``, ``\\n``, ``\\\\``."""
    lines = ["\t".join(MANIFEST_HEADER)]
    lines.extend("\t".join(_escape(v) for v in row) for row in rows)
    return "\n".join(lines) + "\n"


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """The rows of a manifest written by :func:`write_manifests` (the header line is skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line or (i == 0 and tuple(line.split("\t")) == MANIFEST_HEADER):
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{path}:{i + 1}: expected 3 tab-separated fields (key, node, text), found {len(fields)}")
        rows.append(ManifestRow(*(_unescape(f) for f in fields)))
    return rows


def write_manifests(trees: CallTree | Iterable[CallTree], recordings_dir: str | Path | None = None) -> dict[str, Path]:
    """Write ``<recordings_dir>/prompts/<lang>/manifest.tsv`` for every language of ``trees``; returns language -> file.

    Several trees are merged into one manifest per language (trees sharing a recordings folder share
    their prompt files), so pass every tree that uses the folder: a manifest lists exactly the texts of
    the trees given. ``recordings_dir`` defaults to the first tree's ``recordings`` folder. Each file is
    replaced atomically.
    """
    tree_list = [trees] if isinstance(trees, CallTree) else list(trees)
    if not tree_list:
        return {}
    base = tree_list[0].recordings_dir if recordings_dir is None else Path(recordings_dir)
    languages: list[str] = []
    prompts: list[PromptText] = []
    for tree in tree_list:
        languages.extend(lang for lang in tree.spec.languages if lang not in languages)
        prompts.extend(prompt_texts(tree))
    written: dict[str, Path] = {}
    for lang in languages:
        folder = base / PROMPTS_DIR / lang
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / MANIFEST
        fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tsv", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(render_manifest(manifest_rows(prompts, lang)))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written[lang] = target
    return written
