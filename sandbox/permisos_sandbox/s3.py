"""An S3-compatible server on loopback: moto's server mode in a subprocess.

Tests and the local platform talk to it over HTTP with boto3, exactly as production talks to
S3; nothing is patched in-process.

    with S3Server() as s3:
        s3.client().create_bucket(Bucket="permits")
        ...  # give s3.endpoint_url to whatever should use it
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import TracebackType
from typing import TYPE_CHECKING, Any

from permisos_sandbox.ports import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# moto accepts any credentials; these make boto3's chain resolve without touching ~/.aws.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Server:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, region: str = "us-east-1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.region = region
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> S3Server:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._process.returncode}")
            if self._answers():
                return self
            time.sleep(0.05)  # polling a child process coming up; there is no event to wait on
        self.stop()
        raise TimeoutError(f"moto server did not answer on {self.endpoint_url}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means it is serving
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def reset(self) -> None:
        """Forgets every bucket and object (moto's own reset endpoint)."""
        url = f"{self.endpoint_url}/moto-api/reset"
        request = urllib.request.Request(url, method="POST")  # noqa: S310 (loopback)
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (loopback)
            pass

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 at this server."""
        return {**CREDENTIALS, "AWS_DEFAULT_REGION": self.region}

    def client(self, **kwargs: Any) -> S3Client:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            **kwargs,
        )

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
