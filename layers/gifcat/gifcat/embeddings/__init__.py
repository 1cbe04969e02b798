"""Embedding models for the embedding stage: MiniLM for text, CLIP for frames, bounded GIF decoding.

Only numpy, onnxruntime, tokenizers and Pillow at run time; torch is for scripts/export_clip.py alone.
"""

from gifcat.embeddings.artefacts import ArtefactError, ModelFiles, locate_clip, locate_minilm, models_dir
from gifcat.embeddings.frames import FrameLimits, GifDecodeError, clip_preprocess, sample_frames, scan_gif
from gifcat.embeddings.image import ClipEncoder
from gifcat.embeddings.text import TextEncoder, l2_normalise

__all__ = [
    "ArtefactError",
    "ClipEncoder",
    "FrameLimits",
    "GifDecodeError",
    "ModelFiles",
    "TextEncoder",
    "clip_preprocess",
    "l2_normalise",
    "locate_clip",
    "locate_minilm",
    "models_dir",
    "sample_frames",
    "scan_gif",
]
