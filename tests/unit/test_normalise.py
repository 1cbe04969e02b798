from __future__ import annotations

import pytest

from gifcat.domain.normalise import normalise_tag, normalise_text, singular


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("#HappyBirthday", "happybirthday"),
        ("Happy Birthday", "happybirthday"),
        ("happy_birthdays", "happybirthday"),
        ("  #Funny ", "funny"),
        ("PUPPIES", "puppy"),
        ("kisses", "kiss"),
        ("Café", "cafe"),
        ("choqué", "choque"),
        ("👋🏽", "👋"),  # skin tone is not meaning
        ("❤️", "❤"),  # nor is the emoji variation selector
        ("wütend", "wutend"),
    ],
)
def test_tags_normalise_to_one_key(typed: str, key: str) -> None:
    assert normalise_tag(typed) == key


def test_plural_rule_leaves_short_and_exceptional_words() -> None:
    assert singular("omg") == "omg"
    assert singular("yes") == "yes"
    assert singular("glass") == "glass"
    assert singular("bunnies") == "bunny"
    assert singular("dogs") == "dog"


def test_text_for_rules_keeps_word_boundaries() -> None:
    assert normalise_text("Baby Elephant Takes A Bath!") == "baby elephant take a bath"
    assert normalise_text("Hulk-Smash GIF by Marvel") == "hulk smash gif by marvel"
    assert normalise_text("") == ""
