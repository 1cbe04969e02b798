"""Triage: the two cheapest stages. Tags that name a category outright, then regular-expression rules.

Both read every field of the metadata and decide only when it agrees or is neutral:

- *support*: what the stage may decide on (the tag stage: tags; the rule stage: tags, words of the title
  and description that are aliases, and rule matches). A category's strength is the noisy-or of its
  support weights. Beside a tag that is a name no alias explains ("sharks" + "san jose": how a homonym
  looks), fewer than `min_support` independent witnesses multiply the score by `uncorroborated_factor`
  (0 by default: one witness does not decide there). Where nothing else is said (emoji only: "😱"), one
  witness may decide. An emoji that pictures another tag's word ("bears" + "🐻", a team and its mascot)
  is that same witness, not a second one.
- *context*: everything the metadata says, whichever stage runs: alias words in the title, the
  description and multi-word tags, rule matches, and tags the taxonomy cannot explain (team, show and
  place names: "soldier field", "tiger king"). Each adds mass; a category's share is its part of all
  of it. score = strength * share ** share_exponent, so "bears" + "🐻" beside two unexplained names is
  no longer a confident "animals".
- *contradiction*: a description names other categories and never this one ("best day ever 🎉" on
  an ice cream falling off its cone): the category's score is multiplied by `contradiction_factor`
  (0 by default: the stage abstains and a later stage reads the whole sentence).
- *scene*: a description that is a sentence (`scene_min_words` words or more) says what happens, and
  what happens can turn every tag around (irony: party hats round a table of empty chairs; reach
  hashtags over a chef's kiss). Words cannot read a sentence, so every score is multiplied by
  `scene_factor` (0 by default: triage defers to the stages that read it). Measured on dev under
  cross-validation: every error the tag stage made at a 5% target had such a description.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field

from gifcat.config import StageOptions
from gifcat.domain.lexicon import Lexicon
from gifcat.domain.model import Candidate, Classification, GifItem, StageName, StageOutput
from gifcat.domain.normalise import is_hashtag, normalise_tag, normalise_text, pictured, words
from gifcat.domain.stages import Stage
from gifcat.domain.taxonomy import Taxonomy

MAX_NOTES = 6  # evidence notes kept per candidate


@dataclass
class Evidence:
    """Weighted support per category plus the mass of everything the metadata says."""

    weights: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    notes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    mass: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    unexplained: float = 0.0
    names: int = 0  # tags no alias explains that are words, not emoji: names the taxonomy cannot read
    vetoed: set[str] = field(default_factory=set)
    gave_up: list[str] = field(default_factory=list)  # rules whose search timed out, with the field
    scene: bool = False  # the description is a sentence: a stage that reads sentences should decide

    def support(self, category: str, weight: float, note: str) -> None:
        self.weights[category].append(weight)
        self.notes[category].append(note)
        self.mass[category] += weight

    def context(self, category: str, weight: float) -> None:
        self.mass[category] += weight

    def candidates(self, options: TriageWeights) -> list[Candidate]:
        total = sum(self.mass.values()) + self.unexplained
        out = []
        for cat, ws in self.weights.items():
            miss = 1.0
            for w in ws:
                miss *= 1.0 - w
            score = (1.0 - miss) * (self.mass[cat] / total) ** options.share_exponent
            notes = list(self.notes[cat][:MAX_NOTES])
            if len(self.notes[cat]) > MAX_NOTES:  # evidence travels in the state machine's state: bounded
                notes.append(f"and {len(self.notes[cat]) - MAX_NOTES} more")
            need = options.min_support
            # One witness is not corroboration beside a name ("sharks" + "san jose") or, with
            # corroborate_only_beside_names off, anywhere ("coffee" alone).
            if len(ws) < need and (self.names or not options.corroborate_only_beside_names):
                score *= options.uncorroborated_factor
                notes.append(f"uncorroborated: {len(ws)} of the {need} pieces of evidence needed")
            if cat in self.vetoed:
                score *= options.contradiction_factor
                notes.append("contradicted: the description names other categories, not this one")
            if self.scene and options.scene_factor < 1.0:
                score *= options.scene_factor
                notes.append("deferred: the description is a sentence; a stage that reads it decides")
            out.append(Candidate(category=cat, score=round(score, 6), evidence=notes))
        return out


Weight = Annotated[float, Field(ge=0.0, le=1.0)]  # a score share: a negative one or 50 broke the scores


class TriageWeights(StageOptions):
    """Evidence weights (settings under stages.tags); the same for both triage stages."""

    tag_weight: Weight = 0.8  # a plain tag that is an alias
    hashtag_weight: Weight = 0.1  # '#' tags are often added for reach, not description
    tag_word_weight: Weight = 0.5  # an alias inside a longer tag ("pizza time")
    title_word_weight: Weight = 0.5  # an alias word in the title
    description_word_weight: Weight = 0.4  # an alias word in the description
    unexplained_tag_weight: Weight = 0.6  # a plain tag no alias explains (a name the taxonomy cannot read)
    unexplained_hashtag_weight: Weight = 0.05
    unexplained_description_weight: Weight = 0.8  # a description of a scene that names no category
    scene_min_words: int = 4  # a description this long is a sentence about the scene
    scene_factor: Weight = 0.0  # scores are multiplied by this when there is one (1: tags decide anyway)
    share_exponent: float = 1.0
    min_support: int = 2  # independent pieces of support a category needs before its full score counts
    uncorroborated_factor: Weight = 0.0  # a category with fewer has its score multiplied by this...
    corroborate_only_beside_names: bool = True  # ...when a tag is a name no alias explains ("wrigley")
    contradiction_factor: Weight = 0.0
    # A rule's search on one field gives up after this long and counts as no match (noted in the stage's
    # notes): a pattern that backtracks without end must not hold an upload until the Lambda times out.
    rule_timeout_ms: float = Field(50.0, gt=0.0)


class TriageEvidence:
    """Gathers support and context from every field, for the tag stage and the rule stage alike: both
    see everything, so the tag stage abstains when the title, description or rules disagree."""

    def __init__(self, taxonomy: Taxonomy, weights: TriageWeights) -> None:
        self.taxonomy = taxonomy
        self.lexicon = Lexicon(taxonomy)
        self.weights = weights

    def gather(self, item: GifItem, *, free_text_supports: bool) -> tuple[Evidence, list[str]]:
        """`free_text_supports`: title/description words and rules count as support (the rule stage),
        or only as context (the tag stage)."""
        w = self.weights
        lex = self.lexicon
        evidence = Evidence()
        ignored: list[str] = []
        seen: set[tuple[str, str]] = set()

        def add(cat: str, weight: float, note: str) -> None:
            if free_text_supports:
                evidence.support(cat, weight, note)
            else:
                evidence.context(cat, weight)

        named: dict[str, set[str]] = defaultdict(set)  # per category, the words of the tags naming it
        # Words before emoji, so that an emoji picturing a tag's word is seen as that same witness.
        for tag in sorted(item.metadata.tags, key=lambda t: bool(pictured(t))):
            key = normalise_tag(tag)
            if not key or key in lex.generic:
                if tag.strip():
                    ignored.append(tag)
                continue
            hashtag = is_hashtag(tag)
            shows = pictured(tag)  # what an emoji tag pictures; empty for a word
            inside = {c: [tag] for c in lex.tag(tag)}
            whole = bool(inside)
            if not whole:
                inside = lex.words_in(tag)
            if not inside:
                evidence.unexplained += w.unexplained_hashtag_weight if hashtag else w.unexplained_tag_weight
                evidence.names += not shows
                continue
            for cat, grams in inside.items():
                if (cat, key) in seen:  # "#cute" and "cute" are one piece of evidence, not two
                    continue
                seen.add((cat, key))
                weight = w.hashtag_weight if hashtag else (w.tag_weight if whole else w.tag_word_weight)
                echoed = shows & named[cat]
                named[cat].update(words(tag))
                if echoed:  # "bears" + "🐻": a team's name and its mascot are one witness, not two
                    evidence.context(cat, weight)
                    same = f"tag {_quote(tag)} pictures {_quote(min(echoed))}: same witness"
                    evidence.notes[cat].append(same)
                elif whole:
                    evidence.support(cat, weight, f"tag {_quote(tag)}")
                else:
                    add(cat, weight, f"word {_quote(grams[0])} in tag {_quote(tag)}")

        described: set[str] = set()
        for name, weight in (("title", w.title_word_weight), ("description", w.description_word_weight)):
            for cat in lex.words_in(getattr(item.metadata, name)):
                # Context only: a title word that repeats a tag is no second witness, and a category
                # word in a sentence is often a figure of speech; rules are the title's evidence.
                evidence.context(cat, weight)
                if name == "description":
                    described.add(cat)
        fields = self._fields(item)
        for category in self.taxonomy.categories:
            for rule in category.rules:
                for name in rule.fields:
                    try:
                        match = rule.regex.search(fields[name], timeout=w.rule_timeout_ms / 1000.0)
                    except TimeoutError:
                        evidence.gave_up.append(f"{rule.id} on {name}")
                        continue
                    if match:
                        add(category.name, rule.weight, f"rule {rule.id}: {_quote(match.group(0))} in {name}")
                        if name == "description":
                            described.add(category.name)
                        break  # a rule counts once, whichever field it matched first
        evidence.scene = len(words(item.metadata.description)) >= w.scene_min_words
        if described:
            evidence.vetoed = {c for c in evidence.weights if c not in described}
        elif evidence.scene:
            # A scene the taxonomy's words cannot explain is evidence of something else.
            evidence.unexplained += w.unexplained_description_weight
        return evidence, ignored

    def _fields(self, item: GifItem) -> dict[str, str]:
        generic = self.taxonomy.normalised_generic_tags
        # Hashtags are weighed as tags (lightly); a rule over them would undo that.
        kept = [
            t for t in item.metadata.tags
            if normalise_tag(t) not in generic and not is_hashtag(t)
        ]
        return {
            "title": normalise_text(item.metadata.title),
            # " | " keeps one tag's words from running into the next one's in a pattern
            "tags": " | ".join(normalise_text(t) for t in kept),
            "description": normalise_text(item.metadata.description),
        }

    def candidates(self, evidence: Evidence) -> list[Candidate]:
        return evidence.candidates(self.weights)

    def gave_up_notes(self, evidence: Evidence) -> list[str]:
        if not evidence.gave_up:
            return []
        ms = f"{self.weights.rule_timeout_ms:g} ms"
        return [f"rules given up after {ms} (counted as no match): {', '.join(evidence.gave_up)}"]


def _quote(text: str, limit: int = 40) -> str:
    """A quoted piece of the uploader's text for the evidence, cut short: evidence travels in the state."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


class TagStage(Stage):
    """Tags that name a category outright (aliases, after normalisation), weighed against the rest."""

    name = StageName.TAGS

    def __init__(self, evidence: TriageEvidence) -> None:
        self.evidence = evidence

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        evidence, ignored = self.evidence.gather(item, free_text_supports=False)
        notes = [f"generic tags ignored: {', '.join(ignored)}"] if ignored else []
        return StageOutput(stage=self.name, candidates=self.evidence.candidates(evidence),
                           notes=notes + self.evidence.gave_up_notes(evidence))


class RuleStage(Stage):
    """Rules and alias words of the title and description, added to the tag evidence."""

    name = StageName.RULES

    def __init__(self, evidence: TriageEvidence) -> None:
        self.evidence = evidence

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        evidence, _ = self.evidence.gather(item, free_text_supports=True)
        return StageOutput(stage=self.name, candidates=self.evidence.candidates(evidence),
                           notes=self.evidence.gave_up_notes(evidence))
