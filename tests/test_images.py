"""The container images, checked without a container engine (none runs on this machine).

Statically, each Dockerfile is parsed and held to issue #6: several stages, pinned base images, a
numeric non-root user, no build tools in the final stage, a .dockerignore that lets in what is
copied and keeps out the rest, and dependencies that are exactly what the image's code imports
(derived with `ast`), each pinned by the lock file.

Then each image is emulated: its build context is assembled as COPY would (through
.dockerignore), its code is built as `pip install --no-deps .` would, and its commands run from
this venv with the image's environment, able to import only what the image holds, under an audit
hook that reports any file written outside /tmp (the only writable place of its read-only pods).
"""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import aiohttp
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from permisos.attempt_result import AttemptResult
from permisos.kube import JSON, Kube
from permisos_api.settings import ApiSettings
from permisos_runner.settings import DEFAULT_CHROMIUM
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.portal import PortalConfig, PortalSimulator
from permisos_sandbox.s3 import CREDENTIALS, S3Server
from tests.accounts import operator_kubeconfig
from tests.cluster import eventually, free_port
from tests.namespaces import new_namespace, permit_request, runner_pool
from tests.runner.conftest import APPLICANT, BUCKET, VEHICLE, write_secret

ROOT = Path(__file__).resolve().parents[1]
# What `python -m venv` seeds every venv with on Python 3.11, so the image's venv has it too.
VENV_SEED = frozenset({"pip", "setuptools"})
# The PATH of the official Python images, after the venv.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --- Dockerfiles -------------------------------------------------------------------------------


_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(text: str, values: dict[str, str]) -> str:
    """`$NAME` and `${NAME}` from known values; unknown ones stay as written."""
    return _VAR.sub(lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str] | None:
        if not self.value.startswith("["):
            return None
        parsed = json.loads(self.value)
        assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed), self
        return parsed


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    from_stage: str | None
    instruction: Instruction


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self, until: Instruction | None = None) -> dict[str, str]:
        """ENV set by this stage (before `until`), with earlier values expanded."""
        values: dict[str, str] = {}
        for ins in self.instructions:
            if ins is until:
                break
            if ins.keyword != "ENV":
                continue
            words = shlex.split(ins.value)
            if "=" not in words[0]:  # the legacy `ENV KEY value` form
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, raw = word.partition("=")
                values[key] = expand(raw, values)
        return values

    def workdir(self, until: Instruction | None = None) -> PurePosixPath:
        current = PurePosixPath("/")
        for ins in self.instructions:
            if ins is until:
                break
            if ins.keyword == "WORKDIR":
                current = current / expand(ins.value, self.env(ins))
        return current

    def copies(self) -> list[Copy]:
        found = []
        for ins in self.all("COPY"):
            words = ins.exec_form() or shlex.split(ins.value)
            flags: dict[str, str] = {}
            while words[0].startswith("--"):
                key, _, value = words.pop(0)[2:].partition("=")
                flags[key] = value
            *sources, dest = words
            found.append(Copy(tuple(sources), dest, flags.get("from"), ins))
        return found

    def commands(self) -> Iterator[tuple[Instruction, list[str]]]:
        """Each simple command of each RUN (split at &&, ||, ;, |), without leading VAR=value."""
        for ins in self.all("RUN"):
            exec_form = ins.exec_form()
            if exec_form is not None:
                yield ins, exec_form
                continue
            lexer = shlex.shlex(ins.value, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            command: list[str] = []
            for token in [*lexer, ";"]:
                if token in ("&&", "||", ";", "|", "&"):
                    while command and re.fullmatch(r"\w+=.*", command[0]):
                        command.pop(0)
                    if command:
                        yield ins, command
                    command = []
                else:
                    command.append(token)

    def user(self) -> str | None:
        users = self.all("USER")
        return users[-1].value if users else None


@dataclass
class Dockerfile:
    path: Path
    args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, ref: str) -> Stage:
        for index, stage in enumerate(self.stages):
            if ref in (stage.name, str(index)):
                return stage
        raise AssertionError(f"{self.path}: no stage {ref!r}")

    def entry_argv(self, args: list[str] | None = None) -> list[str]:
        """What the container runs: ENTRYPOINT plus the pod's args (else CMD)."""
        entrypoints = self.final.all("ENTRYPOINT")
        assert entrypoints, f"{self.path}: the final stage has no ENTRYPOINT"
        entrypoint = entrypoints[-1].exec_form()
        # The exec form makes python PID 1, so SIGTERM reaches it (a shell would swallow it).
        assert entrypoint, f"{self.path}: ENTRYPOINT must use the exec (JSON) form"
        if args is not None:
            return entrypoint + args
        cmds = self.final.all("CMD")
        cmd = cmds[-1].exec_form() if cmds else []
        assert cmd is not None, f"{self.path}: CMD must use the exec (JSON) form"
        return entrypoint + cmd


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    lines: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += raw.rstrip()[:-1]
            continue
        lines.append((start, (buffer + raw).strip()))
        buffer = ""
    assert not buffer, "a continuation runs past the end of the file"
    return lines


