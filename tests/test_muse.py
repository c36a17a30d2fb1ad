"""MUSE-News-mini: MUSE's metrics pinned by hand, the data loader's errors, the testbed's chunks on a small
corpus, and the whole muse-news run end to end on the tiny model and the real MUSE-News files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from obliviate.cli.main import app
from obliviate.errors import DataError
from obliviate.models.tiny import build_tiny_tokenizer
from obliviate.muse.data import QA, MuseNews, load_muse_news
from obliviate.muse.metrics import cut_answer, knowmem_prompt, muse_privleak, rouge_l_f1
from obliviate.muse.testbed import Chunk, grounded_chunks, muse_mini, verbmem_items, window_chunks

runner = CliRunner()


def test_rouge_l_f1_by_hand():
    # LCS of 'the cat on the mat' in 'the cat sat on the mat' is 5 words: P = 5/5, R = 5/6, F1 = 10/11
    assert rouge_l_f1(["the cat sat on the mat"], ["the cat on the mat"]) == [pytest.approx(10 / 11)]
    # no stemming (MUSE's setting): 'cats' does not match 'cat'; nothing in common -> 0
    assert rouge_l_f1(["cat"], ["cats"]) == [0.0] and rouge_l_f1(["a b"], [""]) == [0.0]
    # LCS 'a c' of 'a b c' vs 'a c d': P = 2/3, R = 2/3, F1 = 2/3
    assert rouge_l_f1(["a b c"], ["a c d"]) == [pytest.approx(2 / 3)]


def test_knowmem_prompt_and_answer_cut_follow_muse():
    prompt = knowmem_prompt([("Q1?", "A1"), ("Q2?", "A2")], "Q3?")
    assert prompt == "Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\nQuestion: Q3?\nAnswer: "
    assert cut_answer("1472\n\nQuestion: when?") == "1472"
    assert cut_answer("Paris\nQuestion: next") == "Paris" and cut_answer("x Question: y") == "x "
    assert cut_answer("no stop here") == "no stop here"


def test_muse_privleak_has_muses_sign():
    """MUSE labels holdout positive, so its AUC is 1 - the audit's (forget = members)."""
    assert muse_privleak(0.5, 0.5) == 0.0  # as the retain-only model
    assert muse_privleak(1.0, 0.5) == pytest.approx(-1.0)  # forget all more likely than holdout: still memorized
    assert muse_privleak(0.0, 0.5) == pytest.approx(1.0)  # all less likely: over-unlearned
    assert muse_privleak(0.9, 0.6) == pytest.approx((0.1 - 0.4) / 0.4)
    assert muse_privleak(0.7, 1.0) is None  # the retain-only MUSE AUC is 0: undefined


def _news(**over) -> MuseNews:
    corpus = ["Filler words here. The Orkney islands became part of Scotland in 1472 after a royal wedding deal.",
              "A different story about trains. The new line opened in 2005 to great fanfare in the town."]
    base = dict(forget_qa=[QA("When did the Orkney islands become part of Scotland?", "1472"),
                           QA("When did the new line open to great fanfare?", "2005"),
                           QA("Who won the cup?", "Nobody")],  # no article holds the answer: dropped
                forget_icl=[QA("q", "a")], retain_qa=[QA("When did the Orkney wedding deal happen?", "1472")],
                retain_icl=[QA("q", "a")], forget_corpus=corpus, retain_texts=corpus,
                holdout_texts=["Never seen text about weather and rain in the hills, long enough to cut a window."] * 4,
                root=None)  # fmt: skip
    return MuseNews(**(base | over))


def test_grounded_chunks_hold_their_answers_and_have_the_asked_length():
    tok, news = build_tiny_tokenizer(), _news()
    chunks = grounded_chunks(tok, news.forget_qa, news.forget_corpus, 40, "forget")
    assert [c.qa[0].answer for c in chunks] == ["1472", "2005"]  # the unanswerable question is dropped
    for c in chunks:
        assert c.qa[0].answer in c.text and len(tok(c.text, add_special_tokens=False).input_ids) <= 40
    # a second question whose answer lies inside an existing chunk joins it
    joined = grounded_chunks(tok, [news.forget_qa[0], QA("What wedding deal made Orkney part of Scotland?", "1472")],
                             news.forget_corpus, 60, "forget")  # fmt: skip
    assert len(joined) == 1 and len(joined[0].qa) == 2
    # a question whose answer lies just outside a chunk but whose window would overlap it is dropped
    near = grounded_chunks(tok, [news.forget_qa[0], QA("When was the royal wedding deal about Orkney islands?",
                                                       "wedding")], news.forget_corpus, 24, "forget")  # fmt: skip
    assert len(near) == 1 and len(near[0].qa) == 1
    windows = window_chunks(tok, news.holdout_texts, 3, 30, "holdout", seed=0)
    assert len(windows) == 3 and all(len(tok(w.text).input_ids) <= 30 for w in windows)


