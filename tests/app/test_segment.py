"""Sentence splitting: join(split(text)) == text for any text, and the boundaries fall where a reader expects."""

from __future__ import annotations

import random

import pytest

from app.segment import split

CASES = [
    ("Hello world. How are you?\nFine!  Thanks.", ["Hello world.", "How are you?", "Fine!", "Thanks."]),
    ("  Mr. Smith went home. He said \"hi.\" Then he left.\n\n",
     ["Mr. Smith went home.", "He said \"hi.\"", "Then he left."]),
    ("three one four\nfive six", ["three one four", "five six"]),
    ("one two. three four", ["one two. three four"]),  # lower case after the period: not a new sentence
    ("See e.g. Fig. 3 for J. Doe's result.", ["See e.g. Fig. 3 for J. Doe's result."]),
    ("Wait... what? No way!", ["Wait... what?", "No way!"]),
    ("你好。世界！", ["你好。", "世界！"]),
    ("a\r\nb", ["a", "b"]),
    ("one sentence", ["one sentence"]),
    ("", []),
    (" \n\t ", []),
]


@pytest.mark.parametrize(("text", "sentences"), CASES)
def test_split(text: str, sentences: list[str]) -> None:
    segmented = split(text)
    assert segmented.sentences == sentences
    assert len(segmented.gaps) == len(sentences) + 1
    assert segmented.join() == text


def test_join_replaces_sentences_and_keeps_whitespace() -> None:
    segmented = split("  One.  Two?\n\nThree!\n")
    assert segmented.join(["Eins.", "Zwei?", "Drei!"]) == "  Eins.  Zwei?\n\nDrei!\n"
    with pytest.raises(ValueError):
        segmented.join(["too few"])


def test_round_trip_on_random_text() -> None:
    rng = random.Random(0)
    alphabet = ["word", "Word", ".", "!", "?", " ", "  ", "\n", "\n\n", "\t", "\"", ")", "Mr.", "e.g.", "。", "x"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        segmented = split(text)
        assert segmented.join() == text
        assert all(s.strip() == s and s for s in segmented.sentences)
        assert all(not gap.strip() for gap in segmented.gaps)
