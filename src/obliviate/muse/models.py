"""The MUSE-News-mini target (fine-tuned on forget + retain chunks) and retain-only model (retain chunks alone),
cached under ``models_dir/<recipe digest>/`` and reused by every later run with the same recipe: model, texts,
epochs, learning rate, seed. A folder is complete once its ``finetune.json`` exists (written last)."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from obliviate.io import write_json_atomic
from obliviate.metrics.tokens import encode_windows
from obliviate.models import LoadedModel, load_model, save_model
from obliviate.training.finetune import finetune_on_windows

log = logging.getLogger("obliviate")


@dataclass(frozen=True)
class Recipe:
    model: str
    device: str
    dtype: str
    epochs: int
    learning_rate: float
    batch_size: int
    seed: int
    max_tokens: int

    def digest(self, forget: list[str], retain: list[str]) -> str:
        fixed = {"model": self.model, "dtype": self.dtype, "epochs": self.epochs, "lr": self.learning_rate,
                 "batch": self.batch_size, "seed": self.seed, "tokens": self.max_tokens, "forget": forget,
                 "retain": retain}  # fmt: skip
        return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:16]


def muse_models(recipe: Recipe, forget: list[str], retain: list[str], models_dir: Path, *,
                progress: bool = True) -> tuple[Path, Path]:  # fmt: skip
    """Paths of the target and retain-only models, trained now when the cache lacks them."""
    folder = models_dir / recipe.digest(forget, retain)
    return (_cached(recipe, forget + retain, folder / "target", progress),
            _cached(recipe, retain, folder / "retain-only", progress))  # fmt: skip


def _cached(recipe: Recipe, texts: list[str], path: Path, progress: bool) -> Path:
    if (path / "finetune.json").is_file():
        log.info("reusing the fine-tuned model in %s", path)
        return path
    loaded = load_model(recipe.model, device=recipe.device, dtype=recipe.dtype)
    windows = encode_windows(loaded.tokenizer, texts, recipe.max_tokens)
    stream: list[list[int]] = []
    rng = random.Random(recipe.seed)
    for _ in range(recipe.epochs):  # every text once per epoch, in a seeded order
        order = list(range(len(windows)))
        rng.shuffle(order)
        stream += [windows[i] for i in order]
    started = time.perf_counter()
    losses = finetune_on_windows(loaded.model, stream, pad_id=loaded.tokenizer.pad_token_id,
                                 batch_size=recipe.batch_size, learning_rate=recipe.learning_rate, seed=recipe.seed,
                                 progress=progress, desc=f"fine-tune {path.name}")  # fmt: skip
    if path.exists():  # an incomplete folder from an interrupted build
        import shutil

        shutil.rmtree(path)
    save_model(LoadedModel(loaded.model, loaded.tokenizer, loaded.spec), path)
    facts = {"texts": len(texts), "epochs": recipe.epochs, "steps": len(losses), "first_loss": losses[0],
             "final_loss": sum(losses[-4:]) / len(losses[-4:]), "seconds": time.perf_counter() - started}  # fmt: skip
    write_json_atomic(path / "finetune.json", facts)
    return path
