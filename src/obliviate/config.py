"""Typed configuration. Every CLI flag maps to a field here; any config can also be loaded from YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from obliviate.errors import ConfigError

T = TypeVar("T", bound=BaseModel)


# a random seed: numpy, torch and Python's random all take 0 .. 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=2**32 - 1, description="random seed (0 .. 2**32 - 1)")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Strict):
    model: str = Field("embedded", description="embedded | tiny[:SEED] | local HF directory | hub id")
    device: str = Field("auto", description="auto (CUDA when present) | cpu | cuda[:N]")
    dtype: str = Field("auto", description="auto (bf16 on CUDA, else fp32) | float32 | bfloat16 | float16")
    trust_remote_code: bool = False


class ScoringConfig(_Strict):
    max_tokens: int = Field(200, ge=2, description="window length T in tokens (longer texts are cut)")
    batch_size: int = Field(8, ge=1, description="sequences per teacher-forced forward pass")
    el_n: list[int] = Field(default_factory=lambda: [10], description="EL_n values of n; empty disables EL")
    el_stride: int = Field(1, ge=1, description="use every k-th prefix for EL_n")
    decode_batch_size: int = Field(256, ge=1, description="rows per batched greedy decode for EL_n")
    min_k: float = Field(0.2, gt=0, le=1, description="fraction of lowest tokens for Min-K% / Min-K%++")
    minkpp_floor: Literal["openunlearning", "authors"] = Field(
        "openunlearning",
        description="Min-K%++ normaliser: openunlearning floors the variance of log p at 1e-6 "
        "(OpenUnlearning); authors: no floor (Min-K%++'s code: a one-hot prediction divides by 0)",
    )
    es_convention: Literal["paper", "openunlearning"] = Field(
        "paper",
        description="ES: paper = 1 - k/T, k the shortest prefix whose greedy continuation is the rest of "
        "the window; openunlearning = 1 - k/n over the n predicted tokens (OpenUnlearning's code, 1/n on a last miss)",
    )
    drop_last_token: bool = Field(
        False, description="OpenUnlearning's convention: MA, ES, Min-K% and Min-K%++ skip the last token's prediction"
    )
    neighbours: int = Field(5, ge=0, description="perturbations per sequence for the neighbourhood score")
    perturb_fraction: float = Field(0.15, gt=0, le=1, description="share of words changed per perturbation")
    k_sigma: float = Field(2.0, gt=0, description="calibrated outlier band: unseen mean +- k * std")
    fixed_low: float = Field(0.15, description="fixed outlier rule: MA <= fixed_low")
    fixed_high: float = Field(0.60, description="fixed outlier rule: MA >= fixed_high")
    bootstrap: int = Field(
        1000, ge=0, description="bootstrap resamples for the intervals of band edges, c(D_f), AUCs (0: off)"
    )
    confidence: float = Field(0.95, gt=0, lt=1, description="confidence level of the bootstrap intervals")
    seed: Seed = 0

    @field_validator("el_n")
    @classmethod
    def _positive_n(cls, values: list[int]) -> list[int]:
        if any(n < 1 for n in values):
            raise ValueError("every EL n must be >= 1")
        return sorted(set(values))

    @model_validator(mode="after")
    def _el_fits_the_window(self) -> ScoringConfig:
        if self.el_n and max(self.el_n) >= self.max_tokens:
            raise ValueError(f"EL_{max(self.el_n)} scores {max(self.el_n)}-token continuations inside a window of "
                             f"max_tokens={self.max_tokens}: every EL n must be below max_tokens")  # fmt: skip
        return self


class TrainingScoringConfig(ScoringConfig):
    """Scoring for commands whose main work is training (testbed, unlearn): EL_n is off unless asked for,
    also when only some other scoring field is set in YAML or on the command line."""

    el_n: list[int] = Field(default_factory=list, description="EL_n values of n (default none: EL is slow)")


class MemorizationRunConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    sequences: str = Field("builtin:famous", description="sequence file (jsonl/json/csv/txt) or builtin:NAME")
    reference: str | None = Field(None, description="never-seen sequences; default builtin:fresh for builtins")
    limit: int | None = Field(None, ge=1, description="use only the first N sequences of each set")
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    output_dir: str = "runs"
    progress: bool = True


class TestbedConfig(_Strict):
    __test__ = False  # not a pytest class

    model: ModelConfig = Field(default_factory=ModelConfig)
    source: str = Field(..., description="text source (csv/jsonl/json/txt) to draw sequences from")
    forget: int = Field(32, ge=1, description="number of sequences to inject (the forget set)")
    heldout: int = Field(32, ge=1, description="never-injected sequences (unseen reference, MIA non-members)")
    filler: int = Field(64, ge=0, description="ordinary documents mixed into the injection fine-tune")
    tokens: int = Field(128, ge=8, description="sequence length in tokens")
    min_repeats: int = Field(1, ge=1)
    max_repeats: int = Field(16, ge=1, description="repetition counts spread from min to max over the forget set")
    learning_rate: float = Field(1e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    retain_only: bool = Field(False, description="also train the retain-only model (same recipe, no forget set)")
    seed: Seed = 0
    scoring: TrainingScoringConfig = Field(default_factory=TrainingScoringConfig)
    output_dir: str = "runs"
    progress: bool = True


class LoraSettings(_Strict):
    enabled: bool = Field(False, description="train a LoRA adapter (PEFT) instead of all weights")
    rank: int = Field(32, ge=1, description="LoRA rank r (authors' peft path: 32)")
    alpha: float = Field(64.0, gt=0, description="LoRA alpha (authors: 64)")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = Field("all-linear", description="modules to adapt (PEFT syntax)")


class TrainingConfig(_Strict):
    learning_rate: float = Field(5e-5, gt=0, description="Adam learning rate (authors: 5e-5)")
    betas: tuple[float, float] = Field((0.9, 0.98), description="Adam betas (authors: 0.9, 0.98)")
    weight_decay: float = Field(0.0, ge=0)
    max_steps: int = Field(150, ge=0, description="cap on optimizer steps (one step = one pass over the selection)")
    micro_batch_size: int = Field(8, ge=1, description="sequences per forward/backward inside one step")
    max_grad_norm: float | None = Field(None, gt=0, description="clip the gradient norm (off by default)")
    max_loss: float = Field(100.0, gt=0, description="stop safely once |forget NLL| exceeds this (explosion)")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="Accelerate mixed precision")
    checkpoint_every: int = Field(0, ge=0, description="save a resumable checkpoint every N steps (0: never)")
    keep_checkpoints: int = Field(2, ge=1, description="keep only the last N checkpoints (each holds weights + Adam)")
    lora: LoraSettings = Field(default_factory=LoraSettings)
    sharding: Literal["none", "fsdp"] = Field(
        "none", description="fsdp: shard weights, gradients and Adam state over the processes (torch FSDP2; launch "
        "with torchrun); one process trains unsharded either way",
    )  # fmt: skip
    seed: Seed = 0


class GuardrailConfig(_Strict):
    """Thresholds of the guardrail verdicts (warn / fail) every run's metrics.json and report carry."""

    membership_auc_warn: float = Field(0.60, ge=0.5, le=1, description="an attack's AUC either way from which it warns")
    membership_auc_fail: float = Field(0.70, ge=0.5, le=1, description="an attack's AUC either way from which it fails")
    outliers_fail: int = Field(0, ge=0, description="fail when more forget sequences than this lie outside the band")
    perplexity_warn: float = Field(1.5, gt=1, description="held-out perplexity ratio after / before that warns")
    perplexity_fail: float = Field(3.0, gt=1, description="held-out perplexity ratio after / before that fails")
    accuracy_drop_warn: float = Field(5.0, ge=0, description="zero-shot accuracy points lost that warn")
    accuracy_drop_fail: float = Field(15.0, ge=0, description="zero-shot accuracy points lost that fail")
    model_utility_drop_warn: float = Field(0.1, ge=0, le=1, description="TOFU model utility share lost that warns")
    model_utility_drop_fail: float = Field(0.3, ge=0, le=1, description="TOFU model utility share lost that fails")
    retained_warn: float = Field(
        0.9, ge=0, le=1, description="share of a retention set's accuracy kept below which it warns"
    )
    retained_fail: float = Field(0.7, ge=0, le=1, description="share kept below which it fails")
    gibberish_warn: float = Field(0.1, ge=0, le=1, description="share of self-repeating replies that warns")
    gibberish_fail: float = Field(0.3, ge=0, le=1, description="share of self-repeating replies that fails")


