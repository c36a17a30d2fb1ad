"""The config of ``obliviate unlearn --method unstar`` on the associations and of ``obliviate antisamples``: UnSTAR's
method config (methods/unstar.py) plus what the run reads and writes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from obliviate.config import AntiSampleTrainingConfig, ModelConfig, Seed
from obliviate.methods.unstar import EndpointConfig, UnstarMethodConfig

__all__ = ["EndpointConfig", "UnstarConfig"]


class UnstarConfig(UnstarMethodConfig):
    """UnSTAR's knobs (inherited) plus the inputs, evaluation and output of a run."""

    method: Literal["unstar"] = "unstar"
    model: ModelConfig = Field(default_factory=ModelConfig)
    forget: str = Field("builtin:associations", description="associations to cut (file or builtin:associations)")
    unrelated: str | None = Field("builtin:unrelated", description="facts about neither entity (evaluation)")
    retain: str | None = Field("builtin:retain", description="facts for the STaR retain step (training)")
    unknown: str | None = Field(
        "builtin:unknown", description="facts the model does not know: membership non-members (a forgotten fact "
        "should look like one of these, neither more nor less likely)"
    )
    limit: int | None = Field(None, ge=1, description="only the first N associations")
    eval_judge: list[str] = Field(default_factory=lambda: ["exact"], description="judge for the evaluation sets")
    relearn_steps: int = Field(5, ge=0, description="relearning check: steps on half the held-out paraphrases")
    leak_k: int = Field(
        16, ge=0, description="leakage under sampling: replies sampled at temperature 1 per held-out question (0: off)"
    )
    quantization_bits: list[int] = Field(
        default_factory=lambda: [8, 4], description="quantization attack: bit widths to re-ask at ([] disables)"
    )
    training: AntiSampleTrainingConfig = Field(default_factory=AntiSampleTrainingConfig)
    seed: Seed = 0
    save_model: bool = True
    output_dir: str = "runs"
    progress: bool = True
