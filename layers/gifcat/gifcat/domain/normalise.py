"""Text normalisation shared by the taxonomy (aliases, rules) and the stages (tags, titles).

A tag as typed ("#HappyBirthday", "Crying😭", "Café", "puppies") becomes a canonical key that aliases
are compared with: accents folded, case and '#' dropped, camel case and separators split into words,
simple plurals reduced, emoji kept as themselves (minus skin-tone and variation selectors).

Words are runs of letters and digits of any script, with their combining marks ("футбол", "खुशी" and
"Fußball" are one word each). Marks are folded where they are optional spellings (accents on Latin,
Greek and Cyrillic letters, Arabic and Hebrew vowel marks, nuktas); elsewhere a mark is part of the
letter (Japanese ゴ is not コ). A run of a script written without spaces between words (Chinese,
Japanese, Thai, ...) is one word, inside which a rule can match and aliases are looked up (`unspaced`).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s_\-./|:,;!?'\"’()\[\]{}*+=~`^<>&%$]+")
# Skin tones, variation selectors and a gender sign joined on change how an emoji looks, not what it
# says (🤦🏽‍♂️ is 🤦). Other joined sequences are emoji of their own (😮‍💨 is not 😮): they stay whole.
_ZWJ = "\u200d"
_EMOJI_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0e\ufe0f]|\u200d[\u2640\u2642]")
_ASCII_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")  # _split's words, for folded ASCII text
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
# Scripts whose words are not separated by spaces, by the first word of their characters' Unicode names.
_UNSPACED = (
    "CJK", "IDEOGRAPHIC", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA", "THAI", "LAO", "KHMER", "MYANMAR",
    "TIBETAN",
)
# Hangul's single letters (ㅋ, ㅠ: "ㅋㅋㅋ" is laughter of any length) run together like those scripts.
_UNSPACED_NAMES = ("HANGUL CHOSEONG", "HANGUL JUNGSEONG", "HANGUL JONGSEONG", "HANGUL LETTER")
# Scripts whose marks are optional spellings ("café", "ёлка", "άλφα", Arabic harakat and hamza, Hebrew
# niqqud), by the same first word; elsewhere only a nukta is (फ़/फ).
_FOLDED = ("LATIN", "GREEK", "CYRILLIC", "ARABIC", "HEBREW")
# Letters that are accented forms without a decomposition, and the Arabic tatweel (a stretch, no letter).
_UNDECOMPOSED = str.maketrans({"ı": "i", "đ": "d", "ł": "l", "ø": "o", "ħ": "h", "ŧ": "t", "ـ": None})
# Words of emoji names that say how the picture is drawn, not what it shows ("BEAR FACE", "KISS MARK").
_DRAWING_WORDS = frozenset({"face", "with", "of", "and", "the", "in", "on", "mark", "sign", "symbol"})
_NO_PLURAL = frozenset({"yes", "this", "his", "is", "was", "us", "bus", "gas", "plus", "omg", "news", "wow"})


@lru_cache(maxsize=8192)
def _script(ch: str) -> str:
    """The first word of a character's Unicode name ("LATIN", "CYRILLIC", "CJK"): its script, near enough."""
    return unicodedata.name(ch, "").split(" ", 1)[0]


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch).startswith("M")


@lru_cache(maxsize=8192)
def _unspaced_char(ch: str) -> bool:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] in _UNSPACED or name.startswith(_UNSPACED_NAMES)


def _optional_mark(mark: str, base: str) -> bool:
    """A mark that is a spelling variant on its letter (folded), not part of it (kept)."""
    return not base.isalnum() or _script(base) in _FOLDED or "NUKTA" in unicodedata.name(mark, "")


def fold(text: str) -> str:
    """Case folded, optional marks folded (accents of Latin, Greek and Cyrillic letters, Arabic and
    Hebrew vowel marks, nuktas), emoji modifiers dropped, whitespace collapsed."""
    if text.isascii():  # most metadata: nothing to decompose or fold
        return " ".join(text.lower().split())
    kept: list[str] = []
    base = ""
    for ch in unicodedata.normalize("NFKD", text):
        if not _is_mark(ch):
            base = ch
        elif _optional_mark(ch, base):  # a mark on no letter goes too
            continue
        kept.append(ch)
    text = unicodedata.normalize("NFC", "".join(kept))
    text = _EMOJI_MODIFIERS.sub("", text)
    return " ".join(text.casefold().translate(_UNDECOMPOSED).split())


def fold_pattern(pattern: str) -> str:
    """A rule's regular expression folded as the text it searches is: its non-ASCII literals (ASCII is
    left as written, since case-folding "\\B" would make it "\\b")."""
    return _NON_ASCII.sub(lambda m: fold(m.group()), pattern)


def is_hashtag(tag: str) -> bool:
    """'#' or full-width '＃' first."""
    return unicodedata.normalize("NFKC", tag).lstrip().startswith("#")


def unspaced(word: str) -> bool:
    """A word of a script written without spaces: its own words can sit anywhere inside it."""
    return bool(word) and word[0].isalnum() and _unspaced_char(word[0])


def _split(text: str) -> list[str]:
    """Words of folded text: runs of letters and digits with their marks. A run of a script written
    without spaces is kept whole (a rule can match inside it; aliases are looked up inside it); any
    other symbol (an emoji) is a word of its own."""
    if text.isascii():
        return _ASCII_WORD.findall(text)
    out: list[str] = []
    run: list[str] = []
    kind = ""  # "spaced" or "unspaced": the run breaks where it changes
    alone = False  # the last character was a word of its own, which a following mark belongs to
    joined = False  # ... and ended with a zero-width joiner: the next symbol belongs to it too
    for ch in text:
        if joined:
            if not ch.isspace() and not ch.isalnum():
                out[-1] += ch
                joined = ch == _ZWJ
                continue
            out[-1] = out[-1].rstrip(_ZWJ)  # a joiner that joins nothing
            joined = False
        if ch == _ZWJ:  # joins two emoji; between letters it is nothing
            if alone:
                out[-1] += ch
                joined = True
            continue
        if _is_mark(ch) and (run or alone):
            if run:
                run.append(ch)
            else:
                out[-1] += ch
            continue
        if ch.isalnum():
            now = "unspaced" if _unspaced_char(ch) else "spaced"
            if run and now != kind:
                out.append("".join(run))
                run = []
            run.append(ch)
            kind, alone = now, False
            continue
        if run:
            out.append("".join(run))
            run = []
        alone = not ch.isspace()
        if alone:
            out.append(ch)
    if run:
        out.append("".join(run))
    elif joined:
        out[-1] = out[-1].rstrip(_ZWJ)
    return out


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
    return [singular(w) for w in _split(text)]


@lru_cache(maxsize=65536)
def normalise_tag(tag: str) -> str:
    """The key a tag is compared by: its words, singular, joined without spaces.

    Joining without spaces makes "#happybirthday", "Happy Birthday" and "happy_birthdays" one key.
    """
    return "".join(words(unicodedata.normalize("NFKC", tag).lstrip("#@ ")))


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
    named = (unicodedata.name(ch, "") for ch in text if not ch.isspace() and ch not in ("#", _ZWJ))
    return frozenset(singular(w) for name in named for w in name.lower().split()) - _DRAWING_WORDS
