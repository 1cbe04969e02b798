"""The taxonomy's aliases as a lexicon: which categories a tag, or the words of a text, name outright.

The tag and rule stages gather their support with it; the embedding stage reads it where MiniLM cannot
read the text (words of other languages, which the taxonomy lists by language).
"""

from __future__ import annotations

from collections import defaultdict

from gifcat.domain.normalise import normalise_tag, unspaced, words
from gifcat.domain.taxonomy import Taxonomy

MAX_NGRAM = 3  # aliases in free text are looked up as word n-grams up to this length ("happy new year")


class Lexicon:
    """The taxonomy's aliases, looked up as whole tags or as word n-grams of free text."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.generic = taxonomy.normalised_generic_tags
        self.index: dict[str, list[str]] = defaultdict(list)
        for cat in taxonomy.categories:
            for key in cat.normalised_aliases:
                self.index[key].append(cat.name)
        # Aliases in a script written without spaces, by length, looked up inside runs of it; one
        # character alone is too common a piece of other words (爱 in 可爱, 狗 in 热狗) to count there.
        lengths = {len(k) for k in self.index if unspaced(k) and len(k) > 1}
        self.unspaced_lengths = sorted(lengths, reverse=True)

    def tag(self, tag: str) -> list[str]:
        return self.index.get(normalise_tag(tag), [])

    def words_in(self, text: str) -> dict[str, list[str]]:
        """Categories named by alias n-grams of `text`, with the words that named them."""
        ws = words(text)
        found: dict[str, list[str]] = defaultdict(list)
        for n in range(1, MAX_NGRAM + 1):
            for i in range(len(ws) - n + 1):
                gram = ws[i : i + n]
                for cat in self.index.get("".join(gram), ()):
                    found[cat].append(" ".join(gram))
        for w in ws:
            if unspaced(w):
                for piece in self._inside(w):
                    for cat in self.index[piece]:
                        found[cat].append(piece)
        return found

    def _inside(self, run: str) -> list[str]:
        """The aliases found inside a run of a script written without spaces ("最高のサッカー"), longest
        first and not overlapping one another, so that 可爱 (cute) found leaves no 爱 (love) inside it.
        The whole run was looked up as a word already."""
        taken = [False] * len(run)
        found = []
        for n in self.unspaced_lengths:
            if n >= len(run):
                continue
            for i in range(len(run) - n + 1):
                piece = run[i : i + n]
                if piece in self.index and not any(taken[i : i + n]):
                    found.append(piece)
                    taken[i : i + n] = [True] * n
        return found
