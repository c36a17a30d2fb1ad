"""UnSTAR's parts on real components: the judge (MiniLM included), the backends and their per-item fallback,
anti-sample files, association files, and the whole loop on a tiny model that has learned a few facts."""

from __future__ import annotations

import json

import pytest

from conftest import UNRELATED, ZORBIA
from obliviate.config import AntiSampleTrainingConfig
from obliviate.errors import DataError
from obliviate.models.chat import encode_chat_examples
from obliviate.models.generation import Sampling, chat_prompt, generate
from obliviate.training.engine import Engine
from obliviate.unstar.antisamples import AntiSample, answer_target, backend_shares, read_antisamples, write_antisamples
from obliviate.unstar.associations import QA, Association, load_associations
from obliviate.unstar.backends import TemplateBackend
from obliviate.unstar.evaluation import targeted_evaluation
from obliviate.unstar.judge import EmbeddingJudge, ExactJudge, FuzzyJudge, build_judge, mentions, normalize
from obliviate.unstar.pipeline import UnstarPipeline, UnstarSettings, collect


# judge -----------------------------------------------------------------------------------------------------
def test_normalize_and_mentions():
    assert normalize("The  Eiffel-Tower, in PARIS!") == "eiffel tower in paris"
    assert normalize("Twenty one thousand") == "20 1 thousand" and normalize("1,000 km") == "1000 km"
    assert normalize("Café") == "cafe"
    assert mentions("It was J.K. Rowling.", "j k rowling") and not mentions("Parisian food", "Paris")


def test_exact_fuzzy_and_embedding_judges():
    replies = ["The capital of France is Paris.", "It is Lyon.", "Shakespear wrote it", "Rome"]
    answers = ["Paris", "Paris", "Shakespeare", "home"]
    assert ExactJudge().matches(replies, answers) == [True, False, False, False]
    assert FuzzyJudge().matches(replies, answers) == [True, False, True, False]  # short 'home' stays exact
    sims = EmbeddingJudge().matches(["J.K. Rowling wrote it", "Tolkien wrote it"], ["The author is Rowling"] * 2)
    assert sims == [True, False]  # cosine 0.82 vs 0.53 against the 0.6 threshold (authors)
    judge = build_judge(["exact", "fuzzy"])
    assert judge.which(replies, answers) == ["exact", None, "fuzzy", None]
    with pytest.raises(Exception, match="unknown judge kind"):
        build_judge(["psychic"])


# backends and fallback ----------------------------------------------------------------------------------------
class _Junk:
    """A backend whose candidates all fail the filters (as a small model's often do)."""

    name = "junk"

    def questions(self, items, n, seed):
        return [["??"] * n for _ in items]

    def wrong_answers(self, items, n, seed):
        return [[a.answer] * n for a in items]  # the true answer is never a wrong answer


def test_template_backend_and_per_item_fallback():
    other = Association("x", "Ruritania", "capital", "Strelsau", "What is the capital of Ruritania?", "Strelsau",
                        "city")  # fmt: skip
    template = TemplateBackend([ZORBIA, other])
    questions = template.questions([ZORBIA], 5, seed=0)[0]
    assert len(questions) == 5 and all("Zorbia" in q for q in questions)
    wrong = template.wrong_answers([ZORBIA], 4, seed=0)[0]
    assert len(wrong) == 4 and "Quell" not in wrong and set(wrong) <= set(template.pool["city"])
    assert "Strelsau" in template.pool["city"]  # other associations' answers of the same type are distractors
    made = collect([_Junk(), template], "wrong_answers", [ZORBIA], 3, 0, lambda a, t: not mentions(t, a.answer))
    assert len(made[0]) == 3 and {b for _, b in made[0]} == {"template"}
    assert template.rationales([(ZORBIA, "q", "Lyon")], 0) == ["The capital of Zorbia is Lyon."]


