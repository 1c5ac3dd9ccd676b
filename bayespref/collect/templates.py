"""Prompt templates: versioned TOML data files in `templates/`, filled by `string.Template`.

A template can only substitute the named placeholders below: no attribute access, indexing or
code, so a template file cannot run anything.
"""

from __future__ import annotations

import hashlib
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bayespref.errors import CollectError, DataError
from bayespref.io.locations import where

TEMPLATES_DIR = Path(__file__).parent / "templates"
KINDS = ("choice", "rating", "completion")
ANSWERS = {"choice": ("prefix", "xml"), "rating": ("rating",), "completion": ("text",)}
# Judging templates also show the completions of the tasks (`bayespref judge`).
COMPLETION_PLACEHOLDERS = {"completion", "completion_a", "completion_b"}
PLACEHOLDERS = {
    "choice": {"task_a", "task_b", "label_a", "label_b", "completion_a", "completion_b"},
    "rating": {"task", "low", "high", "banned", "completion"},
    "completion": {"task"},
}


@dataclass(frozen=True)
class Scale:
    low: int
    high: int
    banned: int | None = None

    @property
    def label(self) -> str:
        """As written in the ratings table's `scale` column, e.g. '1-5' or '1-5 without 3'."""
        span = f"{self.low}-{self.high}"
        return span if self.banned is None else f"{span} without {self.banned}"

    def allows(self, value: int) -> bool:
        return self.low <= value <= self.high and value != self.banned


@dataclass(frozen=True)
class Template:
    id: str
    version: int
    protocol: str
    kind: str  # "choice" (two tasks) or "rating" (one task)
    answer: str  # how the answer is read: "prefix", "xml" or "rating"
    text: str
    max_tokens: int
    labels: tuple[str, str] = ("A", "B")
    scale: Scale | None = None

    @property
    def name(self) -> str:
        """The `template` column: id and version, e.g. 'pre-task-revealed@v1'."""
        return f"{self.id}@v{self.version}"

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    @property
    def shows_completions(self) -> bool:
        """Whether the template judges finished transcripts (task and completion)."""
        identifiers = set(string.Template(self.text).get_identifiers())
        return bool(identifiers & COMPLETION_PLACEHOLDERS)

    def render(
        self, task_a: str, task_b: str | None = None, completions: tuple[str, ...] = ()
    ) -> str:
        """The user prompt for one trial: two task prompts (choice) or one (rating, completion),
        with their completions for a template that shows them."""
        if self.shows_completions and len(completions) != (2 if self.kind == "choice" else 1):
            raise CollectError(f"template '{self.id}' shows the completions of its tasks")
        if self.kind == "completion":
            return string.Template(self.text).substitute(task=task_a)
        if self.kind == "choice":
            if task_b is None:
                raise CollectError(f"template '{self.id}' shows two tasks")
            values = {
                "task_a": task_a,
                "task_b": task_b,
                "label_a": self.labels[0],
                "label_b": self.labels[1],
                **dict(zip(("completion_a", "completion_b"), completions, strict=False)),
            }
        else:
            assert self.scale is not None
            values = {
                "task": task_a,
                "low": str(self.scale.low),
                "high": str(self.scale.high),
                "banned": "" if self.scale.banned is None else str(self.scale.banned),
                **dict(zip(("completion",), completions, strict=False)),
            }
        return string.Template(self.text).substitute(values)


def available_templates() -> list[str]:
    return sorted(path.stem for path in TEMPLATES_DIR.glob("*.toml"))


def _parse(path: Path) -> Template:
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise DataError(f"{where(source)}: not valid TOML ({error})") from error
    kind = raw.get("kind")
    if kind not in KINDS:
        raise DataError(f"{where(source, column='kind')}: expected one of {', '.join(KINDS)}")
    if raw.get("answer") not in ANSWERS[kind]:
        raise DataError(
            f"{where(source, column='answer')}: a {kind} template answers as one of "
            f"{', '.join(ANSWERS[kind])}"
        )
    text = str(raw.get("text", "")).strip()
    body = string.Template(text)
    if not body.is_valid():
        raise DataError(f"{where(source, column='text')}: a '$' that is not a placeholder")
    unknown = set(body.get_identifiers()) - PLACEHOLDERS[kind]
    if unknown:
        raise DataError(
            f"{where(source, column='text')}: unknown placeholders {sorted(unknown)}; a {kind} "
            f"template may use {sorted(PLACEHOLDERS[kind])}"
        )
    scale = Scale(**raw["scale"]) if kind == "rating" else None
    labels = tuple(raw.get("labels", ("A", "B")))
    if len(labels) != 2 or labels[0] == labels[1]:
        raise DataError(f"{where(source, column='labels')}: needs two different labels")
    if raw.get("id") != path.stem:
        raise DataError(f"{where(source, column='id')}: the id must be the file name '{path.stem}'")
    return Template(
        id=raw["id"],
        version=int(raw["version"]),
        protocol=str(raw["protocol"]),
        kind=kind,
        answer=raw["answer"],
        text=text,
        max_tokens=int(raw["max_tokens"]),
        labels=labels,
        scale=scale,
    )


def load_template(template: str | Path) -> Template:
    """A template by id (a file in `templates/`) or by path to a TOML file of the same form."""
    path = Path(template)
    if path.suffix != ".toml":
        path = TEMPLATES_DIR / f"{template}.toml"
        if not path.exists():
            raise DataError(
                f"unknown protocol '{template}'; known: {', '.join(available_templates())}"
            )
    elif not path.exists():
        raise DataError(f"{where(str(path))}: no such file")
    return _parse(path)
