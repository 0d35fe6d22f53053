"""The endpoint rule of every S3 root (S3Settings.from_env), without any server:

    IMAGING_ASSETS_<ROLE>_ENDPOINT unset      -> AWS_ENDPOINT_URL if set, else AWS
    IMAGING_ASSETS_<ROLE>_ENDPOINT set, empty -> AWS itself (no fallback)
    IMAGING_ASSETS_<ROLE>_ENDPOINT a URL      -> that URL

and "AWS" has to stay AWS in boto3 and Lance, which both read AWS_ENDPOINT_URL on their own.
Creating a boto3 client opens no connection, so these are pure unit tests."""

from __future__ import annotations

import re

import pytest

from imaging_assets.core.s3 import S3Settings, aws_endpoint
from imaging_assets_tests.conftest import PROJECT_ROOT

ROLES = ("SOURCE", "METADATA", "LAKE", "STACKS")
STORE = "http://store.example:8333"
OTHER = "https://other.example"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for role in ROLES:
        for suffix in ("ENDPOINT", "REGION", "ANONYMOUS"):
            monkeypatch.delenv(f"IMAGING_ASSETS_{role}_{suffix}", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    # fixed fake keys: lance_storage_options resolves credentials through boto3's chain
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")


def test_every_role_the_package_reads_is_covered():
    read = set()
    for path in (PROJECT_ROOT / "imaging_assets").rglob("*.py"):
        text = path.read_text()
        read |= set(re.findall(r"from_env\(role=\"([A-Z]+)\"\)", text))
        read |= set(re.findall(r"_env_store_kwargs\(\"([A-Z]+)\"\)", text))
    assert read and read <= set(ROLES), sorted(read - set(ROLES))


@pytest.mark.parametrize("role", ROLES)
def test_unset_falls_back_to_aws_endpoint_url(monkeypatch, role):
    assert S3Settings.from_env(role=role).endpoint_url is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", STORE)
    assert S3Settings.from_env(role=role).endpoint_url == STORE


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("empty", ["", "  "])
def test_empty_means_aws_even_when_aws_endpoint_url_is_set(monkeypatch, role, empty):
    monkeypatch.setenv("AWS_ENDPOINT_URL", STORE)
    monkeypatch.setenv(f"IMAGING_ASSETS_{role}_ENDPOINT", empty)
    assert S3Settings.from_env(role=role).endpoint_url is None


@pytest.mark.parametrize("role", ROLES)
def test_a_url_wins_over_aws_endpoint_url(monkeypatch, role):
    monkeypatch.setenv("AWS_ENDPOINT_URL", STORE)
    monkeypatch.setenv(f"IMAGING_ASSETS_{role}_ENDPOINT", OTHER)
    assert S3Settings.from_env(role=role).endpoint_url == OTHER


def test_roles_do_not_leak_into_each_other(monkeypatch):
    """The public gallery as source (empty: AWS) while every other root is on a private store."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", STORE)
    monkeypatch.setenv("IMAGING_ASSETS_SOURCE_ENDPOINT", "")
    monkeypatch.setenv("IMAGING_ASSETS_LAKE_ENDPOINT", OTHER)
    endpoints = {role: S3Settings.from_env(role=role).endpoint_url for role in ROLES}
    assert endpoints == {"SOURCE": None, "METADATA": STORE, "LAKE": OTHER, "STACKS": STORE}


def test_an_empty_aws_endpoint_url_means_aws(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    assert S3Settings.from_env(role="LAKE").endpoint_url is None


def test_aws_stays_aws_in_boto3_and_lance_whatever_the_environment_says(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", STORE)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", STORE)
    monkeypatch.setenv("IMAGING_ASSETS_SOURCE_ENDPOINT", "")
    settings = S3Settings.from_env(role="SOURCE")
    assert settings.region == "eu-west-1"
    assert settings.client().meta.endpoint_url == aws_endpoint("eu-west-1")
    options = settings.lance_storage_options()
    assert (
        options["aws_endpoint"] == aws_endpoint("eu-west-1") == "https://s3.eu-west-1.amazonaws.com"
    )
    assert "allow_http" not in options and "aws_virtual_hosted_style_request" not in options


def test_an_s3_compatible_store_reaches_boto3_and_lance(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", STORE)
    settings = S3Settings.from_env(role="LAKE")
    assert settings.client().meta.endpoint_url == STORE
    options = settings.lance_storage_options()
    assert options["aws_endpoint"] == STORE
    assert options["allow_http"] == "true"
    assert options["aws_virtual_hosted_style_request"] == "false"
    assert options["aws_access_key_id"] == "test-key"
