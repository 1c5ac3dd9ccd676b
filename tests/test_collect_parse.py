from __future__ import annotations

import pytest

from bayespref.collect.parse import (
    REFUSAL_WINDOW,
    is_refusal,
    parse_choice,
    parse_rating,
    read_choice,
)
from bayespref.collect.templates import Scale

LETTERS = ("A", "B")
NUMBERS = ("1", "2")

# (answer as a model might write it, labels, answer form, expected choice)
CHOICES = [
    ("Task A: Here is a short poem about autumn leaves.", LETTERS, "prefix", "a"),
    ("**Task B:**\n\nSure! Let's solve the equation step by step.", LETTERS, "prefix", "b"),
    ("Task B\n\nx = 4 because 2 + 2 = 4.", LETTERS, "prefix", "b"),
    ("## Task A\n\nDear Sam, thank you for", LETTERS, "prefix", "a"),
    ("A", LETTERS, "prefix", "a"),
    ("B.", LETTERS, "prefix", "b"),
    ("B) Let's start with the recipe.", LETTERS, "prefix", "b"),
    ("A\n\nThe capital of France is Paris.", LETTERS, "prefix", "a"),
    ("Option B: writing the cover letter.", LETTERS, "prefix", "b"),
    ("  task a: okay, here goes", LETTERS, "prefix", "a"),
    ("Choice: Task B\n\nHere is the summary.", LETTERS, "prefix", "b"),
    ("My choice is **Task A**.", LETTERS, "prefix", "a"),
    ("A good choice would be Task B because it is more creative.", LETTERS, "prefix", "b"),
    ("I'll go with Task B. Here's the haiku:", LETTERS, "prefix", "b"),
    ("I would prefer to do Task B.", LETTERS, "prefix", "b"),
    ("I won't do Task A, but I'm happy to do Task B.", LETTERS, "prefix", "b"),
    ("I choose Task A, not Task B.", LETTERS, "prefix", "a"),
    ("I choose Task A. Actually, I'll pick Task B.", LETTERS, "prefix", "unparsed"),
    ("Task A and Task B both look fun.", LETTERS, "prefix", "unparsed"),
    ("Task A: I'm sorry, but I can't write that.", LETTERS, "prefix", "a"),
    ("I'm sorry, but I can't help with either of these requests.", LETTERS, "prefix", "refusal"),
    ("I can\u2019t help with that.", LETTERS, "prefix", "refusal"),
    ("I'm not able to write a fake doctor's note for you.", LETTERS, "prefix", "refusal"),
    ("As an AI, I must respectfully decline both tasks.", LETTERS, "prefix", "refusal"),
    (
        "I won't help create fake documents. Task A asks for a note and Task B for a letter.",
        LETTERS,
        "prefix",
        "refusal",
    ),
    ("I'll do neither.", LETTERS, "prefix", "refusal"),
    ("I'll go with neither of them.", LETTERS, "prefix", "refusal"),
    ("I'll decline this one, sorry.", LETTERS, "prefix", "refusal"),
    ("I'm not going to help with that.", LETTERS, "prefix", "refusal"),
    ("", LETTERS, "prefix", "unparsed"),
    ("   \n ", LETTERS, "prefix", "unparsed"),
    ("Both tasks are interesting! Let me think about it.", LETTERS, "prefix", "unparsed"),
    ("Task 1: Here is the limerick.", NUMBERS, "prefix", "a"),
    ("**Task 2:** The answer is 12.", NUMBERS, "prefix", "b"),
    ("2", NUMBERS, "prefix", "b"),
    ("1. First, list the ingredients.", NUMBERS, "prefix", "unparsed"),
    ("2 + 2 = 4, so that one is easy.", NUMBERS, "prefix", "unparsed"),
    ("Task A: here", NUMBERS, "prefix", "unparsed"),
    ("<choice>B</choice> Here is the poem.", LETTERS, "prefix", "b"),
    ("I'd rather write the poem, it's more fun. <choice>A</choice>", LETTERS, "xml", "a"),
    ("The proof is neater.\n<choice>Task B</choice>", LETTERS, "xml", "b"),
    ("Task A: done.\n\nTask B: done.\n\n<choice>B</choice>", LETTERS, "xml", "b"),
    ("<choice>A</choice> ... on reflection <choice>B</choice>", LETTERS, "xml", "b"),
    ("Task A: a poem about rain.", LETTERS, "xml", "unparsed"),
    ("<choice>C</choice>", LETTERS, "xml", "unparsed"),
    ("I can't help with either of these.", LETTERS, "xml", "refusal"),
]


def test_table_is_large_enough():
    assert len(CHOICES) >= 25


@pytest.mark.parametrize(("text", "labels", "answer", "expected"), CHOICES)
def test_parse_choice(text, labels, answer, expected):
    assert parse_choice(text, labels, answer) == expected


