"""Per-token statistics of a batch of sequences from ONE teacher-forced forward pass.

Everything per-sequence that needs only p(. | x_<t) comes from here: exact memorization (argmax matches),
loss, and the MIA scores (Min-K% and Min-K%++ need the mean/std of log p under the model's distribution)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TokenStats:
    """Arrays of length T-1 for one sequence x_1..x_T; entry t-1 concerns predicting x_{t+1} from x_<=t."""

    tokens: np.ndarray  # int64 [T]
    target_logprob: np.ndarray  # log p(x_{t+1} | x_<=t)
    argmax: np.ndarray  # int64 greedy prediction
    expected_logprob: np.ndarray  # E_{v~p}[log p(v)]
    logprob_std: np.ndarray  # std_{v~p}[log p(v)]

    @property
    def matches(self) -> np.ndarray:
        return self.argmax == self.tokens[1:]


def token_stats_from_logits(logits: torch.Tensor, input_ids: torch.Tensor, lengths: list[int]) -> list[TokenStats]:
    """Compute :class:`TokenStats` for each row of a right-padded batch from its logits [B, L, V]."""
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    targets = input_ids[:, 1:]
    target_logprob = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    argmax = logprobs.argmax(dim=-1)
    probs = logprobs.exp()
    expected = (probs * logprobs).sum(-1)
    variance = (probs * logprobs.square()).sum(-1) - expected.square()
    std = variance.clamp_min(0).sqrt()
    out = []
    for row, length in enumerate(lengths):
        cut = slice(0, length - 1)
        out.append(
            TokenStats(
                tokens=input_ids[row, :length].cpu().numpy(),
                target_logprob=target_logprob[row, cut].cpu().numpy().astype(np.float64),
                argmax=argmax[row, cut].cpu().numpy(),
                expected_logprob=expected[row, cut].cpu().numpy().astype(np.float64),
                logprob_std=std[row, cut].cpu().numpy().astype(np.float64),
            )
        )
    return out
