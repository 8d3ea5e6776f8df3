"""Object storage for issued permits: short-lived presigned GET URLs through boto3.

Credentials come from boto3's usual chain (environment, web identity, instance role); the API
never streams the PDFs itself.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from .schemas import Check
from .settings import ApiSettings

# A readiness probe must answer quickly: one try, short timeouts.
_PROBE_CONFIG = Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class PermitStorage:
    def __init__(self, settings: ApiSettings) -> None:
        self._settings = settings
        self._client: S3Client | None = None
        self._probe: S3Client | None = None
        self._lock = threading.Lock()

    def _s3(self) -> S3Client:
        # Built on first use: boto3 clients are thread-safe once made, not while being made.
        with self._lock:
            if self._client is None:
                self._client = boto3.client(
                    "s3",
                    region_name=self._settings.s3_region,
                    endpoint_url=self._settings.s3_endpoint_url,
                    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
                )
            return self._client

    def presigned_get(self, key: str) -> str:
        url: str = self._s3().generate_presigned_url(
            "get_object",
            Params={"Bucket": self._settings.s3_bucket, "Key": key},
            ExpiresIn=self._settings.permit_url_ttl_seconds,
        )
        return url

    def check(self) -> Check:
        """Readiness of object storage: the permits bucket answers HeadBucket."""
        with self._lock:
            if self._probe is None:
                self._probe = boto3.client(
                    "s3",
                    region_name=self._settings.s3_region,
                    endpoint_url=self._settings.s3_endpoint_url,
                    config=_PROBE_CONFIG.merge(Config(s3={"addressing_style": "path"})),
                )
            probe = self._probe
        started = time.perf_counter()
        try:
            probe.head_bucket(Bucket=self._settings.s3_bucket)
        except Exception as exc:  # any failure: not reachable or no such bucket, with its kind
            return Check(
                status="failed",
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
                detail=type(exc).__name__,
            )
        return Check(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 2))