def parse_dockerfile(path: Path) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, text in logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, value = text.partition(" ")
        keyword, value = keyword.upper(), value.strip()
        if keyword == "FROM":
            words = [w for w in value.split() if not w.startswith("--")]
            assert len(words) in (1, 3), f"{path}:{line}: FROM image [AS name]"
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(expand(words[0], args), name))
        elif not stages:
            assert keyword == "ARG", f"{path}:{line}: only ARG may come before the first FROM"
            key, _, default = value.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, value, line))
    return Dockerfile(path, args, stages)


@dataclass(frozen=True)
class PipInstall:
    requirements: tuple[Requirement, ...]
    project: bool  # `.`: the repository's own package
    constraints: tuple[str, ...]
    no_deps: bool
    instruction: Instruction


PIP_FLAGS = {"--no-deps", "--no-cache-dir", "-q", "--quiet"}
PIP_OPTIONS = {"-c": "constraint", "--constraint": "constraint"}


def pip_install(command: list[str]) -> list[str] | None:
    """The arguments of a `pip install`, or None for any other command."""
    for prefix in (["pip", "install"], ["pip3", "install"], ["python", "-m", "pip", "install"]):
        if command[: len(prefix)] == prefix:
            return command[len(prefix) :]
    return None


def pip_installs(stage: Stage) -> list[PipInstall]:
    found = []
    for ins, command in stage.commands():
        args = pip_install(command)
        if args is None:
            continue
        requirements: list[Requirement] = []
        constraints: list[str] = []
        project = no_deps = False
        words = iter(args)
        for word in words:
            option, eq, inline = word.partition("=")
            if option in PIP_OPTIONS:
                constraints.append(inline if eq else next(words))
            elif word in PIP_FLAGS:
                no_deps = no_deps or word == "--no-deps"
            elif word.startswith("-"):
                # Index URLs, find-links, --pre...: nothing decides what is installed but the lock.
                raise AssertionError(f"line {ins.line}: unexpected pip option {word}")
            elif word == ".":
                project = True
            else:
                requirements.append(Requirement(word))
        found.append(PipInstall(tuple(requirements), project, tuple(constraints), no_deps, ins))
    return found


# --- .dockerignore -----------------------------------------------------------------------------


def _docker_glob(pattern: str) -> str:
    """A .dockerignore pattern as a regular expression (Go's filepath.Match plus `**`)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith(("!", "^")) else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[re.Pattern[str], bool], ...]  # (pattern, is an exception `!`)

    @classmethod
    def load(cls, path: Path = ROOT / ".dockerignore") -> DockerIgnore:
        rules = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            pattern = posixpath.normpath(line[1:].strip() if exception else line).lstrip("/")
            rules.append((re.compile(_docker_glob(pattern)), exception))
        return cls(tuple(rules))

    def excluded(self, relpath: str) -> bool:
        """The last rule matching the path or one of its parent directories decides."""
        parts = relpath.strip("/").split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        result = False
        for regex, exception in self.rules:
            if any(regex.fullmatch(p) for p in prefixes):
                result = not exception
        return result


# --- The repository's code and its imports -----------------------------------------------------


@functools.cache
def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


@functools.cache
def module_index() -> dict[str, Path]:
    """Every first-party module setuptools would package, by dotted name."""
    find = pyproject()["tool"]["setuptools"]["packages"]["find"]
    index: dict[str, Path] = {}
    for where in find["where"]:
        base = ROOT / where
        for init in sorted(base.glob("*/__init__.py")):
            if not any(fnmatch(init.parent.name, p) for p in find["include"]):
                continue
            for file in sorted(init.parent.rglob("*.py")):
                rel = file.relative_to(base)
                # Only modules inside packages (every directory up has an __init__.py) ship.
                if not all((base / d / "__init__.py").is_file() for d in _parents(rel)):
                    continue
                parts = rel.with_suffix("").parts
                index[".".join(parts[:-1] if rel.name == "__init__.py" else parts)] = file
    return index


def _parents(rel: Path) -> list[Path]:
    return [Path(*rel.parts[:n]) for n in range(1, len(rel.parts))]


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@functools.cache
def imports_of(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(modules imported, names that may be submodules: `from pkg import name`), at run time
    only: what sits under `if TYPE_CHECKING:` is for the type checker."""
    path = module_index()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _type_checking(node.test)
        for statement in node.body
        for n in ast.walk(statement)
    }
    modules: set[str] = set()
    maybe: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            modules.add(name)
            maybe.update(f"{name}.{alias.name}" for alias in node.names)
    return frozenset(modules), frozenset(maybe)


@dataclass(frozen=True)
class ImportGraph:
    modules: frozenset[str]  # first-party modules the image runs, with their packages
    third_party: frozenset[str]  # top-level names of everything else that is not stdlib


