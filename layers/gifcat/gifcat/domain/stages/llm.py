"""The LLM escalation stage: asks a chat model for a category held to the taxonomy's enum.

Used last, on items the cheaper stages could not decide. Failures (endpoint down after retries, an
unusable answer after one repair) come back as StageOutput.error, so the cascade records the item as
failed with that reason instead of losing it.
"""

from __future__ import annotations

from typing import Any

from gifcat.config import TokenPrice
from gifcat.domain.costs import cost_usd, price_key
from gifcat.domain.llm.answer import AnswerError, LlmAnswer, answer_grammar, answer_schema, parse_answer
from gifcat.domain.llm.prompt import PromptBuilder
from gifcat.domain.model import Candidate, Classification, GifItem, StageName, StageOutput
from gifcat.domain.ports import (
    ChatClient,
    FrameImager,
    FrameImages,
    GifDecodeError,
    LlmCallError,
    LlmReply,
    Message,
)
from gifcat.domain.stages import NO_TEXT_NO_IMAGE_MODEL, Stage

LABEL_STEP = 0.01  # other labels score just below the primary, in the model's order
CHOSEN = 1.0  # the primary's score when the answer format asks for no confidence: chosen, not "how sure"
NEIGHBOURS_READ = 8  # nearest labelled examples read from the trace (the item's own id may be one)


def prompt_chars(messages: list[Message]) -> int:
    """The characters of the prompt's text (image parts are priced by the tokens the API reports)."""
    total = 0
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            total += len(content)
        else:
            total += sum(len(part.get("text", "")) for part in content if part.get("type") == "text")
    return total


