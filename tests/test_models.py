"""Model loading: the tiny model, local directories (safetensors only), clear errors, safe saving."""

from __future__ import annotations

import pytest
import torch

from obliviate.errors import ModelLoadError
from obliviate.models import load_model, save_model


def test_tiny_model_is_deterministic_per_seed():
    a, b, c = load_model("tiny:1"), load_model("tiny:1"), load_model("tiny:2")
    ids = torch.tensor([a.tokenizer("hello world").input_ids])
    assert torch.equal(a.model(ids).logits, b.model(ids).logits)
    assert not torch.equal(a.model(ids).logits, c.model(ids).logits)
    assert a.tokenizer.decode(ids[0]) == "hello world"


def test_save_and_reload_local_directory(tmp_path):
    original = load_model("tiny:5")
    target = save_model(original, tmp_path / "model")
    assert any(target.glob("*.safetensors")) and not any(target.glob("*.bin"))
    reloaded = load_model(str(target), device="cpu")
    ids = torch.tensor([original.tokenizer("abc def").input_ids])
    assert torch.allclose(original.model(ids).logits, reloaded.model(ids).logits)
    with pytest.raises(FileExistsError):
        save_model(original, target)  # never overwrite


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "config.json is missing"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is a file"),
    ],
)
def test_bad_model_paths_give_clear_errors(tmp_path, setup, fragment):
    with pytest.raises(ModelLoadError, match=fragment):
        load_model(str(setup(tmp_path)))


def test_pickle_weights_are_refused(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="safetensors only"):
        load_model(str(folder))


def test_bad_tiny_spec_and_dtype():
    with pytest.raises(ModelLoadError, match="tiny:SEED"):
        load_model("tiny:abc")
    with pytest.raises(ModelLoadError, match="Unknown dtype"):
        load_model("tiny", dtype="float8")


@pytest.mark.real_model
def test_embedded_model_loads_and_knows_a_fact():
    loaded = load_model("embedded", device="cpu")
    tokenizer = loaded.tokenizer
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = loaded.model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])
