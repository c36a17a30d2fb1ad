"""Score sequences of token ids: one teacher-forced pass per batch, plus batched KV-cached decoding for EL_n."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from obliviate.metrics.extraction import (
    EsConvention,
    extraction_likelihood,
    extraction_strength,
    plan_jobs,
    prefixes_for,
    run_jobs,
)
from obliviate.metrics.teacher_forcing import TokenStats, forward_token_stats, predicted_tokens
from obliviate.metrics.tokens import length_groups, length_sorted_batches, right_pad


@dataclass
class WindowScores:
    """Per-window token statistics and the extraction metrics that need decoding."""

    stats: list[TokenStats]
    extraction: dict[str, np.ndarray] = field(default_factory=dict)  # "el_10" -> values per window

    def memorization(
        self, es_convention: EsConvention = "paper", drop_last_token: bool = False
    ) -> dict[str, np.ndarray]:
        """MA, ES and loss per window, plus any EL_n values (``drop_last_token``: MA and ES without each window's
        last prediction, as OpenUnlearning; ``es_convention``: see :func:`extraction_strength`)."""
        keep = predicted_tokens(drop_last_token)
        values = {
            "ma": np.array([s.matches[keep].mean() for s in self.stats]),
            "es": np.array([extraction_strength(s, es_convention, drop_last_token) for s in self.stats]),
        }
        if self.stats and self.stats[0].target_logprob is not None:
            values["loss"] = np.array([-s.target_logprob.mean() for s in self.stats])
        return values | self.extraction


@torch.no_grad()
def score_windows(
    model: PreTrainedModel,
    windows: list[list[int]],
    *,
    pad_id: int,
    batch_size: int = 8,
    el_ns: tuple[int, ...] = (),
    el_stride: int = 1,
    decode_batch_size: int = 256,
    full_stats: bool = True,
    progress: bool = True,
    desc: str = "scoring",
    el_rows: int | None = None,
) -> WindowScores:
    """Teacher-forced statistics for every window; EL_n for each n in ``el_ns`` when given.

    ``full_stats=False`` keeps only the greedy predictions (MA, ES, EL): the cheapest pass, used when only
    memorization is needed (e.g. re-scoring after every unlearning step). ``el_rows``: EL_n only for the first
    ``el_rows`` windows (the extraction arrays have that length; default all), so that windows which need only
    their statistics (an audit's neighbourhood copies) share the length-sorted batches of those that are
    decoded."""
    device = next(model.parameters()).device
    stats: list[TokenStats | None] = [None] * len(windows)
    el_rows = len(windows) if el_rows is None else el_rows
    extraction = {f"el_{n}": np.full(el_rows, np.nan) for n in el_ns}
    batches = _batches(model, windows, batch_size)
    bar = tqdm(total=len(windows), desc=desc, unit="seq", disable=not progress, leave=False)
    decode_bar = tqdm(desc=f"{desc}: EL decoding", unit="row", disable=not (progress and el_ns), leave=False)
    for indices in batches:
        input_ids, mask = right_pad([windows[i] for i in indices], pad_id, device)
        lengths = [len(windows[i]) for i in indices]
        decode = bool(el_ns) and min(indices) < el_rows
        batch_stats, cache = forward_token_stats(model, input_ids, mask, lengths, full=full_stats, use_cache=decode)
        for index, seq_stats in zip(indices, batch_stats):
            stats[index] = seq_stats
        if decode:
            _extraction_for_batch(model, cache, batch_stats, indices, el_ns, el_stride, decode_batch_size,
                                  extraction, decode_bar, el_rows)  # fmt: skip
        bar.update(len(indices))
    bar.close()
    decode_bar.close()
    return WindowScores(stats=[s for s in stats if s is not None], extraction=extraction)


def _batches(model, windows: list[list[int]], batch_size: int) -> list[list[int]]:
    """Length-sorted batches of at most ``batch_size``, each split where padding its rows to one length costs more
    than another forward (:func:`length_groups`; e.g. 8 passages of 76-167 tokens: 1,116 instead of 1,336 padded
    tokens, about 18% faster here). A sharded model keeps the fixed batches: its forwards are collectives, so every
    process must make as many."""
    batches = length_sorted_batches(windows, batch_size)
    if any(type(p).__name__ == "DTensor" for p in model.parameters()):
        return batches
    return [[batch[k] for k in group] for batch in batches for group in length_groups([len(windows[i]) for i in batch])]


def _extraction_for_batch(
    model, cache, batch_stats, indices, el_ns, el_stride, decode_batch_size, extraction, decode_bar, el_rows
):
    prefix_sets = [sorted({p for n in el_ns for p in prefixes_for(len(s.tokens), n, el_stride)}) if i < el_rows
                   else [] for s, i in zip(batch_stats, indices)]  # fmt: skip
    jobs = plan_jobs(batch_stats, prefix_sets)
    decode_bar.total = (decode_bar.total or 0) + len(jobs)
    decode_bar.refresh()
    decoded = run_jobs(model, cache, jobs, decode_batch_size, decode_bar)
    per_row: list[dict[int, np.ndarray]] = [{} for _ in batch_stats]
    for (row, prefix_len), tokens in decoded.items():
        per_row[row][prefix_len] = tokens
    for row, (index, seq_stats) in enumerate(zip(indices, batch_stats)):
        if index >= el_rows:
            continue
        for n in el_ns:
            extraction[f"el_{n}"][index] = extraction_likelihood(seq_stats, per_row[row], n, el_stride)
