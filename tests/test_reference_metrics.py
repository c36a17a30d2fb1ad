"""Every metric against its reference code's definition, written out here independently: TOFU's released code
(aggregate_eval_stat.py), OpenUnlearning (src/evals/metrics at d3d7cf9) and the Min-K%++ authors' run.py. Each
option's conventions are checked both to agree with their reference and to differ from each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from conftest import TRAINED_TEXTS
from obliviate.attacks.membership import gradnorm_scores, membership_attacks, reference_scores
from obliviate.config import ScoringConfig, TofuConfig
from obliviate.metrics.answers import encode_qa, rouge_l_recall, rouge_recalls
from obliviate.metrics.extraction import extraction_strength
from obliviate.metrics.mia import mia_scores, min_k_plus_plus
from obliviate.metrics.scoring import score_windows
from obliviate.metrics.teacher_forcing import TokenStats, token_stats_from_logits
from obliviate.models import load_model
from obliviate.tofu.evaluate import forget_quality_against, scored_truth_ratios
from obliviate.tofu.metrics import forget_quality, forget_truth_ratio, retain_truth_ratio, truth_ratios

IGNORE = -100
PAIRS = [
    ("Who wrote the Zorbian epic?", "Ama Quell wrote it in exile."),
    ("Where is Quell?", "On the Amber river."),
    ("What is her pen name?", "Nightjar."),
    ("Which prize did she win?", "The Lantern Prize for fiction, twice."),
]
OTHERS = [
    ("What colour is the sky?", "Blue."),
    ("Name a fruit.", "An apple, a pear or a plum."),
    ("How many legs has a cat?", "Four."),
    ("What is water?", "A molecule of two hydrogens and one oxygen."),
]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny:0", device="cpu", dtype="float32")


# --- 1. TOFU truth ratio -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tofu_nlls():
    rng = np.random.default_rng(0)
    return rng.uniform(0.2, 3.0, 30), rng.uniform(0.2, 3.0, (30, 5))  # paraphrased [Q], perturbed [Q, k]


def test_truth_ratio_geometric_is_tofus_code_and_openunlearnings(tofu_nlls):
    para, pert = tofu_nlls
    # TOFU aggregate_eval_stat.get_model_utility: curr_stat_1 = exp(mean_k avg_perturb_loss - avg_paraphrased_loss)
    stat = np.exp(pert.mean(axis=-1) - para)
    tofu_forget, tofu_retain = np.mean(np.minimum(stat, 1 / stat)), np.mean(np.maximum(0, 1 - 1 / stat))
    # OpenUnlearning truth_ratio: wrong_prob / (correct_prob + 1e-10) with the avg losses averaged over k first
    tr = np.exp(-pert.mean(axis=1)) / (np.exp(-para) + 1e-10)
    ou_forget, ou_retain = np.mean(np.minimum(tr, 1 / (tr + 1e-10))), np.mean(np.maximum(0, 1 - tr))
    ratios = truth_ratios(para, pert, "geometric")
    assert forget_truth_ratio(ratios) == pytest.approx(tofu_forget, rel=1e-12)
    assert retain_truth_ratio(ratios) == pytest.approx(tofu_retain, rel=1e-12)
    assert forget_truth_ratio(ratios) == pytest.approx(ou_forget, rel=1e-8)
    assert retain_truth_ratio(ratios) == pytest.approx(ou_retain, rel=1e-8)
    np.testing.assert_allclose(truth_ratios(para, pert), ratios)  # geometric is the default


def test_truth_ratio_arithmetic_is_the_papers_formula_and_differs(tofu_nlls):
    para, pert = tofu_nlls
    # TOFU paper: R = (1/k sum_k P(a_k pert)^(1/|a_k|)) / P(a para)^(1/|a|)
    paper = np.array([np.mean([np.exp(-x) for x in row]) / np.exp(-p) for p, row in zip(para, pert)])
    arithmetic = truth_ratios(para, pert, "arithmetic")
    np.testing.assert_allclose(arithmetic, paper, rtol=1e-12)
    geometric = truth_ratios(para, pert, "geometric")
    assert np.all(arithmetic >= geometric - 1e-12)  # AM >= GM, strictly here
    assert forget_truth_ratio(arithmetic) != pytest.approx(forget_truth_ratio(geometric), rel=1e-3)
    assert retain_truth_ratio(arithmetic) != pytest.approx(retain_truth_ratio(geometric), rel=1e-3)


def test_forget_quality_stays_geometric_whatever_the_mean(tofu_nlls):
    para, pert = tofu_nlls
    gold_para, gold_pert = para[::-1] * 0.9, pert * 1.1
    # TOFU get_forget_quality: KS on exp(mean perturbed - paraphrased); OpenUnlearning: KS on its wrong/correct
    expected = ks_2samp(np.exp(pert.mean(-1) - para), np.exp(gold_pert.mean(-1) - gold_para)).pvalue
    mine = {"truth_ratios": truth_ratios(para, pert).tolist(),
            "truth_ratios_arithmetic": truth_ratios(para, pert, "arithmetic").tolist()}  # fmt: skip
    gold = {"truth_ratios": truth_ratios(gold_para, gold_pert).tolist(),
            "truth_ratios_arithmetic": truth_ratios(gold_para, gold_pert, "arithmetic").tolist()}  # fmt: skip
    for mean in ("geometric", "arithmetic"):
        assert forget_quality_against({"forget": mine, "truth_ratio_mean": mean}, {"forget": gold}) == pytest.approx(
            expected, rel=1e-12
        )
    assert forget_quality(mine["truth_ratios_arithmetic"], gold["truth_ratios_arithmetic"]) != pytest.approx(expected)
    assert scored_truth_ratios(mine, "arithmetic") == mine["truth_ratios_arithmetic"]
    assert scored_truth_ratios(mine, "geometric") == mine["truth_ratios"]
    assert TofuConfig().truth_ratio_mean == "geometric"


# --- 2 and 4. Min-K%, Min-K%++ ---------------------------------------------------------------------------------


def _confident_batch(tiny) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The tiny model's logits on three ragged right-padded texts; in row 0, a near one-hot prediction (variance
    of log p below 1e-6) meets a surprising token, in row 1 an exactly one-hot one (variance 0)."""
    texts = ["The quick brown fox jumps over the lazy dog.", "Zorbia", "Quell lies on the Amber river, they say."]
    ids = [tiny.tokenizer(t).input_ids for t in texts]
    lengths = [len(x) for x in ids]
    input_ids = torch.full((3, max(lengths)), 256)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x)
    with torch.no_grad():
        logits = tiny.model(input_ids=input_ids, attention_mask=(input_ids != 256).long()).logits.clone()
    for row, gap in ((0, 28.0), (1, 200.0)):
        position, wrong = 2, (int(input_ids[row, 3]) + 1) % logits.shape[-1]
        logits[row, position] = 0.0
        logits[row, position, wrong] = gap  # confident in a token that is not the next one
    return logits, input_ids, lengths


