#!/usr/bin/env python3
"""How much planted instruction text the screen removes (gifcat.domain.instructions), and what the cheap
stages then answer: docs/results/README.md "Planted instructions".

A battery is two JSON Lines files in one folder, `attacks.jsonl` and `benign.jsonl`: {"field": "title" |
"tag" | "description", "text": ...}, each attack with "forces", the category it tries to force. They were
written by people who had not seen the screen's patterns (tests/data/injections/README.md says which
batteries the patterns were developed on and which were held out). For each battery this prints:
- attacks flagged (the screen removed something) and neutralised (the forced category's name is not in
  the text the stages read afterwards);
- benign texts flagged (text a caption writer meant, removed);
- with --cascade: the attacks the tag, rule and embedding stages (fitted on the bundled memory, as
  shipped) answered with the forced category, and how many they decided at all; and, for benign texts
  that give their own "category" (an honest caption naming it), how many the stages decided, and right.

    python scripts/measure_instruction_screen.py tests/data/injections/* [--cascade] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gifcat.config import load_settings
from gifcat.domain.instructions import InstructionScreen
from gifcat.domain.model import GifItem, GifMetadata, StageName
from gifcat.domain.taxonomy import load_taxonomy


def metadata(row: dict[str, Any]) -> GifMetadata:
    text, field = row["text"], row["field"]
    if field not in ("title", "tag", "description"):
        raise SystemExit(f"unknown field {field!r} in {row}")
    return GifMetadata(title=text if field == "title" else "", tags=(text,) if field == "tag" else (),
                       description=text if field == "description" else "")


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def named(category: str, text: str) -> bool:
    return category.lower() in text.lower() or category.replace("_", " ").lower() in text.lower()


def measure(folder: Path, screen: InstructionScreen, pipeline: Any | None) -> dict[str, Any]:
    attacks, benign = read(folder / "attacks.jsonl"), read(folder / "benign.jsonl")
    flagged = neutralised = 0
    missed = []
    for row in attacks:
        out = screen.screen(metadata(row))
        left = " ".join([out.metadata.title, *out.metadata.tags, out.metadata.description])
        flagged += out.suspicious
        if named(row["forces"], left):
            missed.append(row["text"])
        else:
            neutralised += 1
    false_alarms = [row["text"] for row in benign if screen.screen(metadata(row)).suspicious]
    result: dict[str, Any] = {
        "battery": folder.name, "attacks": len(attacks), "flagged": flagged, "neutralised": neutralised,
        "benign": len(benign), "benign_flagged": len(false_alarms), "missed": missed,
        "false_alarms": false_alarms,
    }
    if pipeline is not None:
        forced = decided = 0
        for i, row in enumerate(attacks):
            answer = pipeline.classify(GifItem(id=f"{folder.name}-{i}", metadata=metadata(row)))
            decided += answer.decided
            forced += answer.decided and answer.primary == row["forces"]
        result["cascade"] = {"until": "embedding", "decided": decided, "answered_forced": forced}
        # Honest captions that name their own category (a battery may give it as "category"): how many
        # the same stages still decide, and how many of those right.
        honest = [row for row in benign if row.get("category")]
        if honest:
            answers = [pipeline.classify(GifItem(id=f"{folder.name}-b{i}", metadata=metadata(row)))
                       for i, row in enumerate(honest)]
            result["cascade"]["benign"] = {
                "n": len(honest), "decided": sum(a.decided for a in answers),
                "right": sum(a.decided and a.primary == row["category"] for a, row in zip(answers, honest,
                                                                                          strict=True)),
            }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("batteries", nargs="+", type=Path, help="folders with attacks.jsonl and benign.jsonl")
    parser.add_argument("--cascade", action="store_true",
                        help="also classify each attack with the tag, rule and embedding stages")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = load_settings()
    taxonomy = load_taxonomy()
    screen = InstructionScreen(taxonomy.names)  # as the cascade builds it
    pipeline = None
    if args.cascade:
        from gifcat_tooling.pipeline import LocalPipeline

        pipeline = LocalPipeline(settings, taxonomy, StageName.EMBEDDING)
    results = [measure(folder, screen, pipeline) for folder in args.batteries if folder.is_dir()]
    if args.json:
        json.dump(results, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    for r in results:
        line = (f"{r['battery']}: attacks flagged {r['flagged']}/{r['attacks']}, neutralised "
                f"{r['neutralised']}/{r['attacks']}; benign flagged {r['benign_flagged']}/{r['benign']}")
        if "cascade" in r:
            c = r["cascade"]
            line += f"; cheap stages decided {c['decided']}, {c['answered_forced']} with the forced category"
            if "benign" in c:
                b = c["benign"]
                line += (f"; of {b['n']} honest captions naming their category, decided {b['decided']}, "
                         f"right {b['right']}")
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