class UtilityConfig(_Strict):
    data_dir: str | None = Field(None, description="folder of zero-shot multiple-choice files (e.g. piqa.jsonl)")
    benchmarks: list[str] = Field(default_factory=lambda: ["piqa", "arc_easy"], description="file stems to run")
    limit: int | None = Field(200, ge=1, description="items per benchmark (a fixed seeded subset)")
    batch_size: int = Field(16, ge=1)
    perplexity: bool = Field(True, description="perplexity on the reference (never-seen) text")
    fluency_prompts: int = Field(8, ge=0, description="greedy continuations of never-seen text for fluency (0: off)")
    before: bool = Field(True, description="also evaluate the model before unlearning")
    seed: Seed = 0


class UnlearnConfig(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: str = Field("sga", description="a registered method that runs on sequences (obliviate methods)")
    forget: str = Field("builtin:famous", description="sequences to forget (file or builtin:NAME)")
    reference: str | None = Field(None, description="never-seen sequences; default builtin:fresh for builtins")
    retain: str | None = Field(None, description="sequences to keep (the retain term of graddiff, npo, ...)")
    limit: int | None = Field(None, ge=1, description="use only the first N sequences of each set")
    preset: Literal["default", "paper"] = Field(
        "default", description="paper: the authors' released settings (gamma 0.70, stop on the mean)"
    )
    stop: Literal["mean", "outliers"] | None = Field(
        None, description="mean: mean MA < tau (authors); outliers: c(D_f) high side = 0 (default)"
    )
    tau: float | None = Field(None, description="mean-rule threshold on MA (default: the unseen mean)")
    gamma: float | None = Field(None, description="SGA/TAU selection threshold (default: band upper edge; paper: 0.70)")
    ta_coefficient: float | None = Field(None, lt=0, description="TA edit scale c (default: TA -3, TAU -1)")
    first_threshold: float | None = Field(
        None, gt=0, le=1, description="TA: GA first while mean MA >= this (0.9); TAU: SGA until below (0.5)"
    )
    reset_optimizer: bool = Field(False, description="TAU: reset Adam's state when switching to TA")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    scoring: TrainingScoringConfig = Field(default_factory=TrainingScoringConfig)
    utility: UtilityConfig = Field(default_factory=UtilityConfig)
    retain_only_model: str | None = Field(
        None,
        description="a model trained without the forget set (a testbed's retain_only/): PrivLeak and KS forget "
        "quality against it",
    )
    resume: str | None = Field(None, description="checkpoint directory of an earlier run to continue from")
    save_model: bool = Field(True, description="write the unlearned model (or adapter) into the run directory")
    output_dir: str = "runs"
    progress: bool = True

    def stop_rule(self) -> Literal["mean", "outliers"]:
        return self.stop or ("mean" if self.preset == "paper" else "outliers")

    def gamma_value(self) -> float | None:
        """None: use the calibrated band's upper edge."""
        if self.gamma is not None:
            return self.gamma
        return 0.70 if self.preset == "paper" or self.stop_rule() == "mean" else None


class AntiSampleTrainingConfig(TrainingConfig):
    """UnSTAR's supervised fine-tuning on anti-samples (descent, not ascent): its own defaults."""

    learning_rate: float = Field(4e-5, gt=0, description="Adam learning rate for anti-sample SFT")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas")
    micro_batch_size: int = Field(4, ge=1, description="examples per forward/backward inside one step")

    @field_validator("sharding")
    @classmethod
    def _replicated_only(cls, value: str) -> str:
        if value != "none":
            raise ValueError("sharding runs in the step-wise loop of the memorization and muse-news benchmarks; "
                             "UnSTAR's anti-sample training keeps full replicas (leave training.sharding=none)")
        return value


class MembershipSettings(BaseModel):
    """The question-answer membership attack's optional scores beside the loss attack (qa and tofu benchmarks)."""

    membership_gradnorm: bool = Field(
        False, description="membership attack: add OpenUnlearning's GradNorm score (one backward pass per pair)"
    )
    membership_reference: str | None = Field(
        None,
        description="membership attack: a reference model (directory, hub id, embedded, tiny) for OpenUnlearning's "
        "reference score (its answer NLL minus the judged model's), e.g. the base model",
    )


class TofuConfig(_Strict, MembershipSettings):
    """``obliviate tofu``: fine-tune on a few TOFU authors, unlearn the forget split, evaluate the field's way."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    method: str = Field("npo", description="a registered method with a question-answer objective")
    tofu: str | None = Field(None, description="TOFU folder of JSON(L) splits (None: the hub, when online)")
    forget_split: Literal["forget01", "forget05", "forget10"] = "forget01"
    truth_ratio_mean: Literal["geometric", "arithmetic"] = Field(
        "geometric",
        description="truth ratio's mean over perturbed answers in the forget score and model utility: "
        "geometric (TOFU's and OpenUnlearning's code) or arithmetic (the TOFU paper's formula); forget quality "
        "always uses the geometric one",
    )
    retain_authors: int = Field(2, ge=1, le=19, description="first N TOFU authors trained besides the forget ones")
    eval_limit: int | None = Field(10, ge=1, description="real-author and world-fact evaluation items")
    retain_eval_limit: int | None = Field(20, ge=1, description="retain evaluation items")
    models_dir: str | None = Field(None, description="cache of the fine-tuned models [OUTPUT_DIR/tofu-models]")
    finetune_epochs: int = Field(5, ge=1)
    finetune_learning_rate: float = Field(2e-4, gt=0)
    epochs: int = Field(3, ge=1, description="unlearning epochs over the forget split")
    learning_rate: float = Field(2e-5, gt=0, description="unlearning Adam learning rate")
    batch_size: int = Field(8, ge=1, description="forget pairs per step (with as many retain pairs)")
    rmu_layer: int | None = Field(
        None, ge=0, description="RMU: decoder block whose output is steered (None: RMU's depth-relative default)"
    )
    relearn_steps: int = Field(5, ge=0, description="relearning attack: SFT steps on half the forget pairs")
    quantization_bits: list[int] = Field(default_factory=lambda: [8, 4], description="quantization attack")
    trace: bool = Field(True, description="forget / retain answer probability after every epoch (the trade-off)")
    attacks: list[Literal["relearning", "paraphrase", "quantization", "membership"]] = Field(
        default_factory=lambda: ["relearning", "paraphrase", "quantization", "membership"], description="attacks to run"
    )
    seed: Seed = 0
    save_model: bool = Field(False, description="save the unlearned model into the run directory")
    output_dir: str = "runs"
    progress: bool = True


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from a YAML file (optional) and dotted overrides such as ``{"scoring.el_n": [5]}``."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"Cannot read config {path}: not UTF-8 text (save it as UTF-8)") from None
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"Cannot read config {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"Config {path} must be a mapping at the top level")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            if isinstance(node.get(key), str):  # ``method: npo`` is short for ``method: {name: npo}``
                node[key] = {"name": node[key]}
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot set {dotted}: {key} is not a section")
        node[leaf] = value
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        where = f" in {path}" if path else ""
        raise ConfigError(f"Invalid configuration{where}: {validation_problems(exc)}") from None


def validation_problems(exc: ValidationError, prefix: str = "", owner: str = "") -> str:
    """The problems of a validation error, one per key (``KEY: what is wrong``), without echoing the values
    given (a value may be a secret, such as a key pasted into a URL)."""
    problems = []
    for err in exc.errors():
        key = prefix + ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"{key} is not a setting{owner}")
        else:
            problems.append(f"{key}: {err['msg']}" if key else err["msg"])
    return "; ".join(problems)
