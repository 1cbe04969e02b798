"""Where the model artefacts live, and proof that they are the files we built.

Layout under the models directory (one sub-directory per model, each with its own manifest so a CLIP
export made on another machine can be copied in as a unit):

    <models>/minilm/model.onnx, tokenizer.json, manifest.json   (scripts/build_models.py)
    <models>/clip/image.onnx, image.int8.onnx, text.onnx, tokenizer.json, config.json, manifest.json
        (scripts/export_clip.py)

A manifest records the sha256 and size of every file in its directory plus the model's name; the model
identity reported in StageOutput.model is "<name>@<first 8 hex of the main file's sha256>".
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_VAR = "GIFCAT_MODELS_DIR"
DEFAULT_RELATIVE = Path(".artifacts") / "models"
MANIFEST = "manifest.json"
MINILM_DIR = "minilm"
CLIP_DIR = "clip"
BUILD_HINT = "run `python scripts/build_models.py` (or set GIFCAT_MODELS_DIR to a directory it built)"


class ArtefactError(RuntimeError):
    """Model artefacts are missing or do not match their manifest; the message says what to run."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def repo_root(start: Path | None = None) -> Path | None:
    """The nearest ancestor holding pyproject.toml: the package's checkout first, then the cwd."""
    starts = [start] if start else [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for origin in starts:
        for candidate in (origin, *origin.parents):
            if (candidate / "pyproject.toml").is_file():
                return candidate
    return None


def models_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`explicit`, else $GIFCAT_MODELS_DIR, else <repo>/.artifacts/models, else ./.artifacts/models."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    root = repo_root()
    return (root if root else Path.cwd()) / DEFAULT_RELATIVE


def write_manifest(directory: Path, name: str, main_file: str, extra: dict[str, Any] | None = None) -> dict:
    """Hash every file in `directory` (except the manifest) and write manifest.json; returns it."""
    files = {
        p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    if main_file not in files:
        raise ArtefactError(f"{directory}: main file {main_file!r} is missing")
    manifest = {"name": name, "main": main_file, "files": files, **(extra or {})}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtefactError(f"{path} is missing: {BUILD_HINT}") from None
    except json.JSONDecodeError as exc:
        raise ArtefactError(f"{path} is not valid JSON ({exc}): {BUILD_HINT}") from exc
    if not isinstance(data, dict) or "files" not in data or "name" not in data:
        raise ArtefactError(f"{path} has no 'name'/'files': {BUILD_HINT}")
    return data


def verify_manifest(directory: Path, full: bool = True) -> dict[str, Any]:
    """Check every listed file exists with its recorded size (and sha256 when `full`); returns the manifest.

    Hashing 23 MB costs ~20 ms; the stage does it once at load (cold start) so a swapped file is caught.
    """
    manifest = read_manifest(directory)
    problems = []
    for fname, meta in manifest["files"].items():
        path = directory / fname
        if not path.is_file():
            problems.append(f"{fname} missing")
        elif path.stat().st_size != meta.get("bytes"):
            problems.append(f"{fname} size {path.stat().st_size} != {meta.get('bytes')}")
        elif full and sha256_file(path) != meta.get("sha256"):
            problems.append(f"{fname} sha256 differs from the manifest")
    if problems:
        raise ArtefactError(f"{directory}: " + "; ".join(problems) + f": {BUILD_HINT}")
    return manifest


@dataclass(frozen=True)
class ModelFiles:
    """One model's directory, its verified manifest and the identity string stages report."""

    directory: Path
    manifest: dict[str, Any]

    def path(self, fname: str) -> Path:
        return self.directory / fname

    def sha256(self, fname: str) -> str:
        return str(self.manifest["files"][fname]["sha256"])

    @property
    def identity(self) -> str:
        return self.identity_of(self.manifest["main"])

    def identity_of(self, fname: str) -> str:
        """"<variant name>@<sha prefix>" for one graph (e.g. the per-channel MiniLM variant)."""
        name = self.manifest.get("variants", {}).get(fname, self.manifest["name"])
        return f"{name}@{self.sha256(fname)[:8]}"


def locate(root: Path, sub: str, required: tuple[str, ...], verify: bool = True) -> ModelFiles | None:
    """The model in <root>/<sub> if its files are there (None when the directory is absent)."""
    directory = root / sub
    if not directory.is_dir():
        return None
    manifest = verify_manifest(directory, full=verify) if verify else read_manifest(directory)
    missing = [f for f in required if f not in manifest["files"]]
    if missing:
        raise ArtefactError(f"{directory}: manifest lists no {missing}: {BUILD_HINT}")
    return ModelFiles(directory, manifest)


def locate_minilm(root: Path, verify: bool = True) -> ModelFiles:
    found = locate(root, MINILM_DIR, ("model.onnx", "tokenizer.json"), verify)
    if found is None:
        raise ArtefactError(f"MiniLM artefacts not found under {root / MINILM_DIR}: {BUILD_HINT}")
    return found


def locate_clip(root: Path, verify: bool = True) -> ModelFiles | None:
    """CLIP is optional: None when absent (the stage then runs on text alone and says so)."""
    return locate(root, CLIP_DIR, ("image.onnx", "text.onnx", "tokenizer.json", "config.json"), verify)