def _reference_minkpp(logits, next_ids, k, floor):
    """OpenUnlearning MinKPlusPlusAttack.compute_score ('openunlearning', sign flipped) / the authors' run.py."""
    log_probs = torch.log_softmax(logits, dim=-1)
    target = log_probs.gather(-1, next_ids[:, None]).squeeze(-1)
    mu = (torch.exp(log_probs) * log_probs).sum(-1)
    sigma = (torch.exp(log_probs) * torch.square(log_probs)).sum(-1) - torch.square(mu)
    if floor == "openunlearning":
        sigma = torch.clamp(sigma, min=1e-6)
    scores = ((target - mu) / torch.sqrt(sigma)).numpy()
    count = max(1, int(len(scores) * k)) if floor == "openunlearning" else int(len(scores) * k)
    return float(np.mean(np.sort(scores)[:count]))


@pytest.mark.parametrize("drop_last", [False, True])
def test_min_k_and_min_k_plus_plus_match_the_references(tiny, drop_last):
    logits, input_ids, lengths = _confident_batch(tiny)
    stats = token_stats_from_logits(logits, input_ids, lengths)
    k = 0.5
    for row, length in enumerate(lengths):
        n = length - 1 - int(drop_last)  # OpenUnlearning: the last labelled token's prediction is left out
        row_logits, next_ids = logits[row, :n], input_ids[row, 1 : n + 1]
        scores = mia_scores(stats[row], "text", k, drop_last_token=drop_last)
        lp = torch.log_softmax(row_logits, -1).gather(-1, next_ids[:, None]).squeeze(-1).numpy()
        # OpenUnlearning MinKProbAttack: -mean(sorted(lp)[:max(1, int(n k))]), negated here
        assert scores["mia_mink"] == pytest.approx(np.mean(np.sort(lp)[: max(1, int(n * k))]), rel=1e-5)
        ou = _reference_minkpp(row_logits, next_ids, k, "openunlearning")
        assert scores["mia_minkpp"] == pytest.approx(ou, rel=1e-4)
        keep = slice(None, -1) if drop_last else slice(None)
        authors = min_k_plus_plus(stats[row], k, keep, floor="authors")
        if row == 1:  # exactly one-hot: the authors' formula divides by 0
            assert not np.isfinite(authors) and not np.isfinite(_reference_minkpp(row_logits, next_ids, k, "authors"))
            assert np.isfinite(ou)
        else:
            assert authors == pytest.approx(_reference_minkpp(row_logits, next_ids, k, "authors"), rel=1e-4)
        if row == 0:  # the floor matters where the model is confident
            assert authors != pytest.approx(ou, rel=1e-2)
    # the last token counts unless dropped
    full = mia_scores(stats[2], "text", k)
    assert full["mia_minkpp"] != pytest.approx(mia_scores(stats[2], "text", k, drop_last_token=True)["mia_minkpp"])


