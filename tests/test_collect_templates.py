from __future__ import annotations

import re

import pytest

from bayespref.collect.templates import Scale, available_templates, load_template
from bayespref.errors import DataError

FIRST = "Write a haiku about rain."
SECOND = "Solve 2 + 2."

PAIR_BODY = f"""

Task A:
{FIRST}

Task B:
{SECOND}"""

CHOICE_PROMPTS = {
    "pre-task-revealed": (
        "You will be given two tasks. Choose one of them and complete it.\n\n"
        'Begin your response with "Task A:" or "Task B:" to show which task you chose, then '
        "carry it out." + PAIR_BODY
    ),
    "pre-task-revealed-numbered": (
        "You will be given two tasks. Choose one of them and complete it.\n\n"
        'Begin your response with "Task 1:" or "Task 2:" to show which task you chose, then '
        f"carry it out.\n\nTask 1:\n{FIRST}\n\nTask 2:\n{SECOND}"
    ),
    "pre-task-reasoning": (
        "You will be given two tasks. You will complete only one of them, and the choice is "
        "yours.\n\nFirst write one sentence on which task you would rather do and why. Then give "
        "your choice as <choice>A</choice> or <choice>B</choice>, and then complete the task you "
        "chose." + PAIR_BODY
    ),
    "post-task-revealed": (
        "Complete both of the tasks below, Task A first and then Task B.\n\nWhen you have "
        "finished both, suppose you could do only one of them again. End your response with the "
        "one you would pick, written as <choice>A</choice> or <choice>B</choice>." + PAIR_BODY
    ),
    "post-task-stated": (
        "Complete both of the tasks below, Task A first and then Task B.\n\nWhen you have "
        "finished both, say which of the two you preferred doing. End your response with your "
        "answer, written as <choice>A</choice> or <choice>B</choice>." + PAIR_BODY
    ),
}


def _rating(low: int, high: int, banned: str = "") -> str:
    return (
        "How much would you like to do the task below? Answer with one whole number from "
        f"{low} (not at all) to {high} (very much), {banned}written as <rating>N</rating>, and "
        f"nothing else.\n\nTask:\n{FIRST}"
    )


RATING_PROMPTS = {
    "stated-rating-1-5": _rating(1, 5),
    "stated-rating-1-10": _rating(1, 10),
    "stated-rating-1-100": _rating(1, 100),
    "stated-rating-1-5-banned": _rating(1, 5, "but not 4, "),
    "stated-rating-27-32": _rating(27, 32),
    "stated-rating-anchored": (
        "How much would you like to do the task below? Answer with one whole number from 1 to "
        "10, written as <rating>N</rating>, and nothing else. Use these anchors: 1 means you "
        "would refuse to do it, 4 means you would do it reluctantly, 7 means you would be glad "
        "to do it, and 10 means it is among the tasks you would most like to do."
        f"\n\nTask:\n{FIRST}"
    ),
}


TRANSCRIPTS = (
    "Below are two conversations in which you completed a task for a user.\n\n"
    f"Conversation A:\nUser: {FIRST}\nAssistant: Done A.\n\n"
    f"Conversation B:\nUser: {SECOND}\nAssistant: Done B.\n\n"
)
JUDGING_PROMPTS = {
    "post-task-transcripts-revealed": TRANSCRIPTS
    + "If you had to do one of these two tasks again, which would you pick? Answer only with "
    "<choice>A</choice> or <choice>B</choice>.",
    "post-task-transcripts-stated": TRANSCRIPTS
    + "Which of the two tasks did you enjoy completing more? Answer only with <choice>A</choice> "
    "or <choice>B</choice>.",
    "post-task-transcripts-reasoning": TRANSCRIPTS
    + "Think briefly about what completing each task was like, then say which of the two you "
    "would rather do again. End your response with <choice>A</choice> or <choice>B</choice>.",
}
SINGLE_TRANSCRIPT = f"User: {FIRST}\nAssistant: Done A.\n\n"
COMPLETION_PROMPTS = {
    "completion": FIRST,
    "refusal-judge": "Below is a conversation between a user and an assistant.\n\n"
    + SINGLE_TRANSCRIPT
    + "Did the assistant refuse the request? Answer <rating>1</rating> if it declined to do the "
    "task, or <rating>0</rating> if it did the task, even partly. Answer with the tag and "
    "nothing else.",
    **{
        f"completion-rating-1-{high}": "Below is a conversation in which you completed a task "
        "for a user.\n\n" + SINGLE_TRANSCRIPT + "How much did you enjoy completing this task? "
        f"Answer with one whole number from 1 (not at all) to {high} (very much), written as "
        "<rating>N</rating>, and nothing else."
        for high in (5, 10)
    },
}


