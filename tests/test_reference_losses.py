"""The question-answer methods' losses equal the field's reference code on identical inputs. Each reference formula
is re-typed here from its source, not taken from obliviate: OpenUnlearning (locuslab/open-unlearning d3d7cf9,
src/trainer/unlearn/*.py and src/trainer/utils.py), TOFU (locuslab/tofu dataloader.py,
CustomTrainerForgetting.compute_loss), the SimNPO authors (OPTML-Group/Unlearn-Simple TOFU/dataloader.py) and
WMDP's RMU as OpenUnlearning ports it. Where obliviate offers the other convention too, both are pinned and shown
to differ on ragged batches (answers of very different lengths), so these tests can fail."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from obliviate.errors import ConfigError
from obliviate.methods import METHODS
from obliviate.methods.objective import encode_qa, idk_pairs, sequence_batch
from obliviate.methods.rmu import RMU, default_layer
from obliviate.models import load_model

CPU = torch.device("cpu")
FORGET = [
    ("Who wrote it?", "Ann."),
    ("Where was the author of the Quell trilogy born?",
     "She was born in a small fishing village on the northern coast of Zorbia, many years ago."),
    ("What is her pen name?", "Mira Vale, after her grandmother."),
]  # fmt: skip
RETAIN = [
    ("What colour is the sky?", "Blue."),
    ("Which river flows through the capital of Zorbia?",
     "The Amber river, which floods the lower town every spring and feeds the old mills."),
]  # fmt: skip
SEQUENCES = [list(range(40, 52)), list(range(60, 100)), list(range(100, 120))]


def close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def differ(a: torch.Tensor, b: torch.Tensor) -> None:
    """Apart by far more than float error (the agreements above hold to rtol 1e-5)."""
    assert abs(a.item() - b.item()) > 1e-4 * max(abs(b.item()), 1e-2), (a.item(), b.item())


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny:0", device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def tiny(loaded):
    """The tiny model (2 decoder blocks) with confident next-token distributions, and a different frozen reference."""
    with torch.no_grad():
        loaded.model.model.norm.weight.mul_(40)  # logits std ~7 instead of ~0.2
    reference = copy.deepcopy(loaded.model).eval().requires_grad_(False)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return loaded.model, reference


@pytest.fixture(scope="module")
def batches(loaded):
    tok = loaded.tokenizer
    return {
        "forget": encode_qa(tok, FORGET, CPU),
        "retain": encode_qa(tok, RETAIN, CPU),
        "idk": encode_qa(tok, idk_pairs([q for q, _ in FORGET]), CPU),
        "sequences": sequence_batch(SEQUENCES, tok.pad_token_id, CPU),
        "retain_sequences": sequence_batch(SEQUENCES[::-1], tok.pad_token_id, CPU),
    }


# ---- the references, re-typed -------------------------------------------------------------------------------------


def labels(batch) -> torch.Tensor:
    """The reference data's labels: token ids on answers, -100 on prompts and padding; plain sequences as
    OpenUnlearning's pretraining data (every token but index 0, which never gets a loss)."""
    out = batch.input_ids.clone()
    out[batch.target_mask == 0] = -100
    out[:, 0] = -100
    return out


def hf_loss(model, batch) -> torch.Tensor:
    """``model(**inputs).loss``: Hugging Face's causal-LM loss, one token mean over the whole batch."""
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=labels(batch)).loss


def cross_entropy_token_mean(model, batch) -> torch.Tensor:
    """The same, written out: flattened shifted logits, nn.CrossEntropyLoss(ignore_index=-100)."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
    return torch.nn.CrossEntropyLoss(ignore_index=-100)(shifted, labels(batch)[:, 1:].reshape(-1))


def batch_nll_sums(model, batch) -> torch.Tensor:
    """OpenUnlearning's compute_batch_nll: each row's summed NLL over its labelled tokens."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    per_token = torch.nn.CrossEntropyLoss(ignore_index=-100, reduction="none")(
        logits[:, :-1].transpose(-1, -2), labels(batch)[:, 1:]
    )
    return per_token.sum(dim=-1)


