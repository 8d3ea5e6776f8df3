"""Object storage: the PDFs under `permits/`, a failed attempt's evidence under `evidence/`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

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


class Storage:
    """A thin async face over boto3 (which blocks, so calls run in a worker thread)."""

    def __init__(self, settings: RunnerSettings, client: S3Client | None = None) -> None:
        self.bucket = settings.s3_bucket
        self.client: S3Client = client or boto3.client(
            "s3",
            region_name=settings.s3_region,
            endpoint_url=settings.s3_endpoint_url,
            config=Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        """Stores one object, encrypted at rest, with its SHA-256; returns the hex digest."""
        digest = hashlib.sha256(data)
        try:
            await asyncio.to_thread(
                self.client.put_object,
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
