"""Per-token statistics of a batch of sequences from ONE teacher-forced forward pass.

Everything per-sequence that needs only p(. | x_<t) comes from here: exact memorization (argmax matches),
loss, and the MIA scores (Min-K% and Min-K%++ need the mean/std of log p under the model's distribution).
The vocabulary projection runs in chunks of positions from the final hidden states, so the [B, T, V] logits
tensor (and its log-softmax copies) never exists at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from obliviate.metrics.vocab_stats import PositionStats, vocab_stats


@dataclass
class TokenStats:
    """Arrays of length T-1 for one sequence x_1..x_T; entry t-1 concerns predicting x_{t+1} from x_<=t.

    ``target_logprob``, ``expected_logprob`` and ``logprob_std`` are None in argmax-only mode."""

    tokens: np.ndarray  # int64 [T]
    argmax: np.ndarray  # int64 greedy prediction
    target_logprob: np.ndarray | None = None  # log p(x_{t+1} | x_<=t)
    expected_logprob: np.ndarray | None = None  # E_{v~p}[log p(v)]
    logprob_std: np.ndarray | None = None  # std_{v~p}[log p(v)]

    @property
    def matches(self) -> np.ndarray:
        return self.argmax == self.tokens[1:]


def predicted_tokens(drop_last_token: bool) -> slice:
    """Which entries of a :class:`TokenStats` count: every prediction, or all but the last one (OpenUnlearning
    drops each sample's last labelled token from Min-K%, Min-K%++, exact memorization and ES)."""
    return slice(None, -1) if drop_last_token else slice(None)


def logits_head(model: torch.nn.Module):
    """hidden -> logits for models whose head is one linear map (optionally soft-capped); else None (also for a
    sharded head, whose weight only exists whole inside the model's own forward)."""
    model = getattr(model, "module", model)  # DDP / FSDP wrappers
    head = model.get_output_embeddings()
    config = model.config
    if head is None or getattr(config, "logit_scale", None) is not None:
        return None
    if type(getattr(head, "weight", None)).__name__ == "DTensor":
        return None
    cap = getattr(config, "final_logit_softcapping", None)
    if cap:
        return lambda hidden: torch.tanh(head(hidden) / cap) * cap
    return head


def final_states(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                 use_cache: bool = False):  # fmt: skip
    """One forward pass: (final hidden states [B, L, H] and the head that maps them to logits, or - for an unusual
    or sharded head - the model's own logits [B, L, V] and None; the model's output, for its KV cache). With a
    head, the model computes the logits of the last position only (``logits_to_keep=1``)."""
    head = logits_head(model)
    if head is None:
        output = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)
        return output.logits, None, output
    output = model(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache,
        output_hidden_states=True, logits_to_keep=1,
    )  # fmt: skip
    return output.hidden_states[-1], head, output


def model_position_stats(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    greedy_only: bool = False,
    use_cache: bool = False,
    chunk: int | None = None,
) -> tuple[PositionStats, object]:
    """One forward pass over a right-padded batch; (:class:`PositionStats` [B, L-1] for predicting
    ``input_ids[:, 1:]``, KV cache or None). The vocabulary projection runs chunk by chunk from the final hidden
    states (see :func:`vocab_stats`); gradients flow when enabled."""
    states, head, output = final_states(model, input_ids, attention_mask, use_cache=use_cache)
    stats = vocab_stats(states[:, :-1], input_ids[:, 1:], head, chunk=chunk, greedy_only=greedy_only)
    return stats, output.past_key_values if use_cache else None


@torch.no_grad()
def forward_token_stats(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    lengths: list[int],
    *,
    full: bool = True,
    use_cache: bool = False,
    chunk: int | None = None,
):
    """One forward pass over a right-padded batch; returns (per-row TokenStats, KV cache or None)."""
    stats, cache = model_position_stats(
        model, input_ids, attention_mask, greedy_only=not full, use_cache=use_cache, chunk=chunk
    )
    return _split_rows(input_ids, _columns(stats), lengths), cache


def _columns(stats: PositionStats) -> list[torch.Tensor]:
    if stats.target_logprob is None:
        return [stats.argmax]
    return [stats.argmax, stats.target_logprob, stats.expected_logprob, stats.logprob_std()]


def _split_rows(input_ids: torch.Tensor, columns: list[torch.Tensor], lengths: list[int]) -> list[TokenStats]:
    arrays = [c.detach().cpu().numpy() for c in columns]
    tokens = input_ids.cpu().numpy()
    out = []
    for row, length in enumerate(lengths):
        values = [a[row, : length - 1] for a in arrays]
        floats = [v.astype(np.float64) for v in values[1:]]
        out.append(TokenStats(tokens[row, :length], values[0], *floats))
    return out


def token_stats_from_logits(logits: torch.Tensor, input_ids: torch.Tensor, lengths: list[int]) -> list[TokenStats]:
    """:class:`TokenStats` for each row of a right-padded batch from its full logits [B, L, V]."""
    with torch.no_grad():
        stats = vocab_stats(logits[:, :-1], input_ids[:, 1:])
    return _split_rows(input_ids, _columns(stats), lengths)
