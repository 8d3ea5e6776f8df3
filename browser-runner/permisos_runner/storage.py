"""Object storage: the PDFs under `permits/`, a failed attempt's evidence under `evidence/`.

boto3 is imported, and its client made, in a worker thread while the portal processes the
submission (`connect`, or the first `put` of a failed attempt's evidence): a tenth of a second
or two of CPU that neither a pod's start-up nor its pages wait for.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import TYPE_CHECKING

from permisos.resources import Artifact
from permisos_runner.documents import Document
from permisos_runner.errors import Retryable
from permisos_runner.settings import RunnerSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def permit_key(application_id: str, kind: str, folio: str) -> str:
    return f"permits/{application_id}/{kind}-{folio}.pdf"


def evidence_prefix(settings: RunnerSettings) -> str:
    """An attempt's evidence beside its application's; a probe's under `evidence/probes/`."""
    if settings.mode == "probe":
        return f"evidence/probes/{settings.probe_name}/"
    return f"evidence/{settings.application_id}/{settings.attempt}/"


def _client(settings: RunnerSettings) -> S3Client:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        region_name=settings.s3_region,
        endpoint_url=settings.s3_endpoint_url,
        config=Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"mode": "standard", "max_attempts": 3},
        ),
    )


class Storage:
    """A thin async face over boto3 (which blocks, so calls run in a worker thread)."""

    def __init__(self, settings: RunnerSettings) -> None:
        self.bucket = settings.s3_bucket
        self._settings = settings
        self._client: asyncio.Future[S3Client] | None = None

    def connect(self) -> asyncio.Future[S3Client]:
        """Starts making the client, once; what every call awaits."""
        if self._client is None:
            self._client = asyncio.ensure_future(asyncio.to_thread(_client, self._settings))
        return self._client

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        """Stores one object, encrypted at rest, with its SHA-256; returns the hex digest."""
        from botocore.exceptions import BotoCoreError, ClientError  # loaded by `connect`

        digest = hashlib.sha256(data)
        try:
            client = await self.connect()
        except Exception as error:  # a client that cannot be made: bad endpoint, no boto3
            raise Retryable("StorageUnavailable", f"S3: {type(error).__name__}: {error}") from None
        try:
            await asyncio.to_thread(
                client.put_object,
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                Metadata={"sha256": digest.hexdigest()},
                ServerSideEncryption="AES256",
                # S3 verifies the body against this, so a corrupted upload is refused.
                ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
            )
        except (BotoCoreError, ClientError) as error:
            raise Retryable("StorageUnavailable", f"S3 no aceptó {key}: {error}") from None
        return digest.hexdigest()

    async def put_document(self, application_id: str, folio: str, document: Document) -> Artifact:
        key = permit_key(application_id, document.kind, folio)
        sha256 = await self.put(key, document.data, "application/pdf")
        return Artifact(kind=document.kind, key=key, sha256=sha256, bytes=len(document.data))