def test_testbed_blocks_and_verbmem_halves():
    tok = build_tiny_tokenizer()
    mini = muse_mini(_news(), tok, forget_chunks=1, blocks=2, retain_chunks=2, holdout_chunks=2, chunk_tokens=40)
    assert [c.qa[0].answer for c in mini.forget(1, 1)] == ["2005"] and len(mini.forget(2, 0)) == 2
    with pytest.raises(DataError, match="need 3 forget chunks"):
        mini.forget(1, 2)
    with pytest.raises(DataError, match=r"lower benchmark\.forget_chunks"):
        muse_mini(_news(), tok, forget_chunks=2, blocks=2, chunk_tokens=40)
    chunk = Chunk("c", "one two three four five six seven eight")
    (prompt, truth), = verbmem_items(tok, [chunk])  # fmt: skip
    assert f"{prompt} {truth}" == chunk.text and prompt and truth


def test_load_muse_news_names_what_is_wrong(tmp_path):
    with pytest.raises(DataError, match="MUSE-News folder not found"):
        load_muse_news(tmp_path / "absent")
    with pytest.raises(DataError, match=r"knowmem/forget_qa\.json: missing"):
        load_muse_news(tmp_path)
    for rel in ("knowmem/forget_qa.json", "knowmem/forget_qa_icl.json", "knowmem/retain2_qa.json",
                "knowmem/retain2_qa_icl.json"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps([{"question": "q?", "answer": "a"}]))
    for rel in ("privleak/retain2.json", "privleak/holdout.json", "raw/forget.json"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(json.dumps(["some text"]))
    assert load_muse_news(tmp_path).forget_qa == [QA("q?", "a")]
    (tmp_path / "knowmem/retain2_qa.json").write_text(json.dumps([{"question": "q?"}]))
    with pytest.raises(DataError, match="item 0 is not a"):
        load_muse_news(tmp_path)
    (tmp_path / "knowmem/retain2_qa.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid UTF-8 JSON"):
        load_muse_news(tmp_path)


TINY_MUSE = ["--set", "benchmark.forget_chunks=2", "--set", "benchmark.blocks=2", "--set", "benchmark.retain_chunks=2",
             "--set", "benchmark.holdout_chunks=6", "--set", "benchmark.chunk_tokens=48", "--set",
             "benchmark.finetune_epochs=30", "--set", "benchmark.finetune_learning_rate=3e-3", "--set",
             "benchmark.icl_examples=2", "--set", "benchmark.relearn_steps=2", "--set", "benchmark.stop=mean",
             "--set", "benchmark.utility.fluency_prompts=0"]  # fmt: skip


def test_muse_news_runs_end_to_end_on_the_tiny_model(shared_data, tmp_path):
    """`obliviate unlearn --benchmark muse-news --method npo` on the tiny model: the testbed is built and cached,
    the run directory holds metrics.json with MUSE's sets, the audit, the attacks and a MUSE section."""
    args = ["unlearn", "--benchmark", "muse-news", "--method", "npo", "--model", "tiny", "--max-steps", "3",
            "--learning-rate", "1e-3", "--set", f"benchmark.data={shared_data / 'muse_news'}", *TINY_MUSE,
            "--output-dir", str(tmp_path), "--no-progress"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = next(tmp_path.glob("muse-news-npo-*"))
    m = json.loads((run_dir / "metrics.json").read_text())
    sets = m["summary"]["sets"]
    assert {"forget", "reference", "verbmem", "knowmem_forget", "knowmem_retain"} <= set(sets)
    assert sets["verbmem"]["n"] == 2 and 0 <= sets["verbmem"]["after"]["rouge_l_f1"] <= 1
    assert set(m["summary"]["attacks"]) >= {"membership", "relearning", "quantization"}
    assert m["muse"]["forget_chunks"] == ["forget-0", "forget-1"] and m["steps"] == 3
    assert "## MUSE-News-mini" in (run_dir / "summary.md").read_text()
    cached = list((tmp_path / "muse-models").glob("*/*/finetune.json"))
    assert len(cached) == 2  # target and retain-only, reused by the next run with the same recipe
    scores = sorted((tmp_path / "muse-models").glob("*/*/muse-scores-*.json"))
    assert [p.parent.name for p in scores] == ["retain-only", "target"]  # their MUSE scores on block 0, kept
    assert json.loads(scores[1].read_text())["verbmem"]["mean"] == m["muse"]["before"]["verbmem"]["mean"]
    audits = sorted((tmp_path / "muse-models").glob("*/*/audit-scores-*.json"))
    assert [p.parent.name for p in audits] == ["retain-only"] * 2 + ["target"] * 2  # forget and holdout, each
    kept = [json.loads(p.read_text()) for p in audits[2:]]
    forget_ma = next(k["values"]["ma"] for k in kept if k["ids"] == m["muse"]["forget_chunks"])
    chunks = m["muse"]["forget_chunks"]
    assert forget_ma == pytest.approx([m["before"]["target"]["per_sample"][i]["ma"] for i in chunks])
    # the next removal request starts from this run's model, whose holdout scores the run kept beside it
    (holdout,) = (run_dir / "model").glob("audit-scores-*.json")
    marked = json.loads(holdout.read_text())
    marked["values"]["ma"] = [0.5] * len(marked["ids"])  # marked, so that reading it back shows
    holdout.write_text(json.dumps(marked))
    again = runner.invoke(app, [*args[:-3], "--set", "benchmark.request=1", "--set",
                                f"benchmark.start={run_dir / 'model'}", "--output-dir", str(tmp_path), "--no-progress",
                                "--no-save-model"])  # fmt: skip
    assert again.exit_code == 0, again.output
    (other,) = [p for p in tmp_path.glob("muse-news-npo-*/metrics.json") if p.parent != run_dir]
    request = json.loads(other.read_text())
    assert request["before"]["reference"]["aggregate"]["ma"]["mean"] == 0.5  # read back, not scored again
    assert request["before"]["reference"]["aggregate"]["loss"] == m["after"]["reference"]["aggregate"]["loss"]
    assert request["muse"]["start"] == str(run_dir / "model")
    assert len(list((tmp_path / "muse-models").glob("*/*/finetune.json"))) == 2
    second = [json.loads(f.read_text()) for f in tmp_path.glob("muse-news-npo-*/metrics.json")]
    assert sorted(x["muse"]["request"] for x in second) == [0, 1]
    assert {tuple(x["muse"]["forget_chunks"]) for x in second} == {("forget-0", "forget-1"), ("forget-2", "forget-3")}


def test_muse_news_rejects_bad_settings_clearly(shared_data, tmp_path):
    base = ["unlearn", "--benchmark", "muse-news", "--method", "npo", "--model", "tiny", "--output-dir", str(tmp_path)]
    cases = [(["--set", "benchmark.request=3", "--set", "benchmark.blocks=2"], "exceeds the 2 blocks"),
             (["builtin:famous"], "picks its own forget set"),
             (["--set", f"benchmark.data={tmp_path / 'nowhere'}"], "MUSE-News folder not found"),
             (["--method", "unstar"], "does not run on the 'muse-news' benchmark")]  # fmt: skip
    for extra, message in cases:
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (extra, result.output)
    assert not list(tmp_path.glob("muse-news-*"))  # a run that cannot start leaves nothing behind


def test_generation_stops_at_a_stop_string_and_each_row_on_its_own():
    """KnowMem stops generating at MUSE's answer cut. The tiny model repeats a prompt's last letter, so the
    stop's place is known: it is matched on prompt and completion together ('on' + 'nnnn' ends with 'nnnnn'),
    a row ends there, and a row that never meets it runs on to the token limit, text unchanged."""
    from obliviate.models import load_model
    from obliviate.models.generation import Sampling, generate

    loaded = load_model("tiny:3", device="cpu", dtype="float32")
    prompts, sampling = ["the cat sat on", "a dog ran to the"], Sampling(max_new_tokens=24)
    full = [r[0] for r in generate(loaded.model, loaded.tokenizer, prompts, sampling, strip=False)]
    assert full == ["n" * 24, "e" * 24]
    cut = [r[0] for r in generate(loaded.model, loaded.tokenizer, prompts, sampling, strip=False, stop=("nnnnn",))]
    assert cut == ["nnnn", "e" * 24]
