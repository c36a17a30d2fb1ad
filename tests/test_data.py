"""Tests of the data layer: sequence and fact loaders, their error messages, and the built-in sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from obliviate.data import (
    BUILTIN_SETS,
    Fact,
    FactSet,
    Sequence,
    SequenceSet,
    builtin_sequences,
    load_facts,
    load_sequences,
)
from obliviate.errors import DataError, ObliviateError

TOFU = SHARED_DATA / "tofu"
PILE = SHARED_DATA / "text" / "pile_validation.csv"
needs_tofu = pytest.mark.skipif(not TOFU.is_dir(), reason=f"TOFU data folder {TOFU} is absent")
needs_pile = pytest.mark.skipif(not PILE.is_file(), reason=f"Pile sample {PILE} is absent")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*objects: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


def expect_error(path: Path, where: str, *fragments: str, loader=load_sequences, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        loader(path, **kwargs)
    message = str(info.value)
    assert path.name in message
    assert where in message, message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


# --- SequenceSet ------------------------------------------------------------------------------------------


def test_sequence_set_api() -> None:
    s = SequenceSet("demo", [Sequence("a", "alpha"), Sequence("b", "beta"), Sequence("c", "gamma")])
    assert isinstance(s.items, tuple)
    assert len(s) == 3
    assert [x.id for x in s] == ["a", "b", "c"]
    assert s.ids == ["a", "b", "c"]
    assert s.texts == ["alpha", "beta", "gamma"]
    sub = s.subset(["c", "a"])
    assert isinstance(sub, SequenceSet)
    assert sub.ids == ["a", "c"]
    assert sub.name == "demo"
    assert s.to_records() == [
        {"id": "a", "text": "alpha"},
        {"id": "b", "text": "beta"},
        {"id": "c", "text": "gamma"},
    ]
    with pytest.raises(DataError, match="'zz'"):
        s.subset(["a", "zz"])


def test_sequence_set_validation() -> None:
    with pytest.raises(DataError, match="empty"):
        SequenceSet("none", ())
    with pytest.raises(DataError, match=r"duplicate id.*'x'"):
        SequenceSet("dup", (Sequence("x", "one"), Sequence("y", "two"), Sequence("x", "three")))
    with pytest.raises(DataError, match="'blank'"):
        SequenceSet("ws", (Sequence("ok", "fine"), Sequence("blank", "  \n\t ")))
    assert issubclass(DataError, ObliviateError)


# --- load_sequences: formats ------------------------------------------------------------------------------


def test_load_jsonl_skips_blank_lines_and_stringifies_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "seqs.jsonl", '{"id": 7, "text": "first"}\n\n   \n{"id": "b", "text": "second"}\n')
    s = load_sequences(path)
    assert s.name == "seqs"
    assert s.ids == ["7", "b"]
    assert s.texts == ["first", "second"]


def test_load_jsonl_custom_fields_name_and_limit(tmp_path: Path) -> None:
    rows = [{"key": f"k{i}", "body": f"text number {i}"} for i in range(5)]
    path = write(tmp_path / "custom.jsonl", jsonl(*rows))
    s = load_sequences(path, id_field="key", text_field="body", name="mine", limit=3)
    assert s.name == "mine"
    assert s.ids == ["k0", "k1", "k2"]
    assert s.texts[2] == "text number 2"


def test_load_jsonl_auto_ids_use_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "noid.jsonl", jsonl({"text": "a"}) + "\n" + jsonl({"text": "b"}))
    assert load_sequences(path).ids == ["noid-1", "noid-3"]


def test_load_json_list_and_json_lines(tmp_path: Path) -> None:
    listed = write(tmp_path / "listed.json", json.dumps([{"id": "x", "text": "one"}, {"id": 2, "text": "two"}]))
    assert load_sequences(listed).ids == ["x", "2"]
    pretty = write(tmp_path / "pretty.json", json.dumps([{"text": "one"}, {"text": "two"}], indent=2))
    assert load_sequences(pretty).ids == ["pretty-1", "pretty-2"]
    lines = write(tmp_path / "lines.json", jsonl({"id": "p", "text": "one"}, {"id": "q", "text": "two"}))
    s = load_sequences(lines)
    assert s.ids == ["p", "q"]
    assert s.texts == ["one", "two"]


def test_load_csv_with_doc_id_alias_and_multiline_text(tmp_path: Path) -> None:
    path = write(tmp_path / "docs.csv", 'doc_id,text,corpus\n11,"line one\nline two",web\n12,plain,books\n')
    s = load_sequences(path)
    assert s.ids == ["11", "12"]
    assert s.texts == ["line one\nline two", "plain"]


def test_load_csv_prefers_id_and_auto_ids(tmp_path: Path) -> None:
    both = write(tmp_path / "both.csv", "id,doc_id,text\na,1,hello\nb,2,world\n")
    assert load_sequences(both).ids == ["a", "b"]
    none = write(tmp_path / "none.csv", "text\nhello\nworld\nagain\n")
    assert load_sequences(none).ids == ["none-1", "none-2", "none-3"]


def test_load_csv_huge_field(tmp_path: Path) -> None:
    big = "word " * 100_000  # far above the csv module's default 128 KiB field limit
    path = write(tmp_path / "big.csv", f"id,text\nbig,{big}\n")
    assert len(load_sequences(path).texts[0]) == len(big)


def test_load_txt_documents(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.txt", "\n\nFirst doc\nstill first\n\n\n  \nSecond doc\n\nThird\n")
    s = load_sequences(path)
    assert s.ids == ["notes-1", "notes-2", "notes-3"]
    assert s.texts == ["First doc\nstill first", "Second doc", "Third"]
    assert load_sequences(path, limit=2).ids == ["notes-1", "notes-2"]


# --- load_sequences: errors -------------------------------------------------------------------------------


def test_error_bad_json_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.jsonl", jsonl({"text": "ok"}, {"text": "ok2"}) + '{"text": "oops"\n')
    expect_error(path, "line 3", "bad JSON")


def test_error_bad_json_in_json_lines_with_json_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.json", jsonl({"text": "ok"}) + "{nope}\n")
    expect_error(path, "line 2", "bad JSON")


def test_error_bad_json_list(tmp_path: Path) -> None:
    path = write(tmp_path / "badlist.json", '[\n  {"text": "a"},\n  {"text": "b",}\n]\n')
    expect_error(path, "line 3", "bad JSON")


def test_error_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "arr.jsonl", jsonl({"text": "fine"}, ["not", "an", "object"]))
    expect_error(path, "line 2", "expected a JSON object", "a list")
    listed = write(tmp_path / "arr.json", json.dumps([{"text": "fine"}, {"text": "ok"}, 5]))
    expect_error(listed, "item 3", "expected a JSON object")


def test_error_missing_text_field(tmp_path: Path) -> None:
    path = write(tmp_path / "missing.jsonl", jsonl({"id": "a", "text": "x"}, {"id": "b", "body": "y"}))
    expect_error(path, "line 2", "missing field 'text'")


def test_error_text_not_string_or_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "num.jsonl", jsonl({"text": "x"}, {"text": "y"}, {"text": 42}))
    expect_error(path, "line 3", "must be a string")
    blank = write(tmp_path / "blank.jsonl", jsonl({"text": "x"}, {"text": "   "}))
    expect_error(blank, "line 2", "empty")
    csv_blank = write(tmp_path / "blank.csv", "id,text\na,hello\nb,\n")
    expect_error(csv_blank, "row 2", "empty")


def test_error_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dup.jsonl",
        jsonl({"id": "a", "text": "1"}, {"id": "b", "text": "2"}, {"id": "a", "text": "3"}),
    )
    expect_error(path, "line 3", "duplicate id 'a'", "first appeared at line 1")
    csv_path = write(tmp_path / "dup.csv", "doc_id,text\n5,one\n6,two\n7,three\n6,four\n")
    expect_error(csv_path, "row 4", "duplicate id '6'", "first appeared at row 2")


def test_error_id_present_in_some_rows_only(tmp_path: Path) -> None:
    path = write(tmp_path / "partial.jsonl", jsonl({"id": "a", "text": "1"}, {"text": "2"}))
    expect_error(path, "line 2", "missing id field 'id'")
    csv_path = write(tmp_path / "partial.csv", "id,text\na,one\n,two\n")
    expect_error(csv_path, "row 2", "empty id")


def test_error_empty_file_unknown_extension_and_not_found(tmp_path: Path) -> None:
    expect_error(write(tmp_path / "empty.jsonl", "\n  \n"), "empty.jsonl", "file is empty")
    expect_error(write(tmp_path / "empty.txt", ""), "empty.txt", "file is empty")
    expect_error(write(tmp_path / "header.csv", "id,text\n"), "header.csv", "no records")
    err = expect_error(write(tmp_path / "data.xml", "<a/>"), "data.xml", "unknown extension '.xml'")
    for ext in (".csv", ".json", ".jsonl", ".txt"):
        assert ext in str(err)
    expect_error(tmp_path / "ghost.jsonl", "ghost.jsonl", "file not found")


def test_error_bad_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "lim.jsonl", jsonl({"text": "x"}))
    expect_error(path, "lim.jsonl", "limit", limit=0)


# --- facts ------------------------------------------------------------------------------------------------


def test_fact_set_api_and_validation() -> None:
    facts = FactSet("f", [Fact("1", "Q one?", "A one"), Fact("2", "Q two?", "A two", paraphrases=("Q 2?",))])
    assert facts.ids == ["1", "2"]
    assert facts.questions == ["Q one?", "Q two?"]
    assert facts.answers == ["A one", "A two"]
    assert facts.to_records()[1]["paraphrases"] == ["Q 2?"]
    assert facts.subset(["2"]).ids == ["2"]
    with pytest.raises(DataError, match="'2'"):
        FactSet("f", [Fact("1", "Q", "A"), Fact("2", "Q", " ")])
    with pytest.raises(DataError, match="duplicate"):
        FactSet("f", [Fact("1", "Q", "A"), Fact("1", "Q", "B")])
    with pytest.raises(DataError):
        FactSet("f", [])


def test_load_facts_jsonl_with_all_fields(tmp_path: Path) -> None:
    row = {
        "id": 3,
        "question": "Who wrote it?",
        "answer": "Ann",
        "subject": "book",
        "relation": "author",
        "object": "Ann",
        "paraphrases": ["Whose book is it?"],
        "perturbed_answers": ["Bob", "Cy"],
    }
    facts = load_facts(write(tmp_path / "facts.jsonl", jsonl(row)))
    fact = facts.items[0]
    assert fact == Fact("3", "Who wrote it?", "Ann", "book", "author", "Ann", ("Whose book is it?",), ("Bob", "Cy"))


def test_load_facts_csv(tmp_path: Path) -> None:
    text = 'question,answer,perturbed_answer,subject\nQ1?,A1,"[""x"", ""y""]",s\nQ2?,A2,,\n'
    facts = load_facts(write(tmp_path / "facts.csv", text))
    assert facts.ids == ["facts-1", "facts-2"]
    assert facts.items[0].perturbed_answers == ("x", "y")
    assert facts.items[0].subject == "s"
    assert facts.items[1].perturbed_answers == ()
    assert facts.items[1].subject is None


def test_load_facts_errors(tmp_path: Path) -> None:
    ok = {"question": "Q?", "answer": "A"}
    path = write(tmp_path / "noans.jsonl", jsonl(ok, ok, {"question": "Q?"}))
    expect_error(path, "line 3", "missing field 'answer'", loader=load_facts)
    path = write(tmp_path / "emptyq.json", jsonl(ok, {"question": "", "answer": "A"}))
    expect_error(path, "line 2", "'question' is empty", loader=load_facts)
    path = write(tmp_path / "badlist.jsonl", jsonl(ok, {**ok, "perturbed_answer": ["x", 3]}))
    expect_error(path, "line 2", "'perturbed_answer' must be a list of non-empty strings", loader=load_facts)
    path = write(tmp_path / "badpara.jsonl", jsonl({**ok, "paraphrased_question": {"q": 1}}))
    expect_error(path, "line 1", "'paraphrased_question'", loader=load_facts)
    path = write(tmp_path / "facts.txt", "Q?\n")
    expect_error(path, "facts.txt", "unknown extension", loader=load_facts)
    path = write(tmp_path / "dup.jsonl", jsonl({**ok, "id": "q"}, {**ok, "id": "q"}))
    expect_error(path, "line 2", "duplicate id 'q'", "first appeared at line 1", loader=load_facts)


@needs_tofu
def test_tofu_forget01_loads() -> None:
    path = TOFU / "forget01.json"
    n_lines = sum(1 for line in path.read_text(encoding="utf-8").split("\n") if line.strip())
    facts = load_facts(path)
    assert n_lines == 40
    assert len(facts) == 40
    assert facts.ids[0] == "forget01-1"
    assert facts.ids[-1] == "forget01-40"
    assert "Basil Mahfouz Al-Kuwaiti" in facts.items[0].answer
    assert all(f.paraphrases == () and f.perturbed_answers == () for f in facts)


@needs_tofu
def test_tofu_forget01_perturbed_has_paraphrases_and_perturbed_answers() -> None:
    path = TOFU / "forget01_perturbed.json"
    facts = load_facts(path)
    assert len(facts) == 40
    first_raw = json.loads(path.read_text(encoding="utf-8").split("\n")[0])
    first = facts.items[0]
    assert first.question == first_raw["question"]
    assert first.paraphrases == (first_raw["paraphrased_question"],)
    assert first.perturbed_answers == tuple(first_raw["perturbed_answer"])
    assert all(len(f.paraphrases) == 1 and len(f.perturbed_answers) >= 2 for f in facts)
    assert load_facts(path, limit=5).ids == [f"forget01_perturbed-{i}" for i in range(1, 6)]


@needs_tofu
def test_tofu_world_facts_perturbed() -> None:
    facts = load_facts(TOFU / "world_facts_perturbed.json")
    assert len(facts) == 117
    assert facts.items[0].answer == "Paris"
    assert facts.items[0].perturbed_answers == ("Berlin", "London", "Madrid")
    assert facts.items[0].paraphrases == ()


# --- real text and built-in sets --------------------------------------------------------------------------


@needs_pile
def test_pile_csv_loads_with_doc_ids() -> None:
    s = load_sequences(PILE)
    assert len(s) == 1500
    assert s.ids[0] == "6252"
    assert len(set(s.ids)) == 1500
    assert s.texts[0].startswith(" happiness at last.")
    assert load_sequences(PILE, limit=10).ids == s.ids[:10]


@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_builtin_sets(name: str) -> None:
    s = builtin_sequences(name)
    assert isinstance(s, SequenceSet)
    assert s.name == name
    assert len(s) == {"famous": 8, "fresh": 40}[name]  # never-seen: enough for a band (the audit warns below 20)
    for text in s.texts:
        assert 50 <= len(text.split()) <= 130


def test_builtin_ids_and_contents() -> None:
    assert set(BUILTIN_SETS) == {"famous", "fresh"}
    famous = builtin_sequences("famous")
    assert {"declaration-of-independence", "gettysburg-address", "lorem-ipsum", "mit-license"} <= set(famous.ids)
    assert famous.subset(["gettysburg-address"]).texts[0].startswith("Four score and seven years ago")
    assert builtin_sequences("fresh").ids == [f"fresh-{k}" for k in range(1, 41)]
    assert not set(famous.texts) & set(builtin_sequences("fresh").texts)


def test_builtin_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError) as info:
        builtin_sequences("nope")
    assert "famous" in str(info.value)
    assert "fresh" in str(info.value)