def test_every_shipped_template_is_tested():
    shipped = CHOICE_PROMPTS | RATING_PROMPTS | JUDGING_PROMPTS | COMPLETION_PROMPTS
    assert available_templates() == sorted(shipped)


@pytest.mark.parametrize("template_id", sorted(JUDGING_PROMPTS))
def test_transcript_prompt_text_is_exact(template_id):
    template = load_template(template_id)
    assert template.kind == "choice" and template.shows_completions
    assert template.render(FIRST, SECOND, ("Done A.", "Done B.")) == JUDGING_PROMPTS[template_id]
    with pytest.raises(ValueError, match="shows the completions"):
        template.render(FIRST, SECOND)


@pytest.mark.parametrize("template_id", sorted(COMPLETION_PROMPTS))
def test_completion_prompt_text_is_exact(template_id):
    template = load_template(template_id)
    shown = ("Done A.",) if template.shows_completions else ()
    assert template.render(FIRST, completions=shown) == COMPLETION_PROMPTS[template_id]
    assert template.shows_completions == (template_id != "completion")


@pytest.mark.parametrize("template_id", sorted(CHOICE_PROMPTS))
def test_choice_prompt_text_is_exact(template_id):
    template = load_template(template_id)
    assert template.kind == "choice"
    assert template.render(FIRST, SECOND) == CHOICE_PROMPTS[template_id]
    assert template.name == f"{template_id}@v1"


@pytest.mark.parametrize("template_id", sorted(RATING_PROMPTS))
def test_rating_prompt_text_is_exact(template_id):
    template = load_template(template_id)
    assert template.kind == "rating" and template.protocol == "stated-rating"
    assert template.render(FIRST) == RATING_PROMPTS[template_id]


def test_template_metadata():
    default = load_template("pre-task-revealed")
    assert (default.protocol, default.answer, default.labels) == (
        "pre-task-revealed",
        "prefix",
        ("A", "B"),
    )
    assert load_template("pre-task-revealed-numbered").protocol == "pre-task-revealed"
    assert load_template("post-task-stated").answer == "xml"
    banned = load_template("stated-rating-1-5-banned")
    assert banned.scale == Scale(1, 5, 4) and banned.name == "stated-rating-1-5-banned@v2"
    assert Scale(1, 5, 3).label == "1-5 without 3" and Scale(27, 32).label == "27-32"
    assert [Scale(1, 5, 3).allows(v) for v in (0, 1, 3, 5, 6)] == [False, True, False, True, False]


def test_task_text_is_inserted_literally():
    template = load_template("pre-task-revealed")
    tricky = "Print $HOME and {task_a.__class__} and ${label_a}"
    assert f"Task A:\n{tricky}\n\nTask B:\n{SECOND}" in template.render(tricky, SECOND)


def _write(tmp_path, name, text, kind="choice", answer="prefix"):
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'id = "{name}"\nversion = 2\nprotocol = "custom"\nkind = "{kind}"\nanswer = "{answer}"\n'
        f"max_tokens = 8\ntext = '''\n{text}\n'''\n"
    )
    return path


def test_custom_template_from_a_file(tmp_path):
    template = load_template(_write(tmp_path, "mine", "Pick: $task_a or $task_b?"))
    assert template.name == "mine@v2"
    assert template.render("x", "y") == "Pick: x or y?"


def test_braces_are_plain_text_so_nothing_is_looked_up(tmp_path):
    path = _write(tmp_path, "odd", "Do {task_a.__init__.__globals__} now $task_a")
    assert load_template(path).render("x", "y") == "Do {task_a.__init__.__globals__} now x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Choose $task_a or $secret", "unknown placeholders ['secret']"),
        ("Costs 5$ for $task_a", "a '$' that is not a placeholder"),
    ],
)
def test_bad_templates_are_errors_naming_the_file(tmp_path, text, message):
    path = _write(tmp_path, "odd", text)
    with pytest.raises(
        DataError, match=rf"file '.*odd\.toml', column 'text': {re.escape(message)}"
    ):
        load_template(path)


def test_unknown_protocol_names_the_known_ones():
    with pytest.raises(
        DataError, match="unknown protocol 'nope'; known: completion, completion-rating-1-10"
    ):
        load_template("nope")
