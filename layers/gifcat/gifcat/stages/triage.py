"""Triage: the two cheapest stages. Tags that name a category outright, then regular-expression rules.

Both score by evidence: each match carries a weight; a category's strength is the noisy-or of its
weights, and its share is its part of all the evidence. score = strength * share ** share_exponent: one
strong category among weak others keeps its strength, while evidence that points several ways (a trap:
"#gaming #fortnite" on an elephant's bath) pulls every score down and the cascade's thresholds send the
item on. An exponent below 1 keeps genuine multi-label items ("cute", "puppy") decidable.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from gifcat.model import Candidate, Classification, GifItem, StageName, StageOutput
from gifcat.normalise import normalise_tag, normalise_text
from gifcat.taxonomy import Taxonomy


@dataclass
class Evidence:
    """Weighted evidence per category, combined into candidate scores."""

    weights: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, category: str, weight: float, note: str) -> None:
        self.weights[category].append(weight)
        self.notes[category].append(note)

    def candidates(self, share_exponent: float) -> list[Candidate]:
        mass = {c: sum(ws) for c, ws in self.weights.items()}
        total = sum(mass.values())
        out = []
        for cat, ws in self.weights.items():
            miss = 1.0
            for w in ws:
                miss *= 1.0 - w
            strength = 1.0 - miss
            out.append(
                Candidate(
                    category=cat,
                    score=round(strength * (mass[cat] / total) ** share_exponent, 6),
                    evidence=self.notes[cat],
                )
            )
        return out


class TagStage:
    """Tags that name a category outright (aliases, after normalisation). Generic tags count for nothing."""

    name = StageName.TAGS

    def __init__(
        self, taxonomy: Taxonomy, *, tag_weight: float, hashtag_weight: float, share_exponent: float
    ) -> None:
        self._taxonomy = taxonomy
        self.share_exponent = share_exponent
        # Hashtags are often added for reach rather than description, so they carry less than plain tags.
        self._tag_weight = tag_weight
        self._hashtag_weight = hashtag_weight
        self._index: dict[str, list[str]] = defaultdict(list)
        for cat in taxonomy.categories:
            for key in cat.normalised_aliases:
                self._index[key].append(cat.name)

    def weights_for(self, item: GifItem) -> tuple[Evidence, list[str]]:
        evidence = Evidence()
        ignored: list[str] = []
        seen: set[tuple[str, str]] = set()
        for tag in item.metadata.tags:
            key = normalise_tag(tag)
            if not key or key in self._taxonomy.normalised_generic_tags:
                if tag.strip():
                    ignored.append(tag)
                continue
            weight = self._hashtag_weight if tag.lstrip().startswith("#") else self._tag_weight
            for cat in self._index.get(key, ()):
                if (cat, key) in seen:  # "#cute" and "cute" are one piece of evidence, not two
                    continue
                seen.add((cat, key))
                evidence.add(cat, weight, f"tag {tag!r}")
        return evidence, ignored

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        evidence, ignored = self.weights_for(item)
        notes = [f"generic tags ignored: {', '.join(ignored)}"] if ignored else []
        return StageOutput(stage=self.name, candidates=evidence.candidates(self.share_exponent), notes=notes)


class RuleStage:
    """Regular expressions over the normalised title, tags and description, added to the tag evidence."""

    name = StageName.RULES

    def __init__(self, taxonomy: Taxonomy, tags: TagStage, *, share_exponent: float) -> None:
        self._taxonomy = taxonomy
        self._tags = tags
        self.share_exponent = share_exponent

    def _fields(self, item: GifItem) -> dict[str, str]:
        generic = self._taxonomy.normalised_generic_tags
        kept = [t for t in item.metadata.tags if normalise_tag(t) not in generic]
        return {
            "title": normalise_text(item.metadata.title),
            # " | " keeps one tag's words from running into the next one's in a pattern
            "tags": " | ".join(normalise_text(t) for t in kept),
            "description": normalise_text(item.metadata.description),
        }

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        # Rules add to what the tags said; recomputing the tag evidence is cheaper than carrying weights.
        evidence, _ = self._tags.weights_for(item)
        fields = self._fields(item)
        for cat in self._taxonomy.categories:
            for rule in cat.rules:
                for name in rule.fields:
                    match = rule.regex.search(fields[name])
                    if match:
                        evidence.add(cat.name, rule.weight, f"rule {rule.id}: {match.group(0)!r} in {name}")
                        break  # a rule counts once, whichever field it matched first
        return StageOutput(stage=self.name, candidates=evidence.candidates(self.share_exponent))
