"""The LLM escalation stage: asks a chat model for a category held to the taxonomy's enum.

Used last, on items the cheaper stages could not decide. Failures (endpoint down after retries, an
unusable answer after one repair) come back as StageOutput.error, so the cascade records the item as
failed with that reason instead of losing it.
"""

from __future__ import annotations

from typing import Any

from gifcat.adapters.llm.cache import CallCache
from gifcat.adapters.llm.client import LlmCallError, LlmClient, LlmReply, cost_usd, price_key
from gifcat.adapters.llm.credentials import CredentialsError, resolve_api_key
from gifcat.config import ConfigError, Settings
from gifcat.domain.llm.answer import AnswerError, LlmAnswer, answer_grammar, answer_schema, parse_answer
from gifcat.domain.llm.options import LlmOptions, llm_options
from gifcat.domain.llm.prompt import PromptBuilder, PromptError, load_prompt
from gifcat.domain.model import Candidate, Classification, GifItem, StageName, StageOutput
from gifcat.domain.taxonomy import Taxonomy

LOCAL_API_KEY = "local-no-key"  # OpenAI-compatible local servers ignore it; the SDK insists on one
LABEL_STEP = 0.01  # other labels score just below the primary, in the model's order
CHOSEN = 1.0  # the primary's score when the answer format asks for no confidence: chosen, not "how sure"
NEIGHBOURS_READ = 8  # nearest labelled examples read from the trace (the item's own id may be one)


class LlmStage:
    name = StageName.LLM

    def __init__(
        self,
        client: LlmClient,
        prompt: PromptBuilder,
        *,
        prices: dict[str, Any] | None = None,
        rationale_max_chars: int = 200,
        choose_from_top: int = 0,
    ) -> None:
        self.client = client
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

        Held to the top candidates, the LLM arbitrates among what the cheap stages found: on the dev
        set the embedding stage's top 4 hold a gold label for 88% of what reaches the LLM, and a weak
        model can no longer wander off to a category nothing supports. (Adding the nearest labelled
        examples' categories to them added no gold label on dev: they are nearly always among the 4.)
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

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        taxonomy: Taxonomy,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
    ) -> LlmStage:
        """Build from `stages.llm`. Arguments override the settings (the CLI passes the local server's)."""
        opts: LlmOptions = llm_options(settings)
        base_url = base_url or opts.base_url
        model = model or opts.model
        if api_key is None:
            try:
                api_key = resolve_api_key(
                    env_var=opts.api_key_env, secret_id=opts.api_key_secret, ttl_s=opts.api_key_cache_s
                )
            except CredentialsError as exc:
                raise ConfigError(f"settings: stages.llm: {exc}") from exc
        if not api_key:
            if base_url is None:
                raise ConfigError(
                    f"settings: stages.llm: no API key (set {opts.api_key_env or 'api_key_env'} or "
                    "api_key_secret) and no base_url; run the local model with "
                    "gifcat_tooling.llama_server.local_llm_endpoint(settings)"
                )
            api_key = LOCAL_API_KEY
        client = LlmClient(
            model=model,
            api_key=api_key,
            base_url=base_url,
            timeout_s=opts.timeout_s,
            max_attempts=opts.max_attempts,
            backoff_s=opts.backoff_s,
            max_backoff_s=opts.max_backoff_s,
            max_retry_after_s=opts.max_retry_after_s,
            temperature=opts.temperature,
            max_tokens=opts.max_tokens,
            mode=opts.mode,
            cache=CallCache(opts.cache_path) if opts.cache_path else None,
        )
        try:
            prompt = PromptBuilder(
                template=load_prompt(opts.prompt),
                taxonomy=taxonomy,
                max_labels=settings.labels.max,
                examples_per_category=opts.examples_per_category,
                max_field_chars=opts.max_field_chars,
                max_tags=opts.max_tags,
                system_in_user=opts.instructions_in_user(model),
                answer_fields=opts.fields_for(model),
                few_shot=opts.few_shot_for(model),
                example_chars=opts.example_chars,
            )
        except PromptError as exc:  # a prompt that cannot give the configured answer fails at load
            raise ConfigError(f"settings: stages.llm: {exc}") from exc
        return cls(
            client,
            prompt,
            prices=dict(settings.prices.llm),
            rationale_max_chars=opts.rationale_max_chars,
            choose_from_top=opts.choose_from_top,
        )

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        out = StageOutput(stage=self.name, model=self.client.model, prompt_version=self.prompt.version)
        if item.metadata.is_empty:
            # Nothing to read: asking would cost a call and return a guess.
            out.error = "llm: no title, tags or description to classify"
            return out
        choices = self.choices(so_far)
        neighbours = so_far.neighbours(NEIGHBOURS_READ)
        messages = self.prompt.messages(item, so_far.top_candidates(), neighbours, choices)
        schema, bounded_schema, grammar = self.formats(choices)
        replies: list[LlmReply] = []
        answer: LlmAnswer | None = None
        error: str | None = None
        for turn in range(2):  # the answer, then at most one repair
            try:
                reply = self.client.complete(messages, schema, grammar=grammar, bounded_schema=bounded_schema)
            except LlmCallError as exc:
                out.notes.extend(exc.notes)
                self._account(out, replies, extra_attempts=exc.attempts)
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
        self._account(out, replies)
        if answer is None:
            out.error = f"llm: answer invalid after one repair: {error}"
            return out
        out.rationale = answer.rationale
        if answer.rationale is not None:
            evidence = [f"llm: {answer.rationale}"]
        else:  # a short answer format: say what it chose from and what it was shown instead
            shown = len(self.prompt.examples(item, neighbours))
            evidence = [
                f"llm: chose {answer.primary} from {', '.join(choices)}"
                + (f" ({shown} labelled example{'s' if shown != 1 else ''} shown)" if shown else "")
            ]
        top = CHOSEN if answer.confidence is None else answer.confidence
        out.candidates = [
            Candidate(category=label, score=max(0.0, round(top - LABEL_STEP * i, 4)), evidence=evidence)
            for i, label in enumerate(answer.labels)
        ]
        return out

    def _account(self, out: StageOutput, replies: list[LlmReply], extra_attempts: int = 0) -> None:
        """Tokens, requests and cost of every call made for this item (the failed repair included)."""
        prompt_tokens = sum(r.prompt_tokens for r in replies)
        completion_tokens = sum(r.completion_tokens for r in replies)
        out.usage = {
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
