"""API key resolution: environment first, then Secrets Manager or SSM (moto), cached, never echoed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from gifcat.adapters.llm import credentials
from gifcat.adapters.llm.credentials import CredentialsError, api_key_configured, is_ssm_name, resolve_api_key

KEY = "sk-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    credentials.clear_cache()
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    yield
    credentials.clear_cache()


def test_environment_wins_and_nothing_configured_is_none() -> None:
    assert resolve_api_key(env_var="K", secret_id="anything", environ={"K": f" {KEY} "}) == KEY
    assert resolve_api_key(env_var="K", secret_id=None, environ={}) is None
    assert resolve_api_key(env_var="K", secret_id=None, environ={"K": "  "}) is None
    assert api_key_configured(env_var="K", secret_id=None, environ={"K": KEY})
    assert api_key_configured(env_var="K", secret_id="s", environ={})
    assert not api_key_configured(env_var="K", secret_id=None, environ={})


def test_ssm_names_are_told_apart_from_secret_ids() -> None:
    assert is_ssm_name("/gifcat/openai") and is_ssm_name("ssm:openai")
    assert is_ssm_name("arn:aws:ssm:eu-west-1:123456789012:parameter/x")
    assert not is_ssm_name("gifcat/openai") and not is_ssm_name("arn:aws:secretsmanager:eu-west-1:1:secret:x")


@mock_aws
def test_secrets_manager_plain_and_json_values() -> None:
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="gifcat/plain", SecretString=KEY)
    sm.create_secret(Name="gifcat/json", SecretString=json.dumps({"OPENAI_API_KEY": KEY, "other": "x"}))
    assert resolve_api_key(env_var="K", secret_id="gifcat/plain", environ={}) == KEY
    assert resolve_api_key(env_var="OPENAI_API_KEY", secret_id="gifcat/json", environ={}) == KEY


@mock_aws
def test_ssm_parameter_with_decryption() -> None:
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/gifcat/openai", Value=KEY, Type="SecureString")
    assert resolve_api_key(env_var="K", secret_id="/gifcat/openai", environ={}) == KEY
    credentials.clear_cache()
    assert resolve_api_key(env_var="K", secret_id="ssm:/gifcat/openai", environ={}) == KEY


@mock_aws
def test_fetched_key_is_cached_for_the_ttl() -> None:
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="gifcat/key", SecretString=KEY)
    assert resolve_api_key(env_var=None, secret_id="gifcat/key", environ={}) == KEY
    sm.put_secret_value(SecretId="gifcat/key", SecretString="sk-rotated-000000000")
    assert resolve_api_key(env_var=None, secret_id="gifcat/key", environ={}) == KEY  # cached
    assert (
        resolve_api_key(env_var=None, secret_id="gifcat/key", environ={}, ttl_s=0) == "sk-rotated-000000000"
    )


@mock_aws
def test_missing_secret_names_the_id_not_a_value() -> None:
    with pytest.raises(CredentialsError, match=r"'gifcat/missing': ResourceNotFoundException"):
        resolve_api_key(env_var=None, secret_id="gifcat/missing", environ={})


@mock_aws
def test_json_secret_without_our_key_fails_without_echoing_it() -> None:
    boto3.client("secretsmanager").create_secret(Name="gifcat/wrong", SecretString=json.dumps({"x": KEY}))
    with pytest.raises(CredentialsError) as info:
        resolve_api_key(env_var="OPENAI_API_KEY", secret_id="gifcat/wrong", environ={})
    assert KEY not in str(info.value)