# files -----------------------------------------------------------------------------------------------------
def test_antisample_file_roundtrip_and_errors(tmp_path):
    made = {"question": "self", "wrong_answer": "template", "rationale": "self"}
    samples = [AntiSample("What is the capital of Zorbia?", answer_target("Lyon", "Lyon is the seat."), "forget",
                          "zorbia-capital", "Lyon", "Lyon is the seat.", 0, made),
               AntiSample("Sky?", "It is blue.", "retain")]  # fmt: skip
    path = write_antisamples(tmp_path / "a.jsonl", samples)
    assert read_antisamples(path) == samples
    assert samples[0].target == "Lyon is the seat."  # the rationale, which names the wrong answer
    shares = backend_shares(samples)
    assert shares["wrong_answer"] == {"template": {"count": 1, "share": 1.0}}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "target": "t"}\n{"question": "q"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl: line 2: .*target"):
        read_antisamples(bad)
    bad.write_text('{"question": "q", "target": "t", "kind": "maybe"}\n')
    with pytest.raises(DataError, match="kind must be"):
        read_antisamples(bad)


def test_association_file_errors_name_the_line(tmp_path):
    path = tmp_path / "facts.jsonl"
    good = {
        "id": "a",
        "subject": "S",
        "object": "O",
        "question": "Q?",
        "heldout": ["Which Q?"],
        "subject_facts": [{"question": "x", "answer": "y"}],
    }
    path.write_text(
        json.dumps(good) + "\n" + json.dumps(good | {"id": "b", "object_facts": [{"question": "x"}]}) + "\n"
    )
    with pytest.raises(DataError, match=r"facts.jsonl: line 2: 'object_facts'\[0\]"):
        load_associations(path)
    path.write_text(json.dumps(good | {"heldout": []}) + "\n")  # nothing to measure the forget accuracy on
    with pytest.raises(DataError, match=r"facts.jsonl: line 1: needs at least one 'heldout' question"):
        load_associations(path)
    path.write_text(json.dumps(good) + "\n")
    (loaded,) = load_associations(path)
    assert loaded.answer == "O" and loaded.subject_facts == (QA("x", "y"),)


# the loop on a tiny model -------------------------------------------------------------------------------------
def test_chat_examples_mask_the_prompt(knowing_model):
    tok = knowing_model.tokenizer
    (window,), (mask,) = encode_chat_examples(tok, [("Sky?", "Blue.")])
    prompt = tok(chat_prompt(tok, "Sky?"), add_special_tokens=False).input_ids
    assert window[: len(prompt)] == prompt and window[-1] == tok.eos_token_id
    assert mask == [0] * len(prompt) + [1] * (len(window) - len(prompt))
    (_,), (all_ones,) = encode_chat_examples(tok, [("Sky?", "Blue.")], train_on_prompt=True)
    assert set(all_ones) == {1}


def test_generation_is_seeded_and_batched(knowing_model):
    tok, model = knowing_model.tokenizer, knowing_model.model
    prompts = [chat_prompt(tok, q) for q in ("What is the capital of Zorbia?", "What color is the sky?")]
    greedy = generate(model, tok, prompts)
    assert [mentions(r[0], a) for r, a in zip(greedy, ["Quell", "blue"])] == [True, True]
    one_by_one = [generate(model, tok, [p])[0] for p in prompts]
    assert greedy == one_by_one  # left padding does not change greedy replies
    sampled = Sampling(temperature=1.0, n=3, max_new_tokens=8)
    assert generate(model, tok, prompts, sampled, seed=1) == generate(model, tok, prompts, sampled, seed=1)


def test_unstar_loop_cuts_the_association_on_a_tiny_model(knowing_model):
    import copy

    loaded = copy.deepcopy(knowing_model)
    judge = build_judge(["exact"])
    before = targeted_evaluation(loaded.model, loaded.tokenizer, [ZORBIA], UNRELATED, judge)
    assert before["forget"]["accuracy"] == 1.0
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=1e-3))
    settings = UnstarSettings(seed_questions=4, wrong_answers=3, escalations=2, target_unlearned=6, max_rounds=5,
                              passes=4, retain_step=True)  # fmt: skip
    retain = [*ZORBIA.subject_facts, *UNRELATED]
    pipeline = UnstarPipeline(engine, loaded.tokenizer, [ZORBIA], [TemplateBackend([ZORBIA])], judge, settings,
                              retain=retain, progress=False)  # fmt: skip
    result = pipeline.run()
    assert result.steps > 0 and result.rounds[-1]["stop"] in (
        "target reached",
        "the model answers no pool question any more",
    )
    assert all(p.unlearned for p in result.pool) and len(result.pool) > 4  # escalation grew the pool
    forget = [s for s in result.antisamples if s.kind == "forget"]
    assert forget and all(not mentions(s.target, "Quell") for s in forget)
    assert all(s.backends["wrong_answer"] == "template" for s in forget)
    assert not {normalize(s.question) for s in forget} & {normalize(q) for q in ZORBIA.heldout}  # never trained
    after = targeted_evaluation(engine.unwrapped, loaded.tokenizer, [ZORBIA], UNRELATED, judge)
    assert after["forget"]["accuracy"] == 0.0


def test_clean_rationale_keeps_only_usable_misleading_rationales():
    from obliviate.unstar.pipeline import clean_rationale

    good = "Lyon hosts the government. It is the seat of power. Many visit it. Extra sentence."
    assert (
        clean_rationale(good, "Paris", "Lyon") == "Lyon hosts the government. It is the seat of power. Many visit it."
    )
    assert clean_rationale("Lyon, not Paris, is the capital.", "Paris", "Lyon") == ""  # names the true answer
    assert clean_rationale("It is a lovely city.", "Paris", "Lyon") == ""  # does not argue for the wrong answer
    assert clean_rationale("In one or two sentences, explain why the answer is Lyon.", "Paris", "Lyon") == ""
    assert clean_rationale("The answer is Lyon. The answer is Lyon.", "Paris", "Lyon") == ""
    assert clean_rationale("Lyon is it. Lyon is it.", "Paris", "Lyon") == ""  # repeats itself


