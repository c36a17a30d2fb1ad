"""Testbed building blocks: split selection, repetition schedule and the injection stream."""

from __future__ import annotations

from collections import Counter

import pytest

from obliviate.data import Sequence, SequenceSet
from obliviate.errors import DataError
from obliviate.models.tiny import build_tiny_tokenizer
from obliviate.testbed.splits import injection_order, repetition_schedule, select_splits


def _source(count: int, words: int = 12) -> SequenceSet:
    items = tuple(Sequence(id=f"d{i}", text=" ".join(f"w{i}x{j}" for j in range(words))) for i in range(count))
    return SequenceSet(name="src", items=items)


def test_select_splits_are_disjoint_exact_length_and_seeded():
    tokenizer = build_tiny_tokenizer()
    source = _source(20)
    sizes = {"forget": 4, "heldout": 3, "filler": 2}
    first = select_splits(tokenizer, source, sizes, tokens=16, seed=7)
    again = select_splits(tokenizer, source, sizes, tokens=16, seed=7)
    other = select_splits(tokenizer, source, sizes, tokens=16, seed=8)
    assert {k: len(v) for k, v in first.items()} == sizes
    assert first["forget"].ids == again["forget"].ids and first["forget"].ids != other["forget"].ids
    all_ids = [i for split in first.values() for i in split.ids]
    assert len(set(all_ids)) == len(all_ids) == 9
    assert all(len(tokenizer(t).input_ids) == 16 for t in first["forget"].texts)


def test_select_splits_says_how_many_are_missing():
    with pytest.raises(DataError, match=r"only 3 documents have 16 tokens; 5 are needed"):
        select_splits(build_tiny_tokenizer(), _source(3), {"forget": 3, "heldout": 2}, tokens=16, seed=0)


def test_repetition_schedule_spreads_evenly_and_is_seeded():
    schedule = repetition_schedule(6, 1, 16, seed=0)
    assert sorted(schedule) == [1, 4, 7, 10, 13, 16]
    assert schedule == repetition_schedule(6, 1, 16, seed=0)
    with pytest.raises(DataError, match="max_repeats"):
        repetition_schedule(3, 5, 2, seed=0)


def test_injection_stream_repeats_each_forget_window():
    forget, filler = [[1], [2], [3]], [[9], [8]]
    stream = injection_order(forget, [1, 3, 5], filler, seed=0)
    counts = Counter(w[0] for w in stream)
    assert counts == {1: 1, 2: 3, 3: 5, 9: 1, 8: 1}
    assert stream != sorted(stream)  # shuffled