def import_closure(roots: set[str]) -> ImportGraph:
    index = module_index()
    first_party = {m.partition(".")[0] for m in index}
    seen: set[str] = set()
    third: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if "." in module:
            todo.append(module.rpartition(".")[0])  # importing a module runs its packages
        modules, maybe = imports_of(module)
        for name in modules | maybe:
            top = name.partition(".")[0]
            if top in first_party:
                if name in index:
                    todo.append(name)
                else:
                    assert name in maybe, f"{module} imports {name}, which is not in the repo"
            elif top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return ImportGraph(frozenset(seen), frozenset(third))


def runnable(module: str) -> bool:
    """A module a container can run with `python -m`."""
    if module.endswith(".__main__"):
        return True
    tree = ast.parse(module_index()[module].read_text(encoding="utf-8"))
    return any(
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        for node in tree.body
    )


@functools.cache
def providers() -> dict[str, frozenset[str]]:
    """Import name -> the installed distributions that provide it."""
    return {
        top: frozenset(canonicalize_name(d) for d in dists)
        for top, dists in metadata.packages_distributions().items()
    }


def installed_closure(requirements: tuple[Requirement, ...]) -> dict[str, set[str]]:
    """The distributions pip installs for these requirements (name -> extras asked for)."""
    result: dict[str, set[str]] = {}
    todo = [(canonicalize_name(r.name), set(r.extras)) for r in requirements]
    while todo:
        name, extras = todo.pop()
        known = result.get(name)
        if known is not None and extras <= known:
            continue
        result[name] = (known or set()) | extras
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in result[name] | {""}):
                todo.append((canonicalize_name(requirement.name), set(requirement.extras)))
    return result


@functools.cache
def lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = raw.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[canonicalize_name(name.split("[")[0])] = version
    return pins


@dataclass(frozen=True)
class Plugin:
    """A distribution a library loads by name at run time, so no import statement shows it."""

    distribution: str
    extras: frozenset[str]
    loader: str  # the import name whose use needs it
    why: str


PLUGINS = (
    Plugin(
        "psycopg",
        frozenset({"binary"}),
        "sqlalchemy",
        "SQLAlchemy's dialect loads it for postgresql+psycopg:// URLs; the binary wheel carries "
        "libpq, which the slim base image lacks",
    ),
    Plugin(
        "python-multipart",
        frozenset(),
        "fastapi",
        "Starlette imports it when a web page's form arrives (request.form())",
    ),
)


# --- The images --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSpec:
    artifact: str  # the image name (skaffold's artifact)
    dockerfile: str
    packages: tuple[str, ...]  # the import packages whose commands the image runs


IMAGES = (
    ImageSpec("permisos-api", "api/Dockerfile", ("permisos_api",)),
    ImageSpec("permisos-operator", "operator/Dockerfile", ("permisos_operator",)),
    ImageSpec("permisos-browser-runner", "browser-runner/Dockerfile", ("permisos_runner",)),
    ImageSpec(
        "permisos-sandbox",
        "sandbox/Dockerfile",
        ("permisos_sandbox.portal", "permisos_sandbox.payments"),
    ),
)
BY_ARTIFACT = {spec.artifact: spec for spec in IMAGES}
each_image = pytest.mark.parametrize("spec", IMAGES, ids=[s.artifact for s in IMAGES])


@functools.cache
def dockerfile(spec: ImageSpec) -> Dockerfile:
    return parse_dockerfile(ROOT / spec.dockerfile)


def in_packages(module: str, spec: ImageSpec) -> bool:
    return any(module == p or module.startswith(p + ".") for p in spec.packages)


@functools.cache
def image_imports(spec: ImageSpec) -> ImportGraph:
    return import_closure({m for m in module_index() if in_packages(m, spec)})


def build_stage(df: Dockerfile) -> tuple[Stage, Copy]:
    """The stage the final one copies its venv from, and that COPY."""
    venvs = [c for c in df.final.copies() if c.from_stage is not None]
    assert len(venvs) == 1, f"{df.path}: the final stage copies exactly one thing from a build"
    return df.stage(venvs[0].from_stage or ""), venvs[0]


def dependency_install(df: Dockerfile) -> PipInstall:
    build, _ = build_stage(df)
    installs = [i for i in pip_installs(build) if i.requirements]
    assert len(installs) == 1, f"{df.path}: one pip install of the dependencies"
    return installs[0]


def project_install(df: Dockerfile) -> PipInstall:
    build, _ = build_stage(df)
    installs = [i for i in pip_installs(build) if i.project]
    assert len(installs) == 1, f"{df.path}: one `pip install --no-deps .`"
    return installs[0]


def build_checks(df: Dockerfile) -> list[str]:
    """The `python -c` programs the build stage runs after installing the project."""
    build, _ = build_stage(df)
    after = build.instructions.index(project_install(df).instruction)
    return [
        command[2]
        for ins, command in build.commands()
        if build.instructions.index(ins) >= after and command[:2] == ["python", "-c"]
    ]