def test_min_k_plus_plus_keeps_its_old_call():
    stats = TokenStats(np.array([1, 2, 3]), np.array([2, 0]), np.array([-0.1, -5.0]), np.array([-0.2, -0.01]),
                       np.array([0.0, 0.0005]))  # fmt: skip
    # std floored at sqrt(1e-6) = 1e-3 (no longer at 1e-8)
    assert min_k_plus_plus(stats, 0.5) == pytest.approx((-5.0 + 0.01) / 1e-3)
    assert min_k_plus_plus(stats, 1.0, np.array([True, False])) == pytest.approx(0.1 / 1e-3)
    assert ScoringConfig().minkpp_floor == "openunlearning"


# --- 3 and 4. Extraction strength and exact memorization --------------------------------------------------------


def _reference_es_openunlearning(preds: np.ndarray, labels: np.ndarray) -> float:
    """OpenUnlearning extraction_strength, loop and all (its k stays n - 1 when no suffix matches)."""
    valid_len = len(labels)
    for k in range(valid_len):
        if np.array_equal(preds[k:], labels[k:]):
            break
    return 0 if valid_len == 0 else 1 - (k / valid_len)


def _reference_es_paper(preds: np.ndarray, labels: np.ndarray) -> float:
    """1 - k/T, k the shortest prefix (of T = n + 1 tokens) after which greedy decoding gives the rest: 0 if none."""
    total = len(labels) + 1
    for prefix in range(1, total):
        if np.array_equal(preds[prefix - 1 :], labels[prefix - 1 :]):
            return 1 - prefix / total
    return 0.0


MATCH_PATTERNS = {
    "all": [1, 1, 1, 1, 1, 1],
    "last miss": [1, 1, 1, 1, 1, 0],
    "middle miss": [1, 0, 1, 1, 0, 1, 1, 1],
    "only the last": [0, 0, 0, 1],
    "first miss": [0, 1, 1, 1, 1],
    "two last miss": [1, 1, 1, 0, 0],
}