def mean_of_answer_means(model, batch) -> torch.Tensor:
    """The other convention: each answer's per-token mean NLL, then the mean over the answers."""
    counts = (labels(batch)[:, 1:] != -100).sum(dim=-1)
    return (batch_nll_sums(model, batch) / counts).mean()


def dpo(model, ref, win, lose, beta) -> torch.Tensor:
    """OpenUnlearning's compute_dpo_loss (win None: NPO)."""
    win_ratio = 0.0 if win is None else -(batch_nll_sums(model, win) - batch_nll_sums(ref, win))
    lose_ratio = -(batch_nll_sums(model, lose) - batch_nll_sums(ref, lose))
    return -2 / beta * F.logsigmoid(beta * (win_ratio - lose_ratio)).mean()


def kl_all_positions(model, ref, batch) -> torch.Tensor:
    """OpenUnlearning's compute_kl_divergence / TOFU's KL retain term."""
    with torch.no_grad():
        ref_logits = ref(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    ref_logp = F.log_softmax(ref_logits, dim=-1).view(-1, ref_logits.shape[-1])
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    cur_logp = F.log_softmax(logits, dim=-1).view(-1, logits.shape[-1])
    return F.kl_div(cur_logp, ref_logp, reduction="batchmean", log_target=True)


def kl_answer_positions(model, ref, batch) -> torch.Tensor:
    """KL(ref || model) per next-token distribution predicting an answer token, averaged over those positions."""
    with torch.no_grad():
        ref_logp = F.log_softmax(ref(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, -1)
    cur_logp = F.log_softmax(model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits, -1)
    per_position = F.kl_div(cur_logp, ref_logp, reduction="none", log_target=True).sum(-1)[:, :-1]
    keep = labels(batch)[:, 1:] != -100
    return per_position[keep].mean()


def simnpo_reference(model, batch, beta, delta) -> torch.Tensor:
    """OpenUnlearning's SimNPO forget term (the authors' is the same with their gamma as delta)."""
    loss_mask = labels(batch) != -100
    forget_loss = batch_nll_sums(model, batch) / loss_mask.sum(-1) - delta
    return -F.logsigmoid(beta * forget_loss).mean() * 2 / beta


def layer_output(model, batch, k) -> torch.Tensor:
    """What a forward hook on model.model.layers[k] sees (WMDP / OpenUnlearning's forward_with_cache)."""
    cache = []
    handle = model.model.layers[k].register_forward_hook(
        lambda module, inputs, output: cache.append(output[0] if isinstance(output, tuple) else output)
    )
    model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    handle.remove()
    return cache[0]


def activation_loss(a, b, mask) -> torch.Tensor:
    """OpenUnlearning's RMU compute_activation_loss."""
    squared = F.mse_loss(a, b, reduction="none")
    summed = (squared * mask.unsqueeze(-1).expand_as(squared)).mean(dim=2).sum(dim=1)
    return (summed / mask.sum(dim=-1)).mean()


def objective(name, **settings):
    spec = METHODS.get(name)
    return spec.objective(spec.make_config(**settings))


# ---- 1. NLL reduction ----------------------------------------------------------------------------------------------


def test_the_token_mean_is_hugging_faces_outputs_loss(tiny, batches):
    model = tiny[0]
    for batch in (batches["forget"], batches["sequences"]):
        close(hf_loss(model, batch), cross_entropy_token_mean(model, batch))
        differ(hf_loss(model, batch), mean_of_answer_means(model, batch))  # ragged: the conventions differ


@pytest.mark.parametrize("kind", ["forget", "sequences"])
def test_ga_is_minus_the_batch_nll_in_either_convention(tiny, batches, kind):
    model, batch = tiny[0], batches[kind]
    tokens = objective("ga").loss(model, None, batch)
    answers = objective("ga", nll_reduction="answers").loss(model, None, batch)
    close(tokens, -hf_loss(model, batch))
    close(answers, -mean_of_answer_means(model, batch))
    differ(tokens, answers)


@pytest.mark.parametrize("kind", ["qa", "sequences"])
def test_graddiff_nll_matches_openunlearning_and_tofu(tiny, batches, kind):
    model = tiny[0]
    forget, retain = (batches["forget"], batches["retain"]) if kind == "qa" else (
        batches["sequences"], batches["retain_sequences"])  # fmt: skip
    tokens = objective("graddiff", retain_weight=0.7).loss(model, None, forget, retain)
    close(tokens, -hf_loss(model, forget) + 0.7 * hf_loss(model, retain))
    answers = objective("graddiff", retain_weight=0.7, nll_reduction="answers").loss(model, None, forget, retain)
    close(answers, -mean_of_answer_means(model, forget) + 0.7 * mean_of_answer_means(model, retain))
    differ(tokens, answers)


def test_npo_and_idkdpo_match_compute_dpo_loss_with_the_retain_nll_in_either_convention(tiny, batches):
    (model, ref), f, r, idk = tiny, batches["forget"], batches["retain"], batches["idk"]
    npo = objective("npo", beta=0.1, retain_weight=10.0).loss(model, ref, f, r)
    close(npo, dpo(model, ref, None, f, beta=0.1) + 10.0 * hf_loss(model, r))
    npo_answers = objective("npo", beta=0.1, retain_weight=10.0, nll_reduction="answers").loss(model, ref, f, r)
    close(npo_answers, dpo(model, ref, None, f, beta=0.1) + 10.0 * mean_of_answer_means(model, r))
    differ(npo, npo_answers)
    idkdpo = objective("idkdpo", beta=0.1, retain_weight=2.0).loss(model, ref, f, r, idk)
    close(idkdpo, dpo(model, ref, idk, f, beta=0.1) + 2.0 * hf_loss(model, r))
    idkdpo_answers = objective("idkdpo", beta=0.1, retain_weight=2.0, nll_reduction="answers").loss(
        model, ref, f, r, idk
    )
    close(idkdpo_answers, dpo(model, ref, idk, f, beta=0.1) + 2.0 * mean_of_answer_means(model, r))


def test_idknll_is_the_nll_of_the_idk_answers_plus_the_retain_nll(tiny, batches):
    model, r, idk = tiny[0], batches["retain"], batches["idk"]
    tokens = objective("idknll").loss(model, None, batches["forget"], r, idk)
    close(tokens, hf_loss(model, idk) + hf_loss(model, r))
    answers = objective("idknll", nll_reduction="answers").loss(model, None, batches["forget"], r, idk)
    close(answers, mean_of_answer_means(model, idk) + mean_of_answer_means(model, r))
    differ(tokens, answers)


# ---- 2. GradDiff's KL ------------------------------------------------------------------------------------------------


def test_graddiff_kl_over_all_positions_is_openunlearnings_batchmean_kl(tiny, batches):
    (model, ref), f, r = tiny, batches["forget"], batches["retain"]
    every = objective("graddiff_kl").loss(model, ref, f, r)
    close(every, -hf_loss(model, f) + kl_all_positions(model, ref, r))
    answer = objective("graddiff_kl", kl_positions="answer").loss(model, ref, f, r)
    close(answer, -hf_loss(model, f) + kl_answer_positions(model, ref, r))
    differ(every, answer)
    # the direction: KL(reference || model), not the reverse
    with torch.no_grad():
        reverse = kl_all_positions(ref, model, r)
    differ(kl_all_positions(model, ref, r), reverse)


# ---- 3. SimNPO -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["qa", "sequences"])
def test_simnpo_matches_openunlearning_with_its_margin_and_forget_weight(tiny, batches, kind):
    model = tiny[0]
    forget, retain = (batches["forget"], batches["retain"]) if kind == "qa" else (
        batches["sequences"], batches["retain_sequences"])  # fmt: skip
    assert objective("simnpo").forget_weight == 0.125  # OpenUnlearning's configs/trainer/SimNPO.yaml gamma
    # the confident tiny model's answers cost ~35-43 nats a token: a margin of 40 keeps log sigmoid unsaturated
    settings = {"beta": 0.1, "gamma": 40.0}
    reference = objective("simnpo", **settings).loss(model, None, forget, retain)
    close(reference, 0.125 * simnpo_reference(model, forget, beta=0.1, delta=40.0) + hf_loss(model, retain))
    paper = objective("simnpo", margin_convention="paper", **settings).loss(model, None, forget, retain)
    avg_nll = batch_nll_sums(model, forget) / (labels(forget) != -100).sum(-1)
    paper_forget = -(2 / 0.1) * F.logsigmoid(0.1 * avg_nll - 40.0).mean()
    close(paper, 0.125 * paper_forget + hf_loss(model, retain))
    differ(reference, paper)
    answers = objective("simnpo", nll_reduction="answers", **settings).loss(model, None, forget, retain)
    close(answers, 0.125 * simnpo_reference(model, forget, beta=0.1, delta=40.0) + mean_of_answer_means(model, retain))


# ---- 4. RMU ----------------------------------------------------------------------------------------------------------


def test_rmu_layer_k_is_the_output_of_decoder_block_k(tiny, batches):
    model, batch = tiny[0], batches["forget"]
    hidden = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    for k in (0, 1):
        close(RMU(layer=k).activations(model, batch), layer_output(model, batch, k))
    close(RMU(layer=0).activations(model, batch), hidden.hidden_states[1])
    # the last block's output is read before the final norm, which HF's last hidden_states entry has applied
    differ(RMU(layer=1).activations(model, batch).norm(), hidden.hidden_states[2].norm())


@pytest.mark.parametrize("kind", ["qa", "sequences"])
def test_rmu_matches_openunlearnings_masked_per_row_activation_loss(tiny, batches, kind):
    (model, ref) = tiny
    forget, retain = (batches["forget"], batches["retain"]) if kind == "qa" else (
        batches["sequences"], batches["retain_sequences"])  # fmt: skip
    method = RMU(layer=1, coefficient=0.5, retain_weight=3.0, seed=4)
    loss = method.loss(model, ref, forget, retain)
    control = method._control
    assert control.shape == (64,) and (control > 0).all()  # torch.rand, normalised, times the coefficient
    close(control.norm(), torch.tensor(0.5))
    h_forget = layer_output(model, forget, 1)
    forget_term = activation_loss(h_forget, control.expand_as(h_forget), labels(forget) != -100)
    with torch.no_grad():
        h_ref = layer_output(ref, retain, 1)
    retain_term = activation_loss(layer_output(model, retain, 1), h_ref, labels(retain) != -100)
    close(loss, forget_term + 3.0 * retain_term)
    # obliviate's former reduction, one token mean over the batch, gives another value on ragged batches
    mask = (labels(forget) != -100).float()
    token_mean = ((h_forget - control).pow(2).mean(-1) * mask).sum() / mask.sum()
    differ(forget_term, token_mean)


@pytest.mark.parametrize("kind", ["forget", "sequences"])
def test_rmu_runs_with_its_default_settings_on_the_tiny_model(tiny, batches, kind):
    (model, ref), batch = tiny, batches[kind]
    method = objective("rmu")
    assert method.layer is None and method.layer_of(2) == 0
    loss = method.loss(model, ref, batch, batch)
    assert torch.isfinite(loss) and loss.item() > 0


def test_rmu_default_layer_is_wmdps_seven_of_thirty_two_and_always_in_range():
    assert default_layer(32) == 7
    assert 0 <= default_layer(2) < 2 and 0 <= default_layer(30) < 30
    assert all(0 <= default_layer(n) < n for n in range(1, 81))


def test_rmu_rejects_a_layer_out_of_range_clearly(tiny, batches):
    (model, ref), batch = tiny, batches["forget"]
    with pytest.raises(ConfigError, match=r"RMU layer 2 is out of range.*2 decoder blocks.*0\.\.1"):
        RMU(layer=2).loss(model, ref, batch, batch)
    with pytest.raises(ValidationError):
        METHODS.get("rmu").make_config(layer=-1)
