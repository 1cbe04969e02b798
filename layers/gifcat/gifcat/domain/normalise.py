"""Text normalisation shared by the taxonomy (aliases, rules) and the stages (tags, titles).

A tag as typed ("#HappyBirthday", "Crying😭", "Café", "puppies") becomes a canonical key that aliases
are compared with: accents folded, case and '#' dropped, camel case and separators split into words,
simple plurals reduced, emoji kept as themselves (minus skin-tone and variation selectors).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s_\-./|:,;!?'\"’()\[\]{}*+=~`^<>&%$]+")
# Skin tones, variation selectors and the zero-width joiner change how an emoji looks, not what it says.
_EMOJI_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0e\ufe0f\u200d]")
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
# Words of emoji names that say how the picture is drawn, not what it shows ("BEAR FACE", "KISS MARK").
_DRAWING_WORDS = frozenset({"face", "with", "of", "and", "the", "in", "on", "mark", "sign", "symbol"})
_NO_PLURAL = frozenset({"yes", "this", "his", "is", "was", "us", "bus", "gas", "plus", "omg", "news", "wow"})


def fold(text: str) -> str:
    """Lower case, accents folded, emoji modifiers dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _EMOJI_MODIFIERS.sub("", text)
    return " ".join(text.lower().split())


def singular(word: str) -> str:
    """Reduce regular English plurals (puppies -> puppy, kisses -> kiss, cats -> cat); no more."""
    if len(word) <= 3 or not word.isalpha() or word in _NO_PLURAL:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """Split a tag or title into normalised words: camel case, separators and emoji all split."""
    text = _CAMEL.sub(" ", text)
    text = fold(text)
    text = _SEPARATORS.sub(" ", text)
    return [singular(w) for w in _WORD.findall(text)]


@lru_cache(maxsize=65536)
def normalise_tag(tag: str) -> str:
    """The key a tag is compared by: its words, singular, joined without spaces.

    Joining without spaces makes "#happybirthday", "Happy Birthday" and "happy_birthdays" one key.
    """
    return "".join(words(tag.lstrip("#@ ")))


def normalise_text(text: str) -> str:
    """Text for regular-expression rules: folded, separators as single spaces, words kept whole."""
    return " ".join(words(text)) if text else ""


@lru_cache(maxsize=4096)
def pictured(tag: str) -> frozenset[str]:
    """What an emoji-only tag pictures, as words of its Unicode names ("🐻" -> {"bear"}); empty for a
    tag with any letter or digit. Lets triage see that "🐻" beside "bears" repeats one witness."""
    text = fold(tag)
    if any(ch.isalnum() for ch in text):
        return frozenset()
    named = (unicodedata.name(ch, "") for ch in text if not ch.isspace() and ch != "#")
    return frozenset(singular(w) for name in named for w in name.lower().split()) - _DRAWING_WORDS
