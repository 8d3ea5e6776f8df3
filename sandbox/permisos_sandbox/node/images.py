"""The image map that stands in for container images: there is no container runtime on this
machine, so an image names a local command (its entrypoint), and a container's `command`
replaces it as `command` replaces an image's ENTRYPOINT. An image not in the map cannot be
"pulled" (`ErrImagePull`, then `ImagePullBackOff`, as on a cluster)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import yaml

# The images the platform runs, as local commands of this virtual environment (each is built
# from the component's Dockerfile for a real cluster; the chart's defaults name them).
RUNNER_ARGV = (sys.executable, "-m", "permisos_runner")
DEFAULT_IMAGES: Mapping[str, Sequence[str]] = MappingProxyType(
    {
        "permisos/browser-runner": RUNNER_ARGV,
        "permisos-browser-runner": RUNNER_ARGV,
        "permisos/api": (sys.executable, "-m", "permisos_api"),
        "permisos-api": (sys.executable, "-m", "permisos_api"),
        "permisos/operator": (sys.executable, "-m", "permisos_operator"),
        "permisos-operator": (sys.executable, "-m", "permisos_operator"),
        # A plain interpreter, for pods that bring their own `command` (tests, one-off Jobs).
        "permisos/python": (sys.executable,),
    }
)


def image_candidates(image: str) -> list[str]:
    """Keys an image is looked up by, most specific first: the reference as written, the
    repository without tag or digest, the repository without its registry, and its last path
    segment. `ghcr.io/acme/permisos-browser-runner:1.2` matches `permisos-browser-runner`."""
    ref = image.strip()
    repo = ref.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    parts = repo.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    without_registry = "/".join(parts)
    out: list[str] = []
    for key in (ref, repo, without_registry, parts[-1]):
        if key and key not in out:
            out.append(key)
    return out


def lookup_image(images: Mapping[str, tuple[str, ...]], image: str) -> tuple[str, ...] | None:
    for key in image_candidates(image):
        if key in images:
            return images[key]
    return None


def parse_image_flag(text: str) -> tuple[str, tuple[str, ...]]:
    """`NAME=ARGV` as given on the command line; ARGV is split like a shell would."""
    name, sep, argv = text.partition("=")
    words = shlex.split(argv)
    if not sep or not name.strip() or not words:
        raise ValueError(f"expected NAME=ARGV, got {text!r}")
    return name.strip(), tuple(words)


def load_image_file(path: Path) -> dict[str, tuple[str, ...]]:
    """A YAML mapping of image → argv (a list, or a string split like a shell would)."""
    document = yaml.safe_load(path.read_text()) or {}
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping of image to command")
    images: dict[str, tuple[str, ...]] = {}
    for name, argv in document.items():
        words = shlex.split(argv) if isinstance(argv, str) else [str(w) for w in argv or []]
        if not words:
            raise ValueError(f"{path}: image {name!r} has an empty command")
        images[str(name)] = tuple(words)
    return images