class LlmStage(Stage):
    name = StageName.LLM

    def __init__(
        self,
        client: ChatClient,
        prompt: PromptBuilder,
        *,
        prices: dict[str, TokenPrice] | None = None,
        rationale_max_chars: int = 200,
        choose_from_top: int = 0,
        imager: FrameImager | None = None,
        image_detail: str = "low",
    ) -> None:
        """`imager`: frames of a GIF with no text, for a model that reads images; None: such GIFs are
        skipped ("no text and no image model")."""
        self.client = client
        self.imager = imager
        self.image_detail = image_detail
        self.prompt = prompt
        self.prices = prices or {}
        self.rationale_max_chars = rationale_max_chars
        self.categories = prompt.taxonomy.names
        self.choose_from_top = choose_from_top
        self.fields = prompt.answer_fields
        self._formats: dict[tuple[str, ...], tuple[dict[str, Any], dict[str, Any], str]] = {}

    def formats(self, choices: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any], str]:
        """The answer schema, its length-bounded variant and the grammar for these choices (cached)."""
        if choices not in self._formats:
            max_labels, limit, fields = self.prompt.max_labels, self.rationale_max_chars, self.fields
            self._formats[choices] = (
                answer_schema(list(choices), max_labels, fields=fields),
                answer_schema(list(choices), max_labels, rationale_max_chars=limit, fields=fields),
                answer_grammar(list(choices), max_labels, limit, fields=fields),
            )
        return self._formats[choices]

    def choices(self, so_far: Classification) -> tuple[str, ...]:
        """The categories the answer may name: all of them, or the earlier stages' top candidates.

        Held to the top candidates, a weak model can no longer wander off to a category nothing
        supports (free to name any, Gemma 270M names the first one); but the answer can then be no
        better than the cheap stages' ranking, whose top 4 miss every gold label on 4% to 16% of what
        they leave (docs/results/README.md "What the LLM may answer"): so only the local model is held by
        default.
        """
        if self.choose_from_top:
            top = [
                c.category
                for c in so_far.top_candidates(self.choose_from_top)
                if c.category in self.categories
            ]
            if len(top) >= 2:
                return tuple(top)
        return tuple(self.categories)

    def wants_gif(self, item: GifItem) -> bool:
        """Whether scoring `item` reads its GIF: only a text-less item (once planted instructions are
        cut, as the cascade cuts them) with an endpoint that reads images."""
        return self.imager is not None and self.prompt.screen.screen(item.metadata).metadata.is_empty

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        out = StageOutput(stage=self.name, model=self.client.model, prompt_version=self.prompt.version)
        choices = self.choices(so_far)
        neighbours = so_far.neighbours(NEIGHBOURS_READ)
        frames: FrameImages | None = None
        if item.metadata.is_empty:
            if self.imager is None:
                # Nothing this endpoint can read: asking would cost a call and return a guess.
                out.skipped = NO_TEXT_NO_IMAGE_MODEL
                return out
            if not item.gif:
                out.error = "llm: no title, tags or description, and no GIF bytes to read frames from"
                return out
            try:
                frames = self.imager.images(item.gif)
            except GifDecodeError as exc:
                out.error = f"llm: no text, and the frames cannot be read: {exc.reason}: {exc}"
                return out
            out.notes.extend(frames.notes)
            urls = [image.data_url for image in frames.images]
            messages = self.prompt.frame_messages(so_far.top_candidates(), urls, choices, self.image_detail)
        else:
            messages = self.prompt.messages(item, so_far.top_candidates(), neighbours, choices)
        schema, bounded_schema, grammar = self.formats(choices)
        replies: list[LlmReply] = []
        answer: LlmAnswer | None = None
        error: str | None = None
        sent: list[int] = []  # the characters of each call's prompt (gifcat eval prices prompts by them)
        for turn in range(2):  # the answer, then at most one repair
            sent.append(prompt_chars(messages))
            try:
                reply = self.client.complete(messages, schema, grammar=grammar, bounded_schema=bounded_schema)
            except LlmCallError as exc:
                out.notes.extend(exc.notes)
                self._account(out, replies, sent[:-1], extra_attempts=exc.attempts)
                out.error = f"llm: call failed: {exc.reason}"
                return out
            replies.append(reply)
            out.notes.extend(reply.notes)
            try:
                answer, notes = parse_answer(
                    reply.content,
                    list(choices),
                    max_labels=self.prompt.max_labels,
                    rationale_max_chars=self.rationale_max_chars,
                    fields=self.fields,
                )
                out.notes.extend(notes)
                break
            except AnswerError as exc:
                error = str(exc)
                if reply.finish_reason == "length":
                    error += " (the reply was cut at max_tokens)"
                out.notes.append(f"llm: unusable answer{' after repair' if turn else ''}: {error}")
                messages = self.prompt.repair(messages, reply.content, error)
        self._account(out, replies, sent)
        if frames is not None:
            out.usage |= {"frames": len(frames.images), "frame_bytes": frames.total_bytes}
        if answer is None:
            out.error = f"llm: answer invalid after one repair: {error}"
            return out
        out.rationale = answer.rationale
        if answer.rationale is not None:
            evidence = [f"llm: {answer.rationale}"]
        else:  # a short answer format: say what it chose from and what it was shown instead
            shown = 0 if frames is not None else len(self.prompt.examples(item, neighbours))
            evidence = [
                f"llm: chose {answer.primary} from {', '.join(choices)}"
                + (f" ({shown} labelled example{'s' if shown != 1 else ''} shown)" if shown else "")
            ]
        if frames is not None:
            n = len(frames.images)
            evidence.append(f"llm: read from {n} frame{'s' if n != 1 else ''} of the GIF (no text)")
        top = CHOSEN if answer.confidence is None else answer.confidence
        out.candidates = [
            Candidate(category=label, score=max(0.0, round(top - LABEL_STEP * i, 4)), evidence=evidence)
            for i, label in enumerate(answer.labels)
        ]
        return out

    def _account(
        self, out: StageOutput, replies: list[LlmReply], sent: list[int], extra_attempts: int = 0
    ) -> None:
        """Tokens, requests and cost of every call made for this item (the failed repair included);
        `sent`: the prompt characters of each call that answered."""
        prompt_tokens = sum(r.prompt_tokens for r in replies)
        completion_tokens = sum(r.completion_tokens for r in replies)
        out.usage = {
            "prompt_chars": sum(sent),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "requests": sum(r.attempts for r in replies) + extra_attempts,
            "calls": len(replies),
            "cached_calls": sum(r.cached for r in replies),
        }
        if not replies:
            return
        out.model = replies[-1].model  # the model the server says answered
        total = 0.0
        for reply in replies:
            cost = cost_usd(self.prices, reply.model, reply.prompt_tokens, reply.completion_tokens)
            if cost is None:
                note = f"llm: no price for model {reply.model!r} in prices.llm; cost counted as 0"
                if note not in out.notes:
                    out.notes.append(note)
            else:
                total += cost
        out.cost_usd = round(total, 10)
        key = price_key(self.prices, out.model)
        if key is not None and key != out.model:
            out.notes.append(f"llm: priced {out.model!r} as {key!r}")