def entry_module(argv: list[str]) -> tuple[str, list[str]]:
    assert argv[:2] == ["python", "-m"] and len(argv) > 2, f"not `python -m module`: {argv}"
    return argv[2], argv[3:]


# --- Static checks -----------------------------------------------------------------------------


def test_every_dockerfile_is_checked() -> None:
    on_disk = {str(p.relative_to(ROOT)) for p in ROOT.glob("*/Dockerfile")}
    assert on_disk == {spec.dockerfile for spec in IMAGES}


@each_image
def test_several_stages_on_one_pinned_base(spec: ImageSpec) -> None:
    df = dockerfile(spec)
    assert len(df.stages) >= 2, "a build stage and a runtime stage"
    names = {s.name for s in df.stages if s.name}
    for stage in df.stages:
        if stage.base in names:
            continue
        assert "$" not in stage.base, f"FROM {stage.base}: an ARG without a default"
        repository, _, digest = stage.base.partition("@")
        tag = repository.rpartition(":")[2] if ":" in repository.rpartition("/")[2] else ""
        assert not digest or re.fullmatch(r"sha256:[0-9a-f]{64}", digest), stage.base
        assert digest or re.search(r"\d+\.\d+\.\d+", tag), f"FROM {stage.base}: not pinned"
        assert "latest" not in tag, stage.base
    build, _ = build_stage(df)
    # The venv's interpreter is a symlink to the base image's: both stages need the same one.
    assert build.base == df.final.base


@each_image
def test_final_stage_runs_as_a_numeric_non_root_user(spec: ImageSpec) -> None:
    user = dockerfile(spec).final.user()
    assert user is not None, "no USER in the final stage"
    # Numeric, so Kubernetes can verify runAsNonRoot without a passwd lookup.
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert match, f"USER {user} is not numeric"
    assert int(match.group(1)) != 0
    assert match.group(2) is None or int(match.group(2)) != 0


@each_image
def test_final_stage_takes_the_venv_from_the_build_stage(spec: ImageSpec) -> None:
    df = dockerfile(spec)
    build, venv_copy = build_stage(df)
    created = [c[-1] for _, c in build.commands() if c[:3] == ["python", "-m", "venv"]]
    assert len(created) == 1, "the build stage creates one venv"
    assert venv_copy.sources == (created[0],) and venv_copy.dest == created[0]
    assert df.final.env()["PATH"].startswith(f"{created[0]}/bin:")


BUILD_TOOLS = re.compile(
    r"(gcc|g\+\+|cpp|clang|make|cmake|build-essential|pkg-config|git|curl|wget|.*-dev|python3?-pip)"
)


@each_image
def test_final_stage_has_nothing_to_build_with(spec: ImageSpec) -> None:
    final = dockerfile(spec).final
    for ins, command in final.commands():
        assert command[0] not in ("pip", "pip3", "uv", "easy_install"), f"line {ins.line}"
        assert command[:3] != ["python", "-m", "pip"], f"line {ins.line}"
        if command[:2] in (["apt-get", "install"], ["apt", "install"]):
            packages = [w for w in command[2:] if not w.startswith("-")]
            assert not [p for p in packages if BUILD_TOOLS.fullmatch(p)], f"line {ins.line}"
            # Small: no recommended extras, and the package lists go in the same layer.
            assert "--no-install-recommends" in command, f"line {ins.line}"
            assert "/var/lib/apt/lists/*" in ins.value, f"line {ins.line}"


@each_image
def test_nothing_is_downloaded_but_pinned_packages(spec: ImageSpec) -> None:
    df = dockerfile(spec)
    for stage in df.stages:
        # ADD can fetch URLs; the images only copy from the context.
        assert not stage.all("ADD"), "use COPY"
        for ins, command in stage.commands():
            assert command[0] not in ("curl", "wget"), f"line {ins.line}"
            tool = command[2:] if command[:2] == ["python", "-m"] else command
            assert tool[:2] != ["playwright", "install"], f"line {ins.line}: a browser download"
    text = "\n".join(i.value for s in df.stages for i in s.instructions)
    assert not re.search(r"https?://", text), "no URL: packages come from the configured index"


def test_runner_image_carries_debians_chromium() -> None:
    final = dockerfile(BY_ARTIFACT["permisos-browser-runner"]).final
    installed = {w for _, c in final.commands() if c[:2] == ["apt-get", "install"] for w in c}
    assert "chromium-headless-shell" in installed
    # Where Debian's package puts it, which is also the runner's default; the Makefile installs
    # the same package on this machine.
    assert final.env()["PERMISOS_RUNNER_CHROMIUM_PATH"] == DEFAULT_CHROMIUM
    assert "chromium-headless-shell" in (ROOT / "Makefile").read_text(encoding="utf-8")


def under_tmp(path: str) -> bool:
    return path == "/tmp" or path.startswith("/tmp/")


