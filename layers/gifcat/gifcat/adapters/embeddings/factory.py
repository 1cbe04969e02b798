"""The embedding stage wired to its models: MiniLM and (when exported) CLIP from the artefact folder,
and the build-time memory, as `stages.embedding` names them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gifcat.adapters.embeddings.artefacts import (
    BUILD_HINT,
    ArtefactError,
    ModelFiles,
    locate_clip,
    locate_minilm,
)
from gifcat.adapters.embeddings.artefacts import models_dir as resolve_models_dir
from gifcat.adapters.embeddings.image import ClipEncoder
from gifcat.adapters.embeddings.text import TextEncoder
from gifcat.config import Settings
from gifcat.domain.llm.options import LlmOptions
from gifcat.domain.memory import ARTEFACT as MEMORY_ARTEFACT
from gifcat.domain.memory import Learned
from gifcat.domain.ports import FrameLimits
from gifcat.domain.records import LabelledRecord, load_labelled
from gifcat.domain.stages.embedding import EmbeddingOptions, EmbeddingStage
from gifcat.domain.taxonomy import Taxonomy


def build_embedding_stage(
    settings: Settings,
    taxonomy: Taxonomy,
    models_dir: str | Path | None = None,
    labelled: str | Path | Sequence[LabelledRecord] | None = None,
) -> EmbeddingStage:
    """Load the models named by settings from `models_dir` (else $GIFCAT_MODELS_DIR, else the repo's
    .artifacts/models). `labelled` (records or a JSONL path) overrides the `labelled` option."""
    options = settings.options("embedding", EmbeddingOptions)
    root = resolve_models_dir(models_dir)
    minilm = locate_minilm(root, verify=options.verify_checksums)
    text = load_text_encoder(minilm, options)
    clip: ClipEncoder | None = None
    clip_note: str | None = None
    clip_files = locate_clip(root, verify=options.verify_checksums)
    if clip_files is None:
        clip_note = "image: no CLIP artefacts, text only"
    else:
        limits = FrameLimits(
            max_bytes=settings.limits.max_gif_bytes,
            max_canvas_pixels=options.max_canvas_pixels,
            max_frames_decoded=options.max_frames_decoded,
            max_decode_pixels=options.max_decode_pixels,
        )
        clip = ClipEncoder(
            clip_files, threads=options.threads if options.image_threads is None else options.image_threads,
            image_model=options.image_model, limits=limits,
            spin=options.spin,
        )
    source = labelled if labelled is not None else options.labelled
    identity = minilm.identity_of(options.text_model)
    learned = _load_learned(root, options, identity) if labelled is None else None
    records: Sequence[LabelledRecord] | None = None
    if learned is None and source is not None:
        records = load_labelled(source) if isinstance(source, str | Path) else source
    # Whether the LLM step reads a text-less GIF's frames: without CLIP, such an item is otherwise
    # skipped here, and the escalate function is never invoked for it.
    llm = settings.options("llm", LlmOptions) if "llm" in settings.stages else None
    frames_to_llm = llm is not None and llm.images_for(llm.model)
    return EmbeddingStage(
        taxonomy, text, identity, clip, records, options, clip_note, learned, frames_to_llm=frames_to_llm
    )


def _load_learned(root: Path, options: EmbeddingOptions, identity: str) -> Learned | None:
    """The build-time memory artefact, when settings ask for the bundled examples (or name a file)."""
    if options.memory == "auto":
        path = root / MEMORY_ARTEFACT
        if options.labelled != "bundled" or not path.is_file():
            return None
    elif options.memory in ("none", ""):
        return None
    else:
        path = Path(options.memory)
    return Learned.load(path, encoder=identity)


def load_text_encoder(files: ModelFiles, options: EmbeddingOptions) -> TextEncoder:
    """MiniLM as `stages.embedding` names it: graph, threads, spinning (the benchmarks measure this one)."""
    if options.text_model not in files.manifest["files"]:
        extra = " --per-channel" if options.text_model == "model.pc.onnx" else ""
        raise ArtefactError(
            f"{files.directory}: no {options.text_model} (stages.embedding.text_model): {BUILD_HINT}{extra}"
        )
    model, tokenizer = files.path(options.text_model), files.path("tokenizer.json")
    return TextEncoder(model, tokenizer, threads=options.threads, spin=options.spin)