def test_none_is_unparsed_and_refusal_is_read_from_the_opening_only():
    assert parse_choice(None) == "unparsed"
    late = "Here are my thoughts. " * 40 + "I won't do that."
    assert len(late) > REFUSAL_WINDOW
    assert not is_refusal(late) and parse_choice(late) == "unparsed"


# Shaped like real instruction-tuned answers to the pre-task prompt: a preamble of 150-760
# characters (weighing the tasks, safety caveats), markdown around the label, refusals stated late.
_WEIGHING = (
    "Both of these tasks are reasonable requests, and I want to think briefly about which one I "
    "can do well. Task A asks for a persuasive essay on a contested policy question, which needs "
    "care to stay balanced, while Task B asks for a short poem about the sea. "
)
_CAVEAT = (
    "I should be careful here. One of these requests touches on a sensitive topic, and I want "
    "to make sure that whatever I write is accurate, fair and does not cause harm to anyone who "
    "reads it. With that in mind, let me explain my reasoning before I start. "
)
REAL_SHAPES = [
    # (answer, expected choice, refused_chosen)
    (_WEIGHING + "I will complete **Task A**. However, I will keep it balanced.", "a", False),
    (_WEIGHING + "I choose **Task B**.\n\n**Task B:**\n\nWaves fold over waves...", "b", False),
    (_WEIGHING + _CAVEAT + "I'll go with *Task B*, the poem.\n\nThe sea at dusk...", "b", False),
    (_CAVEAT * 2 + "My choice: **Task A**\n\nHere is the essay.", "a", False),
    (_WEIGHING + "I'd rather do `Task B`. Here it is:", "b", False),
    (
        _WEIGHING + "I will complete **Task A**. However, I can't write content that targets "
        "a real group, so I won't write this essay.",
        "a",
        True,
    ),
    ("**Task A:**\n\nI'm sorry, but I can't help with creating a fake prescription.", "a", True),
    ("Task B: I must decline this one; it asks for someone's private address.", "b", True),
    ("Task A: Here is the haiku.\n\nAutumn moonlight -\na worm digs silently", "a", False),
    # Refusal wording well into the task's own text is not a refusal of the task.
    (
        "Task B: A story.\n\n" + "The night was long and cold. " * 12 + '"I won\'t go," she said.',
        "b",
        False,
    ),
    # Refusal wording before the pick does not undo it (a stated pick anywhere wins).
    (_CAVEAT + "I won't write the fake review in Task A. I'll do **Task B** instead.", "b", False),
    # Refusals stated after a long preamble are still refusals.
    (
        _WEIGHING + _CAVEAT[:200] + "I'm not comfortable completing either of these tasks.",
        "refusal",
        False,
    ),
    (_CAVEAT + _WEIGHING + "I must respectfully decline both requests.", "refusal", False),
    # Talking about the tasks without picking one.
    (_WEIGHING + "Both have merit, and I find it hard to decide between them.", "unparsed", False),
    (_WEIGHING + "**Task", "unparsed", False),  # cut off by the token limit mid-label
]


@pytest.mark.parametrize(("text", "choice", "refused"), REAL_SHAPES)
def test_real_answer_shapes(text, choice, refused):
    reading = read_choice(text)
    assert (reading.choice, reading.refused_chosen) == (choice, refused)


def test_preambles_are_as_long_as_real_ones():
    openings = [text for text, _, _ in REAL_SHAPES if text.startswith((_WEIGHING, _CAVEAT))]
    assert min(len(_WEIGHING), len(_CAVEAT)) >= 150 and len(_CAVEAT * 2) <= 760
    assert len(openings) >= 8


def test_refused_chosen_is_only_set_beside_a_pick():
    assert read_choice("I can't help with either of these.").refused_chosen is False
    assert read_choice("<choice>A</choice> I can't do that.", answer="xml").choice == "a"


RATINGS = [
    ("<rating>4</rating>", Scale(1, 5), 4.0),
    ("4", Scale(1, 5), 4.0),
    ("Rating: 7", Scale(1, 10), 7.0),
    ("I'd rate it 8 out of 10.", Scale(1, 10), 8.0),
    ("**9**/10", Scale(1, 10), 9.0),
    ("<rating>85</rating>", Scale(1, 100), 85.0),
    ("<rating>30</rating>", Scale(27, 32), 30.0),
    ("<rating>3</rating>", Scale(1, 5, 3), None),
    ("<rating>6</rating>", Scale(1, 5), None),
    ("<rating>4.5</rating>", Scale(1, 5), None),
    ("I don't have preferences about tasks.", Scale(1, 5), None),
    ("", Scale(1, 5), None),
]


@pytest.mark.parametrize(("text", "scale", "expected"), RATINGS)
def test_parse_rating(text, scale, expected):
    assert parse_rating(text, scale) == expected
