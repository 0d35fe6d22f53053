"""One place that turns S3 settings into a boto3 client and Lance storage options.

boto3 (listing, reads, parquet writes) and Lance (datasets) must never disagree about the endpoint,
region, credentials or signing. Both are built here from the same `S3Settings`; credentials come from
the environment or boto3's credentials chain at run time and are never stored in config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import boto3
import botocore.config
from botocore import UNSIGNED

DEFAULT_REGION = "us-east-1"


def aws_endpoint(region: str) -> str:
    """AWS's own regional S3 endpoint."""
    return f"https://s3.{region}.amazonaws.com"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class S3Settings:
    """Where and how to reach an S3-compatible store. No secrets: those stay in the environment.

    endpoint_url: None for AWS itself (never an endpoint configured in the environment or in
        ~/.aws/config: `from_env` has already applied AWS_ENDPOINT_URL); http(s)://host:port for
        S3-compatible servers.
    anonymous: unsigned requests (public buckets such as the Cell Painting Gallery).
    max_attempts: botocore retry attempts (adaptive mode: backs off on 503 SlowDown and throttling).
    """

    endpoint_url: str | None = None
    region: str = DEFAULT_REGION
    anonymous: bool = False
    max_attempts: int = 10
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    @classmethod
    def from_env(cls, prefix: str = "IMAGING_ASSETS_", role: str = "") -> S3Settings:
        """Settings from the environment.

        `role` ("SOURCE", "METADATA", "LAKE", "STACKS") picks role-specific variables, e.g.
        IMAGING_ASSETS_SOURCE_ENDPOINT, IMAGING_ASSETS_SOURCE_ANONYMOUS, _REGION (else AWS_REGION /
        AWS_DEFAULT_REGION). The endpoint follows one rule for every role:
        unset -> AWS_ENDPOINT_URL if set, else AWS; set but empty -> AWS itself, with no fallback
        (a public AWS bucket as source while AWS_ENDPOINT_URL points at a private store).
        """
        scoped = f"{prefix}{role}_" if role else prefix
        endpoint = os.environ.get(f"{scoped}ENDPOINT")
        if endpoint is None:
            endpoint = os.environ.get("AWS_ENDPOINT_URL")
        region = (
            os.environ.get(f"{scoped}REGION")
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )
        return cls(
            endpoint_url=(endpoint or "").strip() or None,
            region=region,
            anonymous=_truthy(os.environ.get(f"{scoped}ANONYMOUS")),
        )

    @property
    def allow_http(self) -> bool:
        return bool(self.endpoint_url and self.endpoint_url.startswith("http://"))

    def botocore_config(self) -> botocore.config.Config:
        kwargs: dict = {
            "region_name": self.region,
            "retries": {"max_attempts": self.max_attempts, "mode": "adaptive"},
            "connect_timeout": self.connect_timeout_s,
            "read_timeout": self.read_timeout_s,
            "max_pool_connections": 64,
        }
        if self.anonymous:
            kwargs["signature_version"] = UNSIGNED
        # endpoint_url None means AWS: keep boto3 from applying AWS_ENDPOINT_URL(_S3) on its own
        kwargs["ignore_configured_endpoint_urls"] = True
        if self.endpoint_url:
            # S3-compatible servers on a host:port want path-style addressing.
            kwargs["s3"] = {"addressing_style": "path"}
        return botocore.config.Config(**kwargs)

    def client(self):
        """A boto3 S3 client (thread-safe; share it across a plate's fetch threads)."""
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=self.endpoint_url, config=self.botocore_config())

    def lance_storage_options(self) -> dict[str, str]:
        """Storage options for Lance (object_store) that match `client()`.

        Credentials are resolved through boto3's chain (environment, profile, instance role) at call
        time and handed to Lance in memory only.
        """
        options: dict[str, str] = {"aws_region": self.region}
        if self.endpoint_url:
            options["aws_endpoint"] = self.endpoint_url
            options["aws_virtual_hosted_style_request"] = "false"
        else:
            # AWS spelled out: object_store would otherwise take AWS_ENDPOINT_URL from the
            # environment. This is the URL it uses by default (path-style).
            options["aws_endpoint"] = aws_endpoint(self.region)
        if self.allow_http:
            options["allow_http"] = "true"
        if self.anonymous:
            options["aws_skip_signature"] = "true"
            return options
        credentials = boto3.session.Session().get_credentials()
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            options["aws_access_key_id"] = frozen.access_key
            options["aws_secret_access_key"] = frozen.secret_key
            if frozen.token:
                options["aws_session_token"] = frozen.token
        return options
