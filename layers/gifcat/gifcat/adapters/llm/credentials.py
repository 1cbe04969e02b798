"""The LLM API key: from the environment locally, from Secrets Manager or SSM Parameter Store in AWS.

Fetched values are cached per process for `ttl_s` (a warm Lambda does not call AWS on every item,
and a rotated key is picked up within the TTL). The key itself is never logged, put in an exception
message or returned in a repr; errors name the secret id only.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any


class CredentialsError(RuntimeError):
    """The configured secret could not be read. The message names the secret, never its value."""


_cache: dict[str, tuple[float, str]] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    with _lock:
        _cache.clear()


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


def _fetch(secret_id: str, env_var: str, client: Any | None) -> str:
    import boto3  # only in AWS or when a secret is configured: keeps the local path free of boto3 calls
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if is_ssm_name(secret_id):
            ssm = client or boto3.client("ssm")
            name = secret_id.removeprefix("ssm:")
            value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        else:
            sm = client or boto3.client("secretsmanager")
            value = sm.get_secret_value(SecretId=secret_id).get("SecretString")
            if value is None:
                raise CredentialsError(f"secret {secret_id!r} has no SecretString")
    except (BotoCoreError, ClientError) as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        raise CredentialsError(f"could not read the LLM API key from {secret_id!r}: {code}") from None
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
    client: Any | None = None,
) -> str | None:
    """The API key, or None when none is configured (the caller then uses the local server).

    Order: the environment variable `env_var`, then `secret_id` (Secrets Manager or SSM; `client`
    is an injected boto3 client for tests).
    """
    env = os.environ if environ is None else environ
    if env_var and env.get(env_var, "").strip():
        return env[env_var].strip()
    if not secret_id:
        return None
    now = time.monotonic()
    with _lock:
        hit = _cache.get(secret_id)
        if hit and now - hit[0] < ttl_s:
            return hit[1]
    key = _fetch(secret_id, env_var or "api_key", client)
    with _lock:
        _cache[secret_id] = (now, key)
    return key


def api_key_configured(
    *, env_var: str | None, secret_id: str | None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether a key would be found, without calling AWS."""
    env = os.environ if environ is None else environ
    return bool((env_var and env.get(env_var, "").strip()) or secret_id)
