"""Bundle a trained model as named weights: ``data_samples/weights/<name>.pth`` plus its entry in
``manifest.json`` (file, sha256, the read it was trained with, recipe, measured numbers).

The entry's ``read`` holds the fields of the run's training read that shape the r4 affinity
(:data:`hmmnlab.train.checkpoints.CARRIED_READ_FIELDS`) where they differ from the variant's registered defaults, so that
every command runs the weights with the read they were trained with (``Weights.default_read``).
A run's ``state.pth`` and ``best.pth`` record its read (``train_config["read"]``); a bare
checkpoint has none.

    python -m hmmnlab.train.export --from runs/demo-B/state.pth --name demo --read hmmn \\
        --recipe "..." [--metrics metrics.json] [--folder data_samples/weights]

Weights are stored as float16 (:func:`hmmnlab.train.checkpoints.save_half_checkpoint`); loading copies them
into a float32 model. ``--metrics`` merges a JSON object of measured numbers into the entry (run it
again after measuring: the file is not rewritten when only the metrics change).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from hmmnlab.config import ModelConfig
from hmmnlab.model import HMMN
from hmmnlab.train.checkpoints import carried_read, initial_weights, save_half_checkpoint
from hmmnlab.weights import BUNDLED_WEIGHTS, MANIFEST, check_state_dict, sha256_of


def training_read_of(source: str | Path) -> dict | None:
    """The training read a run's ``state.pth`` or ``best.pth`` records (its ``train_config``, or
    the checkpoint meta's); None for a checkpoint that records none."""
    payload = torch.load(Path(source), map_location="cpu", weights_only=False)
    if not isinstance(payload, dict):
        return None
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    config = payload.get("train_config", meta.get("train_config"))
    return config.get("read") if isinstance(config, dict) else None


def update_manifest(folder: Path, entry: dict) -> None:
    """Add or replace the manifest entry of ``entry["name"]`` (metrics merged)."""
    path = folder / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {"weights": []}
    old = {e["name"]: e for e in manifest["weights"]}.get(entry["name"], {})
    if old.get("sha256") == entry.get("sha256", old.get("sha256")):
        entry = {**old, **entry, "metrics": {**old.get("metrics", {}), **entry.get("metrics", {})}}
    others = [e for e in manifest["weights"] if e["name"] != entry["name"]]
    manifest["weights"] = sorted([*others, entry], key=lambda e: e["name"])
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def export(
    source: str | Path,
    name: str,
    *,
    trained_read: str,
    model_config: ModelConfig,
    folder: str | Path = BUNDLED_WEIGHTS,
    description: str = "",
    recipe: str = "",
    meta: dict | None = None,
    read: dict | None = None,
) -> Path:
    """Write ``folder/<name>.pth`` from a run's ``state.pth`` or a checkpoint, and its entry.
    ``read``: the entry's read fields (default: :func:`carried_read` of the read the run's
    ``state.pth`` records; ``{}`` for a checkpoint that records none)."""
    folder = Path(folder)
    if read is None:
        training_read = training_read_of(source)
        read = {} if training_read is None else carried_read(training_read, trained_read)
    state_dict = initial_weights(source)
    model = HMMN(model_config)
    check_state_dict(model, state_dict, str(source))
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True)
    path = folder / f"{name}.pth"
    meta = {"name": name, "trained_read": trained_read, "read": read, "source": str(source),
            **(meta or {})}  # fmt: skip
    save_half_checkpoint(model, path, meta=meta)
    entry = {
        "name": name,
        "file": path.name,
        "sha256": sha256_of(path),
        "trained_read": trained_read,
        "read": read,
        "description": description,
        "recipe": recipe,
    }
    update_manifest(folder, entry)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", help="a run's state.pth or a checkpoint")
    parser.add_argument("--name", required=True)
    parser.add_argument("--read", default="hmmn", help="the r4 read used in training")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--description", default="")
    parser.add_argument("--recipe", default="")
    parser.add_argument("--metrics", default=None, help="JSON file of measured numbers")
    parser.add_argument("--folder", default=str(BUNDLED_WEIGHTS))
    args = parser.parse_args(argv)
    from hmmnlab.config import preset

    folder = Path(args.folder)
    if args.source:
        export(args.source, args.name, trained_read=args.read, model_config=preset(args.preset),
               folder=folder, description=args.description, recipe=args.recipe)  # fmt: skip
    if args.metrics:
        update_manifest(
            folder, {"name": args.name, "metrics": json.loads(Path(args.metrics).read_text())}
        )
    print(f"{folder / MANIFEST}: {args.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