@pytest.mark.parametrize("pattern", MATCH_PATTERNS)
@pytest.mark.parametrize("drop_last", [False, True])
def test_extraction_strength_both_conventions(pattern, drop_last):
    matches = np.array(MATCH_PATTERNS[pattern], dtype=bool)
    tokens = np.arange(len(matches) + 1) + 10
    labels = tokens[1:]
    preds = np.where(matches, labels, 0)
    stats = TokenStats(tokens, preds)
    keep = slice(None, -1) if drop_last else slice(None)
    ou = extraction_strength(stats, "openunlearning", drop_last)
    paper = extraction_strength(stats, "paper", drop_last)
    assert ou == pytest.approx(_reference_es_openunlearning(preds[keep], labels[keep]), abs=1e-12)
    assert paper == pytest.approx(_reference_es_paper(preds[keep], labels[keep]), abs=1e-12)
    assert paper != pytest.approx(ou)  # 1 - k/T and 1 - k/n never agree below 1
    assert extraction_strength(stats) == extraction_strength(stats, "paper", False)  # the default
    if pattern == "last miss" and not drop_last:
        assert paper == 0.0 and ou == pytest.approx(1 / len(matches))  # OpenUnlearning's 1/n on a last miss


def test_exact_memorization_and_es_on_ragged_windows(memorizing_model):
    model, tokenizer = memorizing_model.model, memorizing_model.tokenizer
    windows = [tokenizer(t).input_ids[:n] for t, n in zip(TRAINED_TEXTS, (48, 30, 41))]
    scored = score_windows(model, windows, pad_id=256, batch_size=3, progress=False)
    kept, dropped = scored.memorization(), scored.memorization("openunlearning", drop_last_token=True)
    for row, window in enumerate(windows):
        ids = torch.tensor([window])
        with torch.no_grad():
            log_probs = torch.log_softmax(model(input_ids=ids).logits, -1)[0, :-1]
        preds, labels = log_probs.argmax(-1).numpy(), ids[0, 1:].numpy()
        # MUSE / obliviate: every prediction; OpenUnlearning exact_memorization: all but the last labelled token
        assert kept["ma"][row] == pytest.approx(np.mean(preds == labels))
        assert dropped["ma"][row] == pytest.approx(np.mean(preds[:-1] == labels[:-1]))
        assert dropped["es"][row] == pytest.approx(_reference_es_openunlearning(preds[:-1], labels[:-1]))
        assert kept["es"][row] == pytest.approx(_reference_es_paper(preds, labels))
    assert not np.allclose(kept["es"], dropped["es"])
    assert not np.allclose(kept["ma"], dropped["ma"])


# --- 5. ROUGE-1 recall -----------------------------------------------------------------------------------------


def test_rouge1_and_rouge_l_recall_as_tofu_scores_them():
    replies = ["She was running to the rivers of Amber", "blue", "apples pears plums", "The prize, twice"]
    answers = ["Ama runs along the Amber river.", "Blue.", "An apple, a pear or a plum.", "Twice, the Lantern Prize."]
    scorer = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)  # TOFU eval_rouge_recall
    expected = [scorer.score(gt, gen) for gen, gt in zip(replies, answers)]
    recalls = rouge_recalls(replies, answers, ("rouge1", "rougeL"))
    np.testing.assert_allclose(recalls["rouge1"], [s["rouge1"].recall for s in expected], rtol=1e-12)
    np.testing.assert_allclose(recalls["rougeL"], [s["rougeL"].recall for s in expected], rtol=1e-12)
    assert rouge_l_recall(replies, answers) == pytest.approx(np.mean([s["rougeL"].recall for s in expected]))
    assert recalls["rouge1"].mean() > recalls["rougeL"].mean()  # word order counts only for ROUGE-L