def test_retain_replies_that_restate_the_cut_association_are_not_trained_on(knowing_model):
    # a retain reply such as 'Quell is the largest city of Zorbia and also its capital' would teach the very
    # association being cut; one naming the subject or object alone is a fact to keep
    import copy

    loaded = copy.deepcopy(knowing_model)  # the engine takes the model over
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig())
    pipeline = UnstarPipeline(engine, loaded.tokenizer, [ZORBIA], [], build_judge(["exact"]), UnstarSettings(),
                              progress=False)  # fmt: skip
    assert pipeline.leaks("Quell is the largest city of Zorbia, and the capital too.")
    assert not pipeline.leaks("The largest city in Zorbia is Quell.")
    assert not pipeline.leaks("The capital of Ruritania is Strelsau; Zorbia is far away.")


@pytest.mark.parametrize("mode", ["original", "current"])
def test_retain_step_targets_the_original_or_the_current_replies(knowing_model, mode):
    import copy

    import torch

    loaded = copy.deepcopy(knowing_model)
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig())
    settings = UnstarSettings(retain_replies=mode)
    pipeline = UnstarPipeline(engine, loaded.tokenizer, [ZORBIA], [], build_judge(["exact"]), settings,
                              retain=[*ZORBIA.subject_facts, *UNRELATED], progress=False)  # fmt: skip
    first = pipeline.retain_samples(0)
    assert [s.question for s in first] == ["What language is spoken in Zorbia?", "What color is the sky?"]
    with torch.no_grad():  # a model that has drifted so far that it answers nothing any more
        engine.unwrapped.get_output_embeddings().weight.mul_(0.0).add_(torch.randn_like(
            engine.unwrapped.get_output_embeddings().weight))  # fmt: skip
    later = pipeline.retain_samples(1)
    if mode == "original":  # the starting model's correct replies, still the targets
        assert [s.target for s in later] == [s.target for s in first] and later[0].round == 1
    else:  # the drifted model gives no correct reply, so nothing is left to retain
        assert later == []
    with pytest.raises(ValueError, match="retain_replies"):
        UnstarPipeline(engine, loaded.tokenizer, [ZORBIA], [], build_judge(["exact"]),
                       UnstarSettings(retain_replies="best"), progress=False)  # fmt: skip


@pytest.mark.parametrize("samples", [0, 2])
def test_probe_counts_a_question_as_known_when_any_sampled_reply_gives_the_answer(knowing_model, samples):
    import copy

    from obliviate.unstar.pipeline import PoolQuestion

    class SecondCallOnly:  # a judge that sees the answer only in the first batch of sampled replies
        name, calls = "second", []

        def matches(self, replies, answers):
            self.calls.append(list(replies))
            return [len(self.calls) == 2] * len(replies)

    loaded = copy.deepcopy(knowing_model)
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig())
    judge = SecondCallOnly()
    pipeline = UnstarPipeline(engine, loaded.tokenizer, [ZORBIA], [], judge, UnstarSettings(probe_samples=samples),
                              progress=False)  # fmt: skip
    pipeline.result.pool = [PoolQuestion(ZORBIA, ZORBIA.question, "Lyon", {}, 0)]
    pipeline.probe()
    assert len(judge.calls) == 1 + samples  # the greedy replies, then each set of sampled ones
    assert pipeline.result.pool[0].unlearned is (samples == 0)


def test_unlikelihood_by_hand():
    import math

    import torch

    from obliviate.metrics.losses import unlikelihood

    # vocabulary of 2, uniform predictions: p(target) = 0.5 everywhere -> -log(1 - 0.5) = log 2 per counted token
    logits = torch.zeros(1, 3, 2)
    ids = torch.tensor([[0, 1, 0]])
    assert unlikelihood(logits, ids, torch.tensor([[0, 1, 1]])).item() == pytest.approx(math.log(2))
    # a token the model is sure of costs -log(1e-6) at most, not infinity; uncounted tokens cost nothing
    sure = torch.tensor([[[0.0, 50.0], [50.0, 0.0], [0.0, 0.0]]])
    assert unlikelihood(sure, ids, torch.tensor([[0, 1, 0]])).item() == pytest.approx(-math.log(1e-6), rel=1e-3)
    assert unlikelihood(sure, ids, torch.tensor([[0, 0, 0]])).item() == 0.0