@each_image
def test_final_stage_writes_only_under_tmp(spec: ImageSpec) -> None:
    final = dockerfile(spec).final
    env = final.env()
    # The pod's root filesystem is read-only; /tmp is its emptyDir.
    assert under_tmp(env["HOME"]) and under_tmp(env["TMPDIR"])
    assert all(under_tmp(v) for k, v in env.items() if k.startswith("XDG_"))
    assert under_tmp(str(final.workdir()))
    # Python would otherwise try to write .pyc files beside the code.
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"


@each_image
def test_copies_exist_and_pass_the_dockerignore(spec: ImageSpec) -> None:
    ignore = DockerIgnore.load()
    build, _ = build_stage(dockerfile(spec))
    for copy in build.copies():
        for source in copy.sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: no such file"
            assert not ignore.excluded(source), f"COPY {source}: excluded by .dockerignore"
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            assert [f for f in files if not ignore.excluded(str(f.relative_to(ROOT)))]


@each_image
def test_the_code_the_image_runs_is_copied(spec: ImageSpec) -> None:
    ignore = DockerIgnore.load()
    build, _ = build_stage(dockerfile(spec))
    sources = [s.rstrip("/") for c in build.copies() if c.from_stage is None for s in c.sources]
    for module in image_imports(spec).modules:
        rel = str(module_index()[module].relative_to(ROOT))
        assert any(rel == s or rel.startswith(s + "/") for s in sources), f"{rel} is not copied"
        assert not ignore.excluded(rel), f"{rel} is excluded by .dockerignore"


def test_dockerignore_keeps_out_everything_else() -> None:
    ignore = DockerIgnore.load()
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        "var/kubeconfig",
        "tests/test_images.py",
        "bench/operator_throughput.py",
        "docs/index.md",
        "charts/permisos/Chart.yaml",
        "skaffold.yaml",
        "permisos_digitales.egg-info/PKG-INFO",
        ".mypy_cache/3.11/x.json",
        "api/permisos_api/__pycache__/app.cpython-311.pyc",
        "api/Dockerfile",
    ):
        assert ignore.excluded(path), path
    for path in ("pyproject.toml", "requirements.lock", "api/permisos_api/app.py"):
        assert not ignore.excluded(path), path


@each_image
def test_dependencies_are_exactly_what_the_code_imports(spec: ImageSpec) -> None:
    install = dependency_install(dockerfile(spec))
    graph = image_imports(spec)
    listed = {canonicalize_name(r.name) for r in install.requirements}
    installed = installed_closure(install.requirements)
    missing: dict[str, object] = {}
    direct: set[str] = set()
    for top in sorted(graph.third_party):
        dists = providers().get(top)
        assert dists, f"{top} is imported, but no distribution in the venv provides it"
        direct |= dists
        if not dists & installed.keys():
            missing[top] = sorted(dists)
    for plugin in PLUGINS:
        if plugin.loader not in graph.third_party:
            continue
        direct.add(plugin.distribution)
        if not plugin.extras <= installed.get(plugin.distribution, set()):
            missing[plugin.loader] = f"{plugin.distribution}{sorted(plugin.extras)}: {plugin.why}"
    # Missing ones crash the image at import; extra ones only make it bigger.
    extra = sorted(listed - direct)
    assert not missing and not extra, f"not installed: {missing}; never imported: {extra}"


def test_the_database_driver_is_the_one_the_plugin_table_names() -> None:
    # PLUGINS assumes the platform's database URLs name psycopg; this fails if that changes.
    assert ApiSettings().database_url.startswith("postgresql+psycopg://")


@each_image
def test_dependencies_are_pinned_by_the_lock(spec: ImageSpec) -> None:
    df = dockerfile(spec)
    install = dependency_install(df)
    build, _ = build_stage(df)
    assert install.constraints == ("requirements.lock",) and not install.no_deps
    workdir = build.workdir(install.instruction)
    copied = {
        posixpath.normpath(workdir / c.dest / PurePosixPath(s).name)
        for c in build.copies()
        if build.instructions.index(c.instruction) < build.instructions.index(install.instruction)
        for s in c.sources
    }
    assert str(workdir / "requirements.lock") in copied, "the lock is copied before the install"
    # Everything pip will install, dependencies of dependencies included, has a pinned version.
    unpinned = sorted(set(installed_closure(install.requirements)) - lock().keys())
    assert not unpinned, f"not in requirements.lock: {unpinned}"
    assert project_install(df).no_deps, "the project itself must not pull unpinned dependencies"


@each_image
def test_entry_point_is_a_module_of_the_image(spec: ImageSpec) -> None:
    module, _ = entry_module(dockerfile(spec).entry_argv())
    index = module_index()
    assert module in index, f"python -m {module}: no such module"
    target = f"{module}.__main__" if index[module].name == "__init__.py" else module
    assert target in index and in_packages(target, spec), target
    assert target in image_imports(spec).modules