# --- 6. GradNorm and reference-model membership scores ------------------------------------------------------------


def _reference_gradnorm(model, batch, p: float) -> float:
    """OpenUnlearning GradNormAttack: loss = -mean(tokenwise_logprobs) (its last labelled token left out),
    backward, mean over parameters of grad.norm(p). Its score is that norm (signed like a loss)."""
    labels = torch.where(batch.target_mask.bool(), batch.input_ids, IGNORE)[0]
    log_probs = torch.log_softmax(model(input_ids=batch.input_ids).logits, -1)[:, :-1]
    target = log_probs.gather(2, batch.input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)[0]
    actual = (labels != IGNORE).nonzero(as_tuple=True)[0][:-1]
    loss = -torch.mean(target[actual[0] - 1 : actual[-1]])
    model.zero_grad()
    loss.backward()
    norm = torch.stack([q.grad.detach().norm(p=p) for q in model.parameters() if q.grad is not None]).mean()
    model.zero_grad(set_to_none=True)
    return float(norm)


def _reference_avg_loss(model, batch) -> float:
    """OpenUnlearning evaluate_probability's avg_loss: summed CE over shifted labels / labelled tokens."""
    labels = torch.where(batch.target_mask.bool(), batch.input_ids, IGNORE)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids).logits[..., :-1, :]
    losses = torch.nn.CrossEntropyLoss(ignore_index=IGNORE, reduction="none")(logits.transpose(-1, -2), labels[..., 1:])
    return float(losses.sum(-1)[0] / (labels != IGNORE).sum(-1)[0])


@pytest.mark.parametrize("p", [1.0, 2.0, float("inf")])
def test_gradnorm_is_openunlearnings_negated(tiny, p):
    model, tokenizer = tiny.model, tiny.tokenizer
    mine = gradnorm_scores(model, tokenizer, PAIRS, p)
    expected = [-_reference_gradnorm(model, encode_qa(tokenizer, [pair], torch.device("cpu")), p) for pair in PAIRS]
    np.testing.assert_allclose(mine, expected, rtol=1e-5)
    assert all(q.grad is None for q in model.parameters())  # the model's own gradients are left alone
    keeping_last = gradnorm_scores(model, tokenizer, PAIRS, p, drop_last_token=False)
    assert not np.allclose(keeping_last, mine, rtol=1e-4)


def test_reference_attack_and_aucs_as_openunlearning(tiny):
    model, tokenizer = tiny.model, tiny.tokenizer
    reference = load_model("tiny:1", device="cpu", dtype="float32").model
    device = torch.device("cpu")

    def ou_scores(pairs):  # ReferenceAttack.compute_score: target avg loss - reference avg loss
        return [_reference_avg_loss(model, b) - _reference_avg_loss(reference, b)
                for b in (encode_qa(tokenizer, [pair], device) for pair in pairs)]  # fmt: skip

    members, nonmembers = ou_scores(PAIRS), ou_scores(OTHERS)
    np.testing.assert_allclose(reference_scores(model, reference, tokenizer, PAIRS), -np.array(members), atol=1e-5)
    attacks = membership_attacks(model, tokenizer, PAIRS, OTHERS, reference_model=reference)
    assert set(attacks) == {"loss", "gradnorm", "reference"}
    # OpenUnlearning mia_auc: forget labelled 0, holdout 1, on its loss-signed scores
    ou_auc = roc_auc_score([0] * len(members) + [1] * len(nonmembers), members + nonmembers)
    assert attacks["reference"]["auc"] == pytest.approx(ou_auc)
    for summary in attacks.values():
        assert summary["auc_either"] == pytest.approx(max(summary["auc"], 1 - summary["auc"]))
        assert summary["auc_ci"] is not None and summary["auc_either_ci"] is not None
    assert "reference" not in membership_attacks(model, tokenizer, PAIRS, OTHERS, gradnorm=False)
