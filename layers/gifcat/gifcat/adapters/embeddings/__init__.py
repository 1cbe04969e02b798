"""The embedding models: MiniLM and CLIP on ONNX Runtime, GIF frames with Pillow, artefact files."""
