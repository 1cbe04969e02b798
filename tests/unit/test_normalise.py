from __future__ import annotations

import pytest

from gifcat.domain.normalise import normalise_tag, normalise_text, pictured, singular


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


def test_an_emoji_tag_pictures_the_words_of_its_unicode_names() -> None:
    assert pictured("🐻") == {"bear"}  # BEAR FACE: how it is drawn ("face") is not what it shows
    assert pictured("#🦈") == {"shark"}
    assert pictured("💃🏽") == {"dancer"}  # skin tone dropped
    assert pictured("bears") == frozenset()  # a word is no picture
    assert pictured("🐻 bears") == frozenset()
