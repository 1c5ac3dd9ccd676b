"""Read a model's raw answer as a choice (`a`, `b`, `refusal`, `unparsed`) or a rating.

Choice answers are read in this order; the first rule that applies decides:

1. An empty answer is `unparsed`.
2. `<choice>X</choice>` tags: the last tag decides (a label that is not one of the template's is
   `unparsed`). Templates that ask for a tag (answer "xml") are read by this rule only, because
   their answers also contain "Task A:" headings while doing both tasks.
3. A label at the start, after markdown and a lead-in such as "Choice:": "Task A:", "**Task B:**",
   "Task 1", "A.", "B)", "A" alone on its line. The label must be followed by punctuation or a
   line end, so neither "A good choice is..." nor "Task A and Task B both..." is a choice; a full
   stop ends only a letter label, since "1. First, ..." opens a numbered list. An answer that
   names a task and then declines to do it ("Task A: I'm sorry, I can't...") chose that task.
4. A stated choice anywhere: a choosing verb before "Task X" ("I'll go with Task B", "I will
   complete **Task A**", "I choose `Task B`"), or "answer/choice: X"; markdown may wrap the label.
   A verb negated just before ("I won't do Task A") does not count; two different labels stated
   this way are `unparsed`.
5. Refusal (heuristic): one of REFUSAL_PATTERNS in the first REFUSAL_WINDOW characters, such as
   "I can't help with either", "I won't", "I'm not able to", "I must decline".
6. Anything else is `unparsed`.

A choice decided by rule 3 or 4 is `refused_chosen` when refusal wording (REFUSAL_PATTERNS) follows
the label within REFUSED_CHOSEN_WINDOW characters: the model picked a task, then declined to do it.
The choice stays `a` or `b`; the flag lets task-level refusal rates be counted beside it. The window
is short because the refusal comes right after the pick, and wording further on may be the task's
own text (a story's "I won't").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bayespref.collect.templates import Scale

# Real answers state their pick or refusal after a preamble of up to ~760 characters.
REFUSAL_WINDOW = 800
REFUSED_CHOSEN_WINDOW = 300
REFUSAL_PATTERNS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\bI(?: can ?not| can't| won't| will not| shouldn't| refuse to| am not going to|"
        r"'m not going to) (?:help|assist|do|complete|comply|fulfil|fulfill|engage|provide|"
        r"write|create|produce|choose|pick|take|participate|support|go along)",
        r"\bI won't\b",
        r"\b(?:do|choose|pick|complete|go with) neither\b",
        r"\bI(?:'m| am) (?:not able|unable|not comfortable|not willing)\b",
        r"\bI(?: must| have to| need to| will|'ll) (?:respectfully |politely )?decline\b",
        r"\bI (?:can't|cannot|won't) (?:in good conscience|ethically)\b",
    )
)
_MARKUP = " \t\r\n*_#>`\"'["
_LEAD_IN = re.compile(
    r"^(?:(?:my |final )*(?:choice|answer|selection|decision|response)\s*(?:is)?\s*[:\-]?\s*)",
    re.IGNORECASE,
)
_WRAP = r"[*_`\"'\[]*"  # markdown or quotes around a label: **Task A**, `Task B`, "A"
_NEGATION = re.compile(r"(?:n't|\bnot|\bnever|\bno)\s+(?:\w+\s+){0,2}$", re.IGNORECASE)
_VERBS = (
    r"choose|chose|choosing|pick|picked|picking|select|selected|selecting|prefer|preferred|"
    r"go with|going with|opt for|opting for|take|taking|do|doing|complete|completing|tackle|"
    r"tackling|work on|working on|rather do"
)
_TAG = re.compile(r"<choice>\s*(?:task\s*)?([^<\s]*)\s*</choice>", re.IGNORECASE)
_RATING_TAG = re.compile(r"<rating>\s*(-?\d+(?:\.\d+)?)\s*</rating>", re.IGNORECASE)
_RATING_WORD = re.compile(r"\b(?:rating|rate it|score)\b\D{0,12}?(-?\d+)\b", re.IGNORECASE)
_LEADING_NUMBER = re.compile(r"^\W*?(-?\d+)(?!\.\d)\b")


def _normalize(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _label_pattern(labels: tuple[str, str]) -> str:
    return "|".join(re.escape(label) for label in labels)


def _side(label: str, labels: tuple[str, str]) -> str:
    return "a" if label.casefold() == labels[0].casefold() else "b"


@dataclass(frozen=True)
class ChoiceReading:
    choice: str  # a, b, refusal or unparsed
    refused_chosen: bool = False  # picked a task (a or b), then declined to do it
    end: int = 0  # where the deciding statement ends in the normalized text


def _from_tags(text: str, labels: tuple[str, str]) -> ChoiceReading | None:
    tags = list(_TAG.finditer(text))
    if not tags:
        return None
    last = tags[-1].group(1).strip("*. ")
    known = {label.casefold() for label in labels}
    if last.casefold() not in known:
        return ChoiceReading("unparsed")
    return ChoiceReading(_side(last, labels), end=tags[-1].end())


def _from_prefix(text: str, labels: tuple[str, str]) -> ChoiceReading | None:
    head = _LEAD_IN.sub("", text.lstrip(_MARKUP)).lstrip(_MARKUP)
    offset = len(text) - len(head)
    for label in labels:
        stops = r":)\]*\-" + "\u2013\u2014" + ("" if label.isdigit() else ".")
        end = rf"(?=[ \t]*(?:[{stops}]|\n|$))"
        name = re.escape(label)
        match = re.match(rf"(?:(?:task|option)\s*[-#]?\s*)?{name}{end}", head, re.IGNORECASE)
        if match:
            return ChoiceReading(_side(label, labels), end=offset + match.end())
    return None


def _from_statement(text: str, labels: tuple[str, str]) -> ChoiceReading | None:
    names = _label_pattern(labels)
    stated = re.compile(
        rf"\b(?:(?:{_VERBS})\s+(?:(?:to\s+\w+|with|on)\s+)?(?:the\s+)?{_WRAP}(?:task|option)"
        rf"|(?:choice|answer|selection)\s*(?:is|would be|will be)?\s*[:\-]?\s*{_WRAP}\s*"
        rf"(?:task|option)?)"
        rf"\s*[-#]?\s*{_WRAP}\s*({names})\b",
        re.IGNORECASE,
    )
    found = [
        match
        for match in stated.finditer(text)
        if not _NEGATION.search(text[max(0, match.start() - 24) : match.start()])
    ]
    sides = {_side(match.group(1), labels) for match in found}
    if len(sides) == 1:
        return ChoiceReading(sides.pop(), end=found[0].end())
    return ChoiceReading("unparsed") if sides else None


def is_refusal(text: str) -> bool:
    """Whether the opening of an answer declines (see REFUSAL_PATTERNS)."""
    opening = _normalize(text)[:REFUSAL_WINDOW]
    return any(pattern.search(opening) for pattern in REFUSAL_PATTERNS)


def read_choice(
    text: str | None, labels: tuple[str, str] = ("A", "B"), answer: str = "prefix"
) -> ChoiceReading:
    """The choice and whether the chosen task was then refused, by the module docstring's rules."""
    text = _normalize(text or "").strip()
    if not text:
        return ChoiceReading("unparsed")
    rules = (_from_tags,) if answer == "xml" else (_from_tags, _from_prefix, _from_statement)
    for rule in rules:
        reading = rule(text, labels)
        if reading is None:
            continue
        if reading.choice in ("a", "b") and rule is not _from_tags:
            after = text[reading.end : reading.end + REFUSED_CHOSEN_WINDOW]
            return ChoiceReading(reading.choice, is_refusal(after), reading.end)
        return reading
    return ChoiceReading("refusal" if is_refusal(text) else "unparsed")


def parse_choice(
    text: str | None, labels: tuple[str, str] = ("A", "B"), answer: str = "prefix"
) -> str:
    """`a` (first shown), `b`, `refusal` or `unparsed`, by the rules in the module docstring."""
    return read_choice(text, labels, answer).choice


def parse_rating(text: str | None, scale: Scale) -> float | None:
    """The rating in an answer, or None when there is none or it is off the scale or banned.

    Read from a <rating> tag, else "rating: N" / "I'd rate it N", else a number opening the answer.
    """
    text = _normalize(text or "").strip()
    for pattern in (_RATING_TAG, _RATING_WORD, _LEADING_NUMBER):
        match = pattern.search(text)
        if match:
            value = float(match.group(1))
            if value.is_integer() and scale.allows(int(value)):
                return value
            return None
    return None
