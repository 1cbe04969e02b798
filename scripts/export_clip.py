#!/usr/bin/env python3
"""Export CLIP's two towers to ONNX for the embedding stage (build/test time only: needs torch).

    python scripts/export_clip.py                          # openai/clip-vit-base-patch32 (needs the hub)
    python scripts/export_clip.py --checkpoint ./clip-dir  # a local Hugging Face checkpoint
    python scripts/export_clip.py --tiny                   # tiny random CLIP (tests)
    python scripts/export_clip.py --vit-b32-random         # ViT-B/32-sized random image tower (benchmarks)

Writes <models>/clip/{image.onnx, text.onnx, tokenizer.json, config.json, manifest.json}, where <models>
is --out, else $GIFCAT_MODELS_DIR, else <repo>/.artifacts/models. Both graphs end in L2 normalisation:
image.onnx: pixel_values (N,3,S,S) -> image_embeds (N,D); text.onnx: input_ids, attention_mask -> text_embeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "layers" / "gifcat"))

from gifcat.adapters.embeddings.artefacts import CLIP_DIR, models_dir, write_manifest  # noqa: E402
from gifcat.adapters.embeddings.frames import CLIP_MEAN, CLIP_STD  # noqa: E402

OPSET = 17
BOS, EOS, UNK = "<|startoftext|>", "<|endoftext|>", "<|unk|>"


def _towers(model: Any) -> tuple[Any, Any]:
    """Wrap CLIPModel into two modules ending in L2 normalisation.

    Calls the sub-models and projections directly: get_*_features changed return type in transformers 5.
    """
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vision, self.proj = model.vision_model, model.visual_projection

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            pooled = self.vision(pixel_values=pixel_values)[1]
            return torch.nn.functional.normalize(self.proj(pooled), dim=-1)

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text, self.proj = model.text_model, model.text_projection

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            pooled = self.text(input_ids=input_ids, attention_mask=attention_mask)[1]
            return torch.nn.functional.normalize(self.proj(pooled), dim=-1)

    return ImageTower().eval(), TextTower().eval()


IMAGE_INT8 = "image.int8.onnx"


def quantize_image_tower(src: Path, dest: Path) -> None:
    """int8 per-channel dynamic quantisation of the image tower's MatMul/Gemm weights.

    Measured on a ViT-B/32-sized tower, 4 frames: 90 -> 41 ms on 2 threads, cosine to fp32 0.9999
    (random weights; expect a little less on trained ones). The patch convolution stays fp32.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic suggests pre-processing, loudly
    quantize_dynamic(str(src), str(dest), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"])


def export(model: Any, tokenizer_json: str, out_root: Path, name: str, image_size: int = 224,
           mean: Iterable[float] = CLIP_MEAN, std: Iterable[float] = CLIP_STD, max_text_tokens: int = 77,
           pad_token: str = EOS) -> dict:
    """Export both towers of a transformers CLIPModel plus tokenizer/config; returns the manifest."""
    import torch

    out = out_root / CLIP_DIR
    out.mkdir(parents=True, exist_ok=True)
    image_tower, text_tower = _towers(model)
    # The tracer warns about shape checks it bakes in; they hold for every (batch, tokens) we feed.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            image_tower, (torch.zeros(2, 3, image_size, image_size),), str(out / "image.onnx"),
            input_names=["pixel_values"], output_names=["image_embeds"],
            dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
        ids = torch.ones(2, 8, dtype=torch.int64)
        torch.onnx.export(
            text_tower, (ids, torch.ones_like(ids)), str(out / "text.onnx"),
            input_names=["input_ids", "attention_mask"], output_names=["text_embeds"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "text_embeds": {0: "batch"}},
            opset_version=OPSET, dynamo=False,
        )
    (out / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    config = {"image_size": image_size, "mean": list(mean), "std": list(std),
              "max_text_tokens": max_text_tokens, "pad_token": pad_token,
              "embed_dim": int(model.config.projection_dim)}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    import transformers

    quantize_image_tower(out / "image.onnx", out / IMAGE_INT8)
    extra = {"variants": {"image.onnx": name, IMAGE_INT8: f"{name}-int8", "text.onnx": f"{name}-text"},
             "sources": {"exporter": f"torch {torch.__version__}, transformers {transformers.__version__}, "
                                     f"opset {OPSET}"}}
    return write_manifest(out, name, "image.onnx", extra)


def tiny_tokenizer_json(words: Iterable[str]) -> str:
    """A WordLevel tokenizer over `words`, lower-cased, wrapped in CLIP's BOS/EOS."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    vocab = {BOS: 0, EOS: 1, UNK: 2}
    for word in sorted({w.lower() for w in words}):
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return tok.to_str()


def _default_words() -> list[str]:
    """Words of the bundled taxonomy (descriptions, prompts) so tiny-tokenizer ids are not all <|unk|>."""
    import re

    try:
        from gifcat.domain.taxonomy import load_taxonomy

        tax = load_taxonomy()
        text = " ".join(f"{c.name} {c.description} {' '.join(c.prompts())} {' '.join(c.examples)}"
                        for c in tax.categories)
    except Exception:  # the tiny model is for tests; without a taxonomy a small fixed vocabulary will do
        text = "a gif of funny cute love sad angry dance food sports gaming animals greetings"
    return re.findall(r"\w+|[^\w\s]", text.lower())


def build_random(
    out_root: Path, vision: str = "tiny", words: Iterable[str] | None = None, seed: int = 0
) -> dict:
    """A randomly initialised CLIP, exported like the real one.

    vision="tiny": hidden 32, 2 layers (tests; exports in seconds). vision="vit-b32": ViT-B/32-sized image
    tower (hidden 768, 12 layers, patch 32, 224 px) so its latency equals the real one's; the text tower
    stays tiny since only prototypes use it (once, at load).
    """
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    tok_json = tiny_tokenizer_json(words if words is not None else _default_words())
    vocab_size = len(json.loads(tok_json)["model"]["vocab"])
    text_config = {"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64,
                   "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 77,
                   "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    if vision == "tiny":
        vision_config = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "image_size": 224, "patch_size": 32}
        projection, name = 32, "clip-tiny-random"
    elif vision == "vit-b32":
        vision_config = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                         "num_attention_heads": 12, "image_size": 224, "patch_size": 32}
        projection, name = 512, "clip-vit-b32-random"
    else:
        raise ValueError(f"vision must be 'tiny' or 'vit-b32', not {vision!r}")
    config = CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=projection)
    model = CLIPModel(config).eval()
    return export(model, tok_json, out_root, name)


def export_pretrained(checkpoint: str, out_root: Path, name: str = "clip-vit-b32") -> dict:
    """A Hugging Face checkpoint (hub id or local directory) exported with its own tokenizer and stats."""
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    model = CLIPModel.from_pretrained(checkpoint).eval()
    tokenizer = CLIPTokenizerFast.from_pretrained(checkpoint)
    processor = CLIPImageProcessor.from_pretrained(checkpoint)
    crop = processor.crop_size
    size = int(crop["height"] if isinstance(crop, dict) else crop)
    return export(model, tokenizer.backend_tokenizer.to_str(), out_root, name, image_size=size,
                  mean=processor.image_mean, std=processor.image_std,
                  max_text_tokens=int(tokenizer.model_max_length), pad_token=str(tokenizer.pad_token))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="openai/clip-vit-base-patch32")
    parser.add_argument("--name", default="clip-vit-b32", help="model name recorded in the manifest")
    parser.add_argument("--out", type=Path, default=None, help="models directory (clip/ is created in it)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--tiny", action="store_true", help="tiny random CLIP (tests)")
    group.add_argument("--vit-b32-random", action="store_true", help="ViT-B/32-sized random image tower")
    args = parser.parse_args(argv)
    root = args.out or models_dir()
    if args.tiny:
        manifest = build_random(root, "tiny")
    elif args.vit_b32_random:
        manifest = build_random(root, "vit-b32")
    else:
        manifest = export_pretrained(args.checkpoint, root, args.name)
    print(f"{root / CLIP_DIR}: {manifest['name']} {sorted(manifest['files'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
