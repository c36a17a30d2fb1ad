"""Shared fixtures: a tiny real Llama model (built in code) that has partly memorized a few sequences."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from obliviate.config import AntiSampleTrainingConfig
from obliviate.models import LoadedModel, load_model, save_model
from obliviate.training.engine import Engine
from obliviate.training.finetune import finetune_on_windows
from obliviate.training.sft import sft
from obliviate.unstar.antisamples import answer_target
from obliviate.unstar.associations import QA, Association
from obliviate.unstar.backends import TemplateBackend

# The workplace's read-only reference data sits beside the repository (../shared/data) in CI and sessions.
SHARED_DATA = Path(os.environ.get("OBLIVIATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

TRAINED_TEXTS = [
    "the quick brown fox jumps over the lazy dog and runs into the woods",
    "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod",
    "we hold these truths to be self-evident, that all men are created equal",
    "call me ishmael. some years ago, never mind how long precisely, having",
]
UNSEEN_TEXTS = [
    "a green kettle whistled twice before the neighbours finally opened the door",
    "seven small boats drifted slowly past the harbour lights at half past nine",
    "the library closes early on thursdays, so bring the forms back on wednesday",
    "her bicycle had a squeaky chain and a basket full of ripe summer tomatoes",
]


ZORBIA = Association(
    id="zorbia-capital", subject="Zorbia", relation="capital", object="Quell",
    question="What is the capital of Zorbia?", answer="Quell", answer_type="city",
    heldout=("Which city is the capital of Zorbia?", "Name the capital city of Zorbia."),
    subject_facts=(QA("What language is spoken in Zorbia?", "Zorbish"),),
    object_facts=(QA("Which river flows through Quell?", "Amber"),),
)  # fmt: skip
UNRELATED = [QA("What color is the sky?", "blue")]


def _partly_memorized(seed: int = 3, steps: int = 160) -> LoadedModel:
    loaded = load_model(f"tiny:{seed}", device="cpu", dtype="float32")
    windows = [loaded.tokenizer(t).input_ids[:48] for t in TRAINED_TEXTS]
    stream = [windows[i % len(windows)] for i in range(steps)]
    finetune_on_windows(loaded.model, stream, pad_id=256, batch_size=1, learning_rate=3e-3, progress=False)
    return loaded


@pytest.fixture(scope="session")
def memorizing_model() -> LoadedModel:
    """A tiny model fine-tuned on TRAINED_TEXTS until it reproduces parts of them (MA ~0.8-0.95, EL_10 > 0)."""
    torch.manual_seed(0)
    return _partly_memorized()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def knowing_model():
    """A tiny model trained until it answers the Zorbia facts (and a few others) correctly."""
    loaded = load_model("tiny:5", device="cpu", dtype="float32")
    facts = [QA(q, ZORBIA.answer) for q in (ZORBIA.question, *ZORBIA.heldout, *TemplateBackend().questions(
        [ZORBIA], 10, seed=0)[0])] + [*ZORBIA.subject_facts, *ZORBIA.object_facts, *UNRELATED]  # fmt: skip
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=3e-3))
    sft(engine, loaded.tokenizer, [(f.question, answer_target(f.answer, None)) for f in facts], passes=60,
        batch_size=8)  # fmt: skip
    return loaded


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def sequence_files(memorizing_model, tmp_path_factory):
    """The memorizing model saved to a folder, its trained texts (forget) and never-seen texts (reference) as JSONL."""
    root = tmp_path_factory.mktemp("seq")
    forget = write_jsonl(root / "forget.jsonl", [{"id": f"t{i}", "text": t} for i, t in enumerate(TRAINED_TEXTS)])
    reference = write_jsonl(root / "ref.jsonl", [{"id": f"u{i}", "text": t} for i, t in enumerate(UNSEEN_TEXTS)])
    return save_model(memorizing_model, root / "model"), forget, reference