@each_image
def test_build_checks_that_every_command_imports(spec: ImageSpec) -> None:
    df = dockerfile(spec)
    checked: set[str] = set()
    for code in build_checks(df):
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                checked.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                checked.add(node.module)
    commands = {m for m in image_imports(spec).modules if in_packages(m, spec) and runnable(m)}
    assert commands, "the image runs nothing"
    for module in sorted(commands):
        # A __main__ that runs on import is covered by importing what it imports.
        first_party = {m for m in imports_of(module)[0] if m in module_index()}
        assert module in checked or (
            module.endswith(".__main__") and first_party and first_party <= checked
        ), f"the build never imports {module}"


# --- Emulation: the image's build, then its commands -------------------------------------------


@dataclass(frozen=True)
class EmulatedImage:
    spec: ImageSpec
    dockerfile: Dockerfile
    site: Path  # the project's code as `pip install --no-deps .` installs it
    venv: Path  # its site-packages: links to exactly the distributions the image installs


def emulate_build(spec: ImageSpec, workspace: Path) -> EmulatedImage:
    df = dockerfile(spec)
    build, _ = build_stage(df)
    ignore = DockerIgnore.load()
    rootfs = workspace / "rootfs"
    for copy in build.copies():
        dest = rootfs / (build.workdir(copy.instruction) / copy.dest).relative_to("/")
        for source in copy.sources:
            path = ROOT / source
            if path.is_file():
                into_dir = copy.dest.endswith("/") or len(copy.sources) > 1
                target = dest / path.name if into_dir else dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                continue
            for file in path.rglob("*"):
                if file.is_file() and not ignore.excluded(str(file.relative_to(ROOT))):
                    target = dest / file.relative_to(path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, target)
    # What the wheel of `pip install --no-deps .` holds: setuptools' build_py of the context.
    site = workspace / "site"
    setup = [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q"]
    built = subprocess.run(
        [*setup, "build_py", "--build-lib", str(site)],
        cwd=rootfs / build.workdir(project_install(df).instruction).relative_to("/"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    venv = workspace / "site-packages"
    installed = set(installed_closure(dependency_install(df).requirements))
    link_distributions(installed | VENV_SEED, venv)
    return EmulatedImage(spec=spec, dockerfile=df, site=site, venv=venv)


@functools.cache
def distribution_files() -> dict[str, list[Path]]:
    """Each distribution of this venv -> the files it installed into site-packages."""
    found: dict[str, list[Path]] = {}
    for dist in metadata.distributions():
        files = [f for f in dist.files or [] if f.parts[0] != ".."]  # not bin/ scripts
        name = canonicalize_name(dist.metadata["Name"])
        found[name] = [Path(str(dist.locate_file(f))) for f in files]
    return found


def link_distributions(names: set[str], target: Path) -> None:
    """A site-packages holding exactly these distributions, as links into this venv's."""
    files = distribution_files()
    site_packages = Path(str(metadata.distribution("pytest").locate_file("")))
    owners: dict[str, set[str]] = {}
    for name, paths in files.items():
        for path in paths:
            if path.is_relative_to(site_packages):
                owners.setdefault(path.relative_to(site_packages).parts[0], set()).add(name)
    target.mkdir(parents=True)
    for top, dists in owners.items():
        if dists <= names:  # all of it: one link
            (target / top).symlink_to(site_packages / top)
            continue
        for name in dists & names:  # a directory shared with an absent distribution
            for path in files[name]:
                link = target / path.relative_to(site_packages)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(path)


@pytest.fixture(scope="session")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], EmulatedImage]:
    built: dict[str, EmulatedImage] = {}

    def get(artifact: str) -> EmulatedImage:
        if artifact not in built:
            workspace = tmp_path_factory.mktemp(artifact)
            built[artifact] = emulate_build(BY_ARTIFACT[artifact], workspace)
        return built[artifact]

    return get


# Runs one command as the image would: a file of its own, run by `python -S`, so that nothing
# from this venv is importable but the image's distributions and code.
SHIM = """\
import json, os, site, sys

config = json.loads(os.environ.pop("PERMISOS_IMAGE_EMULATION"))
# Started with -S, so without this venv's site-packages: the image's venv instead (its .pth
# files included), and the project's code where `pip install .` put it.
site.addsitedir(config["venv"])
sys.path.append(config["site"])

roots = config["write_roots"]
if roots is not None:
    report = open(config["report"], "a", buffering=1, encoding="utf-8")
    roots = [os.path.realpath(root) for root in roots]
    WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    PATHS = {"os.mkdir": (0,), "os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,),
             "os.symlink": (1,), "os.link": (1,), "os.truncate": (0,), "os.chmod": (0,),
             "os.chown": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "sqlite3.connect": (0,)}

    def audit(event, args):
        if event == "open":
            flags = args[2] if isinstance(args[2], int) else 0
            paths = [args[0]] if flags & WRITE else []
        else:
            paths = [args[i] for i in PATHS.get(event, ())]
        for path in paths:
            if isinstance(path, int) or path in (None, "", ":memory:"):
                continue
            real = os.path.realpath(os.fsdecode(path))
            if not any(real == root or real.startswith(root + os.sep) for root in roots):
                report.write(f"{event} {real}\\n")

    sys.addaudithook(audit)

sys.argv = [config["argv0"], *config["args"]]
if config["module"]:
    import runpy

    sys.path[0] = os.getcwd()  # as `python -m` does
    runpy.run_module(config["module"], run_name="__main__", alter_sys=True)
else:
    sys.path[0] = ""  # as `python -c` does
    exec(compile(config["code"], "<string>", "exec"), {"__name__": "__main__"})
"""

# Writable in any container whatever the root filesystem: the runtime's own mounts.
DEVICE_PATHS = ["/dev/null", "/dev/shm", "/dev/stdout", "/dev/stderr", "/dev/tty"]


def shim_env(
    image: EmulatedImage,
    env: dict[str, str],
    *,
    module: str | None,
    code: str | None,
    args: list[str],
    write_roots: list[str] | None,
    report: Path,
) -> dict[str, str]:
    config = {
        "venv": str(image.venv),
        "site": str(image.site),
        "write_roots": write_roots,
        "report": str(report),
        "module": module,
        "code": code,
        "argv0": "-m" if module else "-c",
        "args": args,
    }
    return {
        "PATH": f"{Path(sys.executable).parent}:{BASE_PATH}",
        "LANG": "C.UTF-8",  # as the official Python images set
        **env,
        "PERMISOS_IMAGE_EMULATION": json.dumps(config),
    }


def write_shim(workspace: Path) -> Path:
    path = workspace / "image_shim.py"
    path.write_text(SHIM, encoding="utf-8")
    return path


@each_image
def test_build_time_checks_pass_with_only_what_the_build_installed(
    spec: ImageSpec, emulated: Callable[[str], EmulatedImage], tmp_path: Path
) -> None:
    image = emulated(spec.artifact)
    build, _ = build_stage(image.dockerfile)
    shim = write_shim(tmp_path)
    checks = build_checks(image.dockerfile)
    assert checks
    for code in checks:
        env = {k: v for k, v in build.env().items() if k != "PATH"}
        result = subprocess.run(
            [sys.executable, "-S", str(shim)],
            env=shim_env(
                image,
                env,
                module=None,
                code=code,
                args=[],
                write_roots=None,
                report=tmp_path / "writes",
            ),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]


class Pod:
    """One container of an emulated image: its entry point, the image's environment with /tmp
    mapped to a directory of its own, and a record of every write outside it."""

    def __init__(
        self,
        image: EmulatedImage,
        workspace: Path,
        *,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        writable: list[Path] | None = None,
    ) -> None:
        self.tmp = workspace / "pod-tmp"  # the pod's /tmp, its emptyDir
        self.tmp.mkdir(parents=True)
        self.log = workspace / "pod.log"
        self.report = workspace / "writes-outside-tmp"
        self.report.touch()
        final = image.dockerfile.final
        image_env = {
            key: self._mapped(value) for key, value in final.env().items() if key != "PATH"
        }
        module, rest = entry_module(image.dockerfile.entry_argv(args))
        self.cwd = Path(self._mapped(str(final.workdir())))
        self.argv = [sys.executable, "-S", str(write_shim(workspace))]
        self.env = shim_env(
            image,
            {**image_env, **(env or {})},
            module=module,
            code=None,
            args=rest,
            write_roots=[str(self.tmp), *DEVICE_PATHS, *map(str, writable or [])],
            report=self.report,
        )
        self.process: asyncio.subprocess.Process | None = None

    def _mapped(self, value: str) -> str:
        return str(self.tmp) + value[4:] if under_tmp(value) else value

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=log
            )

    async def wait(self, timeout: float = 60) -> int:
        assert self.process is not None
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise AssertionError(f"still running after {timeout}s:\n{self.logs()}") from None

    async def stop(self) -> int:
        """SIGTERM, as the kubelet sends; the process should exit cleanly."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.wait(20)

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def writes_outside_tmp(self) -> list[str]:
        return self.report.read_text(encoding="utf-8").splitlines()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def answers(pod: Pod, http: aiohttp.ClientSession, url: str) -> int | None:
    """The HTTP status at url, None while nothing listens; fails if the pod died."""
    assert pod.running(), f"the pod exited:\n{pod.logs()}"
    try:
        async with http.get(url) as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return None


async def test_api_image_serves_and_writes_nothing_outside_tmp(
    emulated: Callable[[str], EmulatedImage], tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    pod = Pod(
        emulated("permisos-api"),
        tmp_path,
        env={
            "PERMISOS_API_HOST": "127.0.0.1",
            "PERMISOS_API_PORT": str(port),
            # Nothing listens there: the engine still loads its driver, and the dispatcher only
            # logs that it cannot reach the database.
            "PERMISOS_API_DATABASE_URL": f"postgresql+psycopg://permisos@127.0.0.1:{free_port()}/p",
        },
    )
    await pod.start()
    try:
        url = f"http://127.0.0.1:{port}"
        assert await eventually(lambda: answers(pod, http, f"{url}/healthz")) == 200
        async with http.get(f"{url}/metrics") as response:
            assert response.status == 200
            assert "permisos_" in await response.text()
    finally:
        code = await pod.stop()
    # uvicorn shuts down cleanly, then exits by the signal it caught.
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in pod.logs()
    assert pod.writes_outside_tmp() == []


async def test_operator_image_creates_jobs_and_writes_nothing_outside_tmp(
    emulated: Callable[[str], EmulatedImage],
    tmp_path: Path,
    http: aiohttp.ClientSession,
    operator_control_plane: ControlPlane,
) -> None:
    kube = await Kube.from_kubeconfig(operator_control_plane.admin_kubeconfig)
    ns = await new_namespace(kube, "image")
    kubeconfig = await operator_kubeconfig(
        operator_control_plane, kube, ns.name, tmp_path, cluster_wide=False
    )
    metrics, health = free_port(), free_port()
    pod = Pod(
        emulated("permisos-operator"),
        tmp_path / "operator",
        env={
            "KUBECONFIG": str(kubeconfig),
            "PERMISOS_OPERATOR_STANDALONE": "true",
            "PERMISOS_OPERATOR_NAMESPACES": json.dumps([ns.name]),
            "PERMISOS_OPERATOR_METRICS_HOST": "127.0.0.1",
            "PERMISOS_OPERATOR_METRICS_PORT": str(metrics),
            "PERMISOS_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{health}/healthz",
        },
    )
    try:
        await ns.create("runnerpools", runner_pool())
        await ns.create("permitrequests", permit_request("img-0001", paidAt="2026-11-26T10:00:00Z"))
        await pod.start()

        async def jobs() -> list[JSON]:
            assert pod.running(), pod.logs()
            return await ns.objects("jobs")

        await eventually(jobs, timeout=30)
        assert await answers(pod, http, f"http://127.0.0.1:{metrics}/metrics") == 200
        assert await answers(pod, http, f"http://127.0.0.1:{health}/healthz") == 200
    finally:
        code = await pod.stop() if pod.process else 0
        await ns.discard()
        await kube.close()
    assert code == 0, pod.logs()
    assert pod.writes_outside_tmp() == []


async def test_runner_image_issues_a_permit_and_writes_nothing_outside_tmp(
    emulated: Callable[[str], EmulatedImage], tmp_path: Path
) -> None:
    portal = PortalSimulator(PortalConfig(processing_seconds=0.3), users={"operador": "secreto"})
    await portal.start(host="127.0.0.1", port=0)
    termination_log = tmp_path / "termination-log"  # a file the kubelet mounts writable
    try:
        with S3Server() as s3:
            s3.client().create_bucket(Bucket=BUCKET)
            settings = {
                "PERMIT_REQUEST": "img-0001",
                "APPLICATION_ID": "img-0001",
                "SECRET_DIR": str(write_secret(tmp_path / "applicant", APPLICANT)),
                "TERMINATION_LOG": str(termination_log),
                "PORTAL_URL": portal.url,
                "PORTAL_USERNAME": "operador",
                "PORTAL_PASSWORD": "secreto",
                "S3_BUCKET": BUCKET,
                "S3_ENDPOINT_URL": s3.endpoint_url,
                **VEHICLE,
            }
            pod = Pod(
                emulated("permisos-browser-runner"),
                tmp_path / "runner",
                env={**CREDENTIALS, **{f"PERMISOS_RUNNER_{k}": v for k, v in settings.items()}},
                writable=[termination_log],
            )
            await pod.start()
            code = await pod.wait(90)
    finally:
        await portal.stop()
    result = AttemptResult.model_validate_json(termination_log.read_text(encoding="utf-8"))
    assert (code, result.outcome) == (0, "succeeded"), pod.logs()
    assert len(result.artifacts) == 3
    # Python's own writes; Chromium's are its HOME/XDG/TMPDIR, which the image puts in /tmp.
    assert pod.writes_outside_tmp() == []


@pytest.mark.parametrize(
    ("args", "prefix", "path"),
    [
        (None, "PERMISOS_PORTAL_", "/"),  # the image's default: the portal simulator
        (["permisos_sandbox.payments"], "PERMISOS_PAYMENTS_", "/v1/payment_intents"),
    ],
    ids=["portal", "payments"],
)
async def test_sandbox_image_serves_each_simulator(
    emulated: Callable[[str], EmulatedImage],
    tmp_path: Path,
    http: aiohttp.ClientSession,
    args: list[str] | None,
    prefix: str,
    path: str,
) -> None:
    port = free_port()
    pod = Pod(
        emulated("permisos-sandbox"),
        tmp_path,
        args=args,
        env={f"{prefix}HOST": "127.0.0.1", f"{prefix}PORT": str(port)},
    )
    await pod.start()
    try:
        status = await eventually(lambda: answers(pod, http, f"http://127.0.0.1:{port}{path}"))
        assert status < 500
    finally:
        code = await pod.stop()
    assert code == 0, pod.logs()
    assert pod.writes_outside_tmp() == []
