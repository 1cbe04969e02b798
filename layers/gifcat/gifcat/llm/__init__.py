"""The LLM escalation: prompts, a structured-output client with bounded retries, credentials and the
local llama.cpp server. The stage itself is gifcat.stages.llm.LlmStage.

Importing this package does not import boto3 or llama_cpp: both load only when used.
"""

from gifcat.llm.answer import AnswerError, LlmAnswer, answer_schema, parse_answer
from gifcat.llm.cache import CallCache, call_key
from gifcat.llm.client import LlmCallError, LlmClient, LlmReply, cost_usd
from gifcat.llm.credentials import CredentialsError, resolve_api_key
from gifcat.llm.options import LlmOptions, LocalOptions, llm_options
from gifcat.llm.prompt import PromptBuilder, PromptTemplate, load_prompt

__all__ = [
    "AnswerError",
    "CallCache",
    "CredentialsError",
    "LlmAnswer",
    "LlmCallError",
    "LlmClient",
    "LlmOptions",
    "LlmReply",
    "LocalOptions",
    "PromptBuilder",
    "PromptTemplate",
    "answer_schema",
    "call_key",
    "cost_usd",
    "llm_options",
    "load_prompt",
    "parse_answer",
    "resolve_api_key",
]
