"""Average the weights of k2-nano checkpoints that share a tokenizer (a "model soup").

Two continuations of the same model sit close together in weight space, and their element-wise mean
often answers better than either. The shipped k2-nano is such a mean; this module is the recipe that
makes it:

    python -m k2nb.nano.average --out DIR MODEL_A MODEL_B [MODEL_C ...]

Every input is loaded with the engine's own loader (so a malformed folder fails with its clear
error), the configs must be equal and the tokenizers byte-identical, and the output folder has the
same layout as a trained one: config.json, model.safetensors, tokenizer files and a README.md model
card (the first input's card plus a section naming the inputs).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from k2nb.engine.loader import load_model, save_checkpoint

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def average_checkpoints(models: list[Path], out: Path) -> Path:
    """Write the element-wise mean of ``models`` (float32) to ``out``; returns ``out``."""
    if len(models) < 2:
        raise ValueError("averaging needs at least two model folders")
    first = Path(models[0])
    for other in map(Path, models[1:]):
        for name in TOKENIZER_FILES:
            if (first / name).read_bytes() != (other / name).read_bytes():
                raise ValueError(f"{other} has another {name} than {first}: only continuations of one "
                                 "model (same tokenizer) can be averaged")
    loaded = [load_model(m, device="cpu", dtype=torch.float32, progress=False, load_tokenizer=False)
              for m in models]
    if any(m.config.to_dict() != loaded[0].config.to_dict() for m in loaded[1:]):
        raise ValueError("the models have different configs; only models of one shape can be averaged")
    states = [m.state_dict() for m in loaded]
    mean = {k: sum(s[k] for s in states) / len(states) for k in states[0]}
    model = loaded[0]
    model.load_state_dict(mean)
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, out)
    for name in TOKENIZER_FILES:
        shutil.copyfile(first / name, out / name)
    card = (first / "README.md").read_text() if (first / "README.md").is_file() else "# k2-nano\n"
    names = ", ".join(f"`{m}`" for m in models)
    card += (f"\n## Weight average\nThis checkpoint is the element-wise mean of the weights of {names} "
             f"(`python -m k2nb.nano.average --out {out} {' '.join(map(str, models))}`); the training "
             "section above is that of the first of them.\n")
    (out / "README.md").write_text(card)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Average the weights of k2-nano checkpoints.")
    parser.add_argument("--out", required=True, type=Path, help="model folder to write")
    parser.add_argument("models", nargs="+", type=Path, help="two or more model folders")
    args = parser.parse_args(argv)
    out = average_checkpoints(args.models, args.out)
    print(json.dumps({"out": str(out), "models": [str(m) for m in args.models]}))


if __name__ == "__main__":
    main()
