from __future__ import annotations

import pytest

from gifcat.domain.normalise import (
    fold_pattern,
    is_hashtag,
    normalise_tag,
    normalise_text,
    pictured,
    singular,
    unspaced,
    words,
)


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Футбол и мяч", ["футбол", "и", "мяч"]),  # a word of any script is one word, not its letters
        ("खुशी के पल", ["खुशी", "के", "पल"]),  # with its vowel signs
        ("Fußball", ["fussball"]),  # case folded, not only lowered
        ("Ελλάδα", ["ελλαδα"]),  # Greek accents are folded, as Latin ones
        ("ゴール!", ["ゴール"]),  # a Japanese mark is part of the letter: ゴ is not コ
        ("最高のサッカー 2024", ["最高のサッカー", "2024"]),  # a script without spaces: one run
        ("สวัสดีครับ", ["สวัสดีครับ"]),
        ("abcサッカー", ["abc", "サッカー"]),
        # Optional marks are spelling variants: Arabic harakat and hamza, Hebrew niqqud, the nukta.
        ("قِطَّة أحبك", ["قطة", "احبك"]),
        ("חָתוּל", ["חתול"]),
        ("फ़ुटबॉल", ["फुटबॉल"]),
        ("MUTLU YILLAR, mutlu yıllar, bóng đá", ["mutlu", "yillar", "mutlu", "yillar", "bong", "da"]),
        ("ㅋㅋㅋㅋ", ["ᄏᄏᄏᄏ"]),  # Hangul's letters run together: laughter of any length is one run
    ],
)
def test_words_of_every_script(text: str, expected: list[str]) -> None:
    assert words(text) == expected


def test_only_runs_of_scripts_without_spaces_are_unspaced() -> None:
    assert unspaced("サッカー") and unspaced("我爱你")
    assert not unspaced("футбол") and not unspaced("soccer") and not unspaced("🎉")


def test_a_full_width_hashtag_is_a_hashtag() -> None:
    assert is_hashtag("＃かわいい") and is_hashtag(" #cute") and not is_hashtag("cute#")
    assert normalise_tag("＃かわいい") == normalise_tag("かわいい")


def test_rule_patterns_are_folded_as_the_text_they_search() -> None:
    # Non-ASCII literals only: case-folding the ASCII "\\B" would turn it into "\\b".
    assert fold_pattern(r"\bfußball|Ёлка|σοφός\B") == r"\bfussball|елка|σοφοσ\B"
    assert normalise_text("ЁЛКА") == fold_pattern("Ёлка")


def test_joined_emoji_are_emoji_of_their_own_but_a_joined_gender_sign_is_not() -> None:
    assert words("😮‍💨 ❤️‍🔥") == ["😮\u200d💨", "❤\u200d🔥"]  # exhaling, heart on fire: not 😮 and ❤
    assert normalise_tag("🤦🏽‍♂️") == normalise_tag("🤦")  # a gender sign, like a skin tone, is a look
    assert words("a\u200db") == ["ab"] and words("😮\u200d x") == ["😮", "x"]  # a joiner that joins nothing
    assert pictured("😮‍💨") == {"open", "mouth", "dash"}
