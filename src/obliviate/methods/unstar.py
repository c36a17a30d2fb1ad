"""UnSTAR (anti-sample unlearning): the model writes paraphrased questions, plausible wrong answers and misleading
rationales, and is fine-tuned on them. Its config holds every generation and training knob; the generator-driven
loop lives in :mod:`obliviate.unstar` (run by the associations benchmark). On question-answer sets that carry
wrong answers (TOFU's perturbed answers) the anti-samples come from the data and the objective below trains on them
(UnSTAR's dataset backend)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from obliviate.methods.idknll import IdkNLL
from obliviate.methods.spec import MethodConfig, MethodSpec, register


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base_url: str = Field(..., description="OpenAI-compatible API root, e.g. http://localhost:8000/v1")
    model: str = Field("default", description="model name sent to the endpoint")
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key (if any)")
    timeout: float = Field(60.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        # the URL is written to config.yaml and printed: a key in it would end up on disk and on screen
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as http://localhost:8000/v1")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must not carry credentials (user:password@, a ?query or #fragment); put the key in an "
                             "environment variable and name it in endpoint.api_key_env")  # fmt: skip
        return url

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
            raise ValueError("must be the NAME of an environment variable that holds the key (e.g. OPENAI_API_KEY), "
                             "not the key itself")  # fmt: skip
        return name


class UnstarMethodConfig(MethodConfig):
    name: Literal["unstar"] = "unstar"
    generator: Literal["self", "local", "openai", "template"] = Field(
        "self", description="who writes questions, wrong answers and rationales (template: deterministic)"
    )
    generator_model: str | None = Field(None, description="generator: local - a local model directory / spec")
    endpoint: EndpointConfig | None = Field(None, description="generator: openai - the endpoint")
    fallback: bool = Field(True, description="fall back to the template backend per item when a model fails")
    judge: list[str] = Field(default_factory=lambda: ["exact", "fuzzy"], description="exact|fuzzy|embedding|llm")
    seed_questions: int = Field(8, ge=1, description="seed questions per association")
    wrong_answers: int = Field(3, ge=1, description="distinct wrong answers per association (cycled over questions)")
    escalations: int = Field(2, ge=0, description="new questions per association and round")
    target_unlearned: int = Field(12, ge=1, description="stop once each association has this many unlearned")
    max_rounds: int = Field(6, ge=1)
    passes: int = Field(4, ge=1, description="SFT passes over a round's anti-samples")
    batch_size: int = Field(4, ge=1, description="anti-samples per optimizer step")
    rationale: bool = Field(True, description="train on misleading rationales (off: wrong answer only)")
    escalation: bool = Field(True, description="grow the question pool from unlearned questions")
    retain_step: bool = Field(True, description="STaR retain step on the retain facts")
    consolidation_rounds: int = Field(
        0, ge=0, description="retain-only rounds after the pool is exhausted (measured: they cost unrelated facts)"
    )
    probe_samples: int = Field(0, ge=0, description="sampled replies per probe besides the greedy one (any hit: known)")
    retain_replies: Literal["original", "current"] = Field(
        "original", description="retain-step targets: the model's correct replies before unlearning, or its current"
    )
    train_on_prompt: bool = Field(False, description="count the question tokens in the loss (authors did)")
    unlikelihood_weight: float = Field(
        0.0, ge=0, description="remove, not hide: weight of an unlikelihood term on the true answer's tokens in the "
        "model's own replies that still give it, beside the anti-samples (0: the paper's UnSTAR)",
    )
    antisamples: str | None = Field(None, description="train from this anti-sample JSONL instead of generating")

    @model_validator(mode="after")
    def _generator_needs(self) -> UnstarMethodConfig:
        if self.generator == "openai" and self.endpoint is None:
            raise ValueError("generator 'openai' needs an endpoint (endpoint.base_url)")
        if self.generator == "local" and not self.generator_model:
            raise ValueError("generator 'local' needs generator_model")
        return self


class AntiSampleNLL(IdkNLL):
    """UnSTAR's training step on a QA benchmark: fine-tune the forget questions towards anti-samples (wrong
    answers, or misleading rationales ending in one), passed as the alternative batch, plus the retain NLL."""

    name = "antisample"


register(MethodSpec(
    "unstar", "anti-samples: paraphrased questions, wrong answers, misleading rationales", UnstarMethodConfig,
    objective=lambda cfg: AntiSampleNLL(), antisample=True, needs=frozenset({"wrong_answers"}),
))  # fmt: skip
