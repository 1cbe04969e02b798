"""The LLM API key: from the environment locally, from Secrets Manager or SSM Parameter Store in AWS.

The reads go through Powertools Parameters (a SecretsProvider and an SSMProvider per process), whose
cache keeps each fetched value for `ttl_s` seconds: a warm Lambda does not call AWS on every item, and
a rotated key is picked up within the TTL. `ttl_s` 0 reads again on every call. The key itself is never
logged, put in an exception message or returned in a repr; errors name the secret id only.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any


class CredentialsError(RuntimeError):
    """The configured secret could not be read. The message names the secret, never its value."""


# Built at the first read: Powertools and boto3 load only when a secret is configured, so the local
# path (a key in the environment, or none) needs neither.
_providers: dict[str, Any] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every fetched value (and the providers with their boto3 clients)."""
    with _lock:
        for provider in _providers.values():
            provider.clear_cache()
        _providers.clear()


def _provider(kind: str) -> Any:
    with _lock:
        if kind not in _providers:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

            _providers[kind] = SSMProvider() if kind == "ssm" else SecretsProvider()
        return _providers[kind]


def is_ssm_name(secret_id: str) -> bool:
    """SSM parameters: "ssm:name", "/path/name" or an SSM ARN; anything else is a Secrets Manager id."""
    return secret_id.startswith(("ssm:", "/", "arn:aws:ssm:"))


def _from_json(value: str, env_var: str) -> str:
    # A Secrets Manager secret is often a JSON object of several keys: take ours.
    try:
        data = json.loads(value)
    except ValueError:
        return value
    if isinstance(data, dict):
        for key in (env_var, "api_key", "OPENAI_API_KEY", "openai_api_key"):
            if isinstance(data.get(key), str):
                return data[key]
        raise CredentialsError(f"secret JSON has none of the keys {env_var!r}, 'api_key'")
    return value


def _aws_error_code(exc: BaseException) -> str:
    """The AWS error code behind Powertools' GetParameterError (it wraps the botocore error as its
    context): the code says what went wrong (ResourceNotFoundException, AccessDeniedException...)
    without the service's message."""
    cause = exc.__cause__ or exc.__context__
    code = getattr(cause, "response", {}).get("Error", {}).get("Code")
    return str(code) if code else type(cause or exc).__name__


def _fetch(secret_id: str, env_var: str, ttl_s: float) -> str:
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    max_age = max(0, int(ttl_s))  # Powertools counts whole seconds
    try:
        if is_ssm_name(secret_id):
            name = secret_id.removeprefix("ssm:")
            value = _provider("ssm").get(name, max_age=max_age, decrypt=True, force_fetch=max_age == 0)
        else:
            value = _provider("secrets").get(secret_id, max_age=max_age, force_fetch=max_age == 0)
    except GetParameterError as exc:
        code = _aws_error_code(exc)
        raise CredentialsError(f"could not read the LLM API key from {secret_id!r}: {code}") from None
    if not isinstance(value, str):  # Powertools returns SecretBinary when there is no SecretString
        raise CredentialsError(f"secret {secret_id!r} has no SecretString")
    key = _from_json(value, env_var).strip()
    if not key:
        raise CredentialsError(f"secret {secret_id!r} is empty")
    return key


def resolve_api_key(
    *,
    env_var: str | None = "OPENAI_API_KEY",
    secret_id: str | None = None,
    ttl_s: float = 900.0,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The API key, or None when none is configured (the caller then uses the local server).

    Order: the environment variable `env_var`, then `secret_id` (Secrets Manager or SSM, cached for
    `ttl_s` seconds).
    """
    env = os.environ if environ is None else environ
    if env_var and env.get(env_var, "").strip():
        return env[env_var].strip()
    if not secret_id:
        return None
    return _fetch(secret_id, env_var or "api_key", ttl_s)


def api_key_configured(
    *, env_var: str | None, secret_id: str | None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether a key would be found, without calling AWS."""
    env = os.environ if environ is None else environ
    return bool((env_var and env.get(env_var, "").strip()) or secret_id)