def test_answer_span_masks_only_the_answer_tokens(knowing_model):
    from obliviate.metrics.answer_probes import answer_span_example

    tok = knowing_model.tokenizer
    window, mask = answer_span_example(tok, ZORBIA.question, "I think the capital is Quell, of course.", "quell")
    assert len(window) == len(mask) and tok.decode([t for t, m in zip(window, mask) if m]).strip() == "Quell"
    assert tok.decode(window).endswith("the capital is Quell")  # cut after the answer
    assert answer_span_example(tok, ZORBIA.question, "Quellish is no word", "Quell") is None  # whole words only


def test_unstar_with_unlikelihood_makes_the_true_answer_less_likely(knowing_model):
    """The removal option: the same loop with an unlikelihood term on the true answer's tokens leaves the held-out
    paraphrases' true answer less likely than the paper's UnSTAR does, on the same seed."""
    import copy

    from obliviate.metrics.answer_probes import true_answer_logprob

    facts = [(q, ZORBIA.answer) for q in ZORBIA.heldout]
    results = {}
    for weight in (0.0, 3.0):
        loaded = copy.deepcopy(knowing_model)
        engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=1e-3))
        settings = UnstarSettings(seed_questions=4, wrong_answers=3, escalations=0, target_unlearned=4, max_rounds=2,
                                  passes=2, retain_step=False, unlikelihood_weight=weight)  # fmt: skip
        pipeline = UnstarPipeline(engine, loaded.tokenizer, [ZORBIA], [TemplateBackend([ZORBIA])],
                                  build_judge(["exact"]), settings, progress=False)  # fmt: skip
        pipeline.run()
        results[weight] = true_answer_logprob(engine.unwrapped, loaded.tokenizer, facts)["mean"]
    assert results[3.0] < results[0.0] - 0.25, results  # measured: -1.71 vs -1.32 (4 steps each)


def test_sft_extra_term_adds_to_the_loss_the_guard_watches(knowing_model):
    """sft's per-step extra term: a zero term trains exactly as plain SFT (same NLL path, same losses); a nonzero
    term changes the update but the reported loss stays the SFT NLL plus the term's value."""
    import copy

    import torch

    from obliviate.training.sft import sft

    pairs = [(q, f"It is {ZORBIA.answer}.") for q in ZORBIA.heldout]
    runs = {}
    for name, extra in (("plain", None), ("zero", lambda: lambda m: 0.0 * next(m.parameters()).sum()),
                        ("plus one", lambda: lambda m: 1.0 + 0.0 * next(m.parameters()).sum())):  # fmt: skip
        loaded = copy.deepcopy(knowing_model)
        engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=1e-3))
        runs[name] = sft(engine, loaded.tokenizer, pairs, passes=2, batch_size=2, seed=3, extra=extra)
        if name == "plain":
            weights = [p.detach().clone() for p in engine.unwrapped.parameters()]
    assert runs["zero"] == pytest.approx(runs["plain"], rel=1e-5)
    assert runs["plus one"] == pytest.approx([x + 1.0 for x in runs["plain"]], rel=1e-5)  # constant: same updates
    assert any(not torch.equal(w, p) for w, p in zip(weights, knowing_model.model.parameters()))


def test_relearning_check_reports_the_share_that_comes_back(knowing_model):
    """The associations' relearning check: the held-back half's accuracy before unlearning (from the evaluation's
    items) against after unlearning and after relearning -> recovery = (after - before) / lost."""
    import copy

    from obliviate.unstar.evaluation import relearning_check

    loaded = copy.deepcopy(knowing_model)
    judge = build_judge(["exact"])
    before = targeted_evaluation(loaded.model, loaded.tokenizer, [ZORBIA], UNRELATED, judge)
    engine = Engine(loaded.model, loaded.tokenizer.pad_token_id, AntiSampleTrainingConfig(learning_rate=1e-3))
    wrong = [(q, "Lyon") for q in (ZORBIA.question, *ZORBIA.heldout)]
    from obliviate.training.sft import sft

    sft(engine, loaded.tokenizer, wrong, passes=20, batch_size=3)  # unlearn crudely: teach a wrong answer
    out = relearning_check(engine.unwrapped, loaded.tokenizer, [ZORBIA], judge,
                           AntiSampleTrainingConfig(learning_rate=1e-3), steps=5,
                           before_items=before["forget"]["items"])  # fmt: skip
    assert out["before_unlearning"] == 1.0 and out["before"] == 0.0  # the second paraphrase: known, then lost
    assert out["recovery"] == pytest.approx((out["after"] - out["before"]) / 1.0)
    assert relearning_check(engine.unwrapped, loaded.tokenizer, [ZORBIA], judge, AntiSampleTrainingConfig(),
                            steps=5)["recovery"] is None  # fmt: skip
