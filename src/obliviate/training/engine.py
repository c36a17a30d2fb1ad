"""The training engine every unlearning method runs on: Hugging Face Accelerate underneath.

One process on a CPU or GPU; several with ``torchrun --nproc_per_node N`` (gloo on CPU, NCCL on GPUs) or
``accelerate launch`` (DDP, FSDP, DeepSpeed). A method gives the engine, per optimizer step, the forget
sequences to train on and the sign of the loss; the engine splits them over processes and micro-batches so
that the gradient is that of the mean per-sequence NLL over the whole selection, whatever the process count.
Scoring (MA per sequence) is sharded over processes as well and gathered, so every rank takes the same
decisions. With ``training.sharding=fsdp`` the weights, gradients and Adam state are sharded too (FSDP2; see
``obliviate.models.sharding``)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object, set_seed
from transformers import PreTrainedModel

from obliviate.config import TrainingConfig
from obliviate.errors import ConfigError, ObliviateError
from obliviate.metrics.answers import QABatch, answer_token_nll
from obliviate.metrics.losses import per_target_mean
from obliviate.metrics.scoring import score_windows
from obliviate.metrics.tokens import right_pad
from obliviate.models.sharding import (
    ShardSizes,
    all_finite,
    gather_full_model,
    process_mesh,
    reshard,
    shard_model,
    shard_sizes,
)

log = logging.getLogger("obliviate")


def leave_process_group(state) -> None:
    """Destroy the process group of an ``accelerate.PartialState`` (a no-op in a single process).

    gloo's worker threads free a finished collective's tensors themselves, which takes the GIL; the thread that
    drops the group's last reference joins those workers while holding the GIL. If a worker is still freeing
    the last barrier's tensors at that moment, both wait forever (seen in about one of ten two-process runs).
    Sleeping first releases the GIL, so the workers finish before the group (and the DDP reducer that holds
    it) goes away."""
    if state.num_processes > 1:
        time.sleep(0.5)
    state.destroy_process_group()


class TrainingDiverged(ObliviateError):
    """The loss or the gradient became NaN/inf, or the loss exploded; the step was not applied."""


class WeightsDiverged(TrainingDiverged):
    """The model itself is broken - its weights, or its loss or gradient on the current batch, are NaN/inf after
    the previous step: the run must stop (nothing of this model may be saved)."""


class Engine:
    """Owns the accelerator, the (optionally LoRA-wrapped) model and the Adam optimizer."""

    def __init__(self, model: PreTrainedModel, pad_id: int, cfg: TrainingConfig, *, cpu: bool | None = None) -> None:
        self.cfg, self.pad_id = cfg, pad_id
        if cpu is None:
            cpu = next(model.parameters()).device.type == "cpu"
        self.accelerator = _accelerator(cpu, cfg.mixed_precision)
        self.sharded = _sharding_applies(cfg, self.accelerator.num_processes)
        set_seed(cfg.seed)
        if cfg.lora.enabled:
            model = _with_lora(model, cfg)
        model.eval()  # dropout off (authors); gradients still flow
        if self.sharded:  # FSDP2 shards in place; Adam then holds only this process's shards of its moments
            model = shard_model(model, process_mesh(self.accelerator.device))
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(
            params, lr=cfg.learning_rate, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
        )
        if self.sharded:  # not wrapped in DDP: FSDP2 reduce-scatters (averages) the gradients itself
            self.model, self.optimizer = model, self.accelerator.prepare_optimizer(optimizer)
            sizes = self.shard_sizes()
            log.info("training sharded over %d processes (FSDP2): process %d holds %d of the %d weights (%.0f%%) and "
                     "their Adam moments", self.world, self.rank, sizes.weights, sizes.full_weights,
                     100 * sizes.weight_share)  # fmt: skip
        else:
            self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self._params = params
        self.steps_taken = 0

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)

    def full_model(self, model: torch.nn.Module) -> torch.nn.Module | None:
        """``model`` whole: as it is when training is not sharded; else gathered into a plain model on the main
        process (None on the others; every process must call this)."""
        return gather_full_model(model, self.is_main) if self.sharded else model

    def shard_sizes(self) -> ShardSizes:
        """Numbers of weights and Adam moments this process holds, against the whole model."""
        return shard_sizes(self.model, self.optimizer)

    def reset_optimizer(self) -> None:
        """Forget Adam's moment estimates (TAU's optional reset at the switch)."""
        self.optimizer.optimizer.state.clear()

    def score_ma(self, model: torch.nn.Module, windows: list[list[int]], batch_size: int,
                 masks: list[list[int]] | None = None) -> np.ndarray:  # fmt: skip
        """Per-sequence MA of ``model`` on ``windows``; each process scores a shard, all get every value.
        ``masks[i][t]`` = 1 counts token t of window i (e.g. an answer's tokens only: answer-token MA)."""
        return self.score(model, windows, batch_size, masks, loss=False)["ma"]

    @torch.no_grad()
    def score(self, model: torch.nn.Module, windows: list[list[int]], batch_size: int,
              masks: list[list[int]] | None = None, *, loss: bool = True) -> dict[str, np.ndarray]:  # fmt: skip
        """Per-sequence MA and (``loss=True``) mean NLL and mean predictive entropy of ``model`` on ``windows``
        from one teacher-forced pass; sharded over processes, every process gets every value. ``masks`` as in
        :meth:`score_ma`."""
        mine = list(range(self.rank, len(windows), self.world))
        # a sharded model's passes gather weights from every process: all run as many rows (repeats dropped)
        share = math.ceil(len(windows) / self.world) if self.sharded else len(mine)
        scored_rows = (mine or [0]) * share
        rows: list[list[float]] = []
        if share:
            scored = score_windows(
                model, [windows[i] for i in scored_rows[:share]], pad_id=self.pad_id, batch_size=batch_size,
                full_stats=loss, progress=False,
            )  # fmt: skip
            for s, i in zip(scored.stats, mine):
                keep = np.ones(len(s.matches), dtype=bool) if masks is None else np.asarray(masks[i][1:], dtype=bool)
                row = [float(s.matches[keep].mean())]
                if loss:
                    row += [float(-s.target_logprob[keep].mean()), float(-s.expected_logprob[keep].mean())]
                rows.append(row)
        reshard(model)  # sharded: free the gathered root weights scoring leaves behind
        pieces = gather_object([(mine, rows)]) if self.world > 1 else [(mine, rows)]
        out = np.full((len(windows), 3 if loss else 1), np.nan)
        for indices, shard in pieces:
            if indices:
                out[indices] = shard
        return {"ma": out[:, 0], **({"loss": out[:, 1], "entropy": out[:, 2]} if loss else {})}

    def step(
        self, windows: list[list[int]], selected: list[int], sign: float, loss_masks: list[list[int]] | None = None
    ) -> dict[str, float]:
        """One optimizer step on sign * mean per-sequence NLL over ``selected`` (indices into ``windows``)."""
        mean_nll = self.accumulate_gradients(windows, selected, sign, loss_masks)
        grad_norm = self.apply_gradients(mean_nll)
        return {"forget_nll": mean_nll, "loss": sign * mean_nll, "grad_norm": grad_norm}

    def objective_step(self, objective: Callable[[torch.nn.Module], torch.Tensor]) -> dict[str, float]:
        """One optimizer step on a scalar loss that ``objective(model)`` computes (the QA baselines' composite
        losses); the same NaN / exploding-loss guard as :meth:`step`. ``objective`` may return (loss, forget NLL):
        the exploding-loss guard then watches the NLL, not a sum of squared distances to targets."""
        with self.accelerator.autocast():
            out = objective(self.model)
            loss, watched = out if isinstance(out, tuple) else (out, out)
            self.accelerator.backward(loss)
        value = float(loss.detach())
        grad_norm = self.apply_gradients(float(watched.detach()) if math.isfinite(value) else value)
        return {"loss": value, "grad_norm": grad_norm}

    def accumulate_gradients(
        self, windows: list[list[int]], selected: list[int], sign: float, loss_masks: list[list[int]] | None = None
    ) -> float:
        """Leave the gradient of sign * mean_i NLL_i (i over ``selected``) in the parameters; returns the mean.

        ``loss_masks[i][t]`` = 1 counts token t of window i as a target (e.g. only an answer, not its prompt);
        by default every token after the first is. Every process runs the same number of micro-batches (a
        process with no share runs a zero-weight one), so gradient synchronisation never waits on a missing
        rank."""
        if not selected:
            raise ValueError("a step needs at least one selected sequence")
        micro = self.cfg.micro_batch_size
        mine = selected[self.rank :: self.world]
        rounds = math.ceil(math.ceil(len(selected) / self.world) / micro)
        # DDP averages gradients over processes; scale so that the result is the mean over the whole selection.
        scale = sign * self.world / len(selected)
        nll_sum = torch.zeros((), device=self.device)
        for r in range(rounds):
            chunk = mine[r * micro : (r + 1) * micro]
            weight = 1.0 if chunk else 0.0
            rows = chunk or selected[:1]
            input_ids, mask = right_pad([windows[i] for i in rows], self.pad_id, self.device)
            targets = mask if loss_masks is None else right_pad([loss_masks[i] for i in rows], 0, self.device)[0]
            sync = nullcontext() if r == rounds - 1 else self.accelerator.no_sync(self.model)
            with sync, self.accelerator.autocast():
                # from the final hidden states in checkpointed chunks: no [B, L, V] logits kept for backward
                nll = per_target_mean(answer_token_nll(self.model, QABatch(input_ids, mask, targets)), targets)
                self.accelerator.backward(nll.sum() * (scale * weight))
            nll_sum += nll.detach().sum() * weight
        return float(self.accelerator.reduce(nll_sum, reduction="sum")) / len(selected)

    def apply_gradients(self, mean_nll: float) -> float:
        """Check the loss and gradient, then take the optimizer step; returns the gradient norm.

        Raises :class:`TrainingDiverged` (the step skipped, the weights untouched) on an exploding loss, and
        :class:`WeightsDiverged` (the run must stop) on a NaN/inf loss or gradient, or on NaN/inf weights after
        the step."""
        max_norm = self.cfg.max_grad_norm or float("inf")
        grad_norm = _as_float(self.accelerator.clip_grad_norm_(self.model.parameters(), max_norm))
        problem = None
        if not (math.isfinite(mean_nll) and math.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            raise WeightsDiverged(
                f"non-finite loss or gradient at optimizer step {self.steps_taken + 1} (loss {mean_nll}, gradient "
                f"norm {grad_norm}, weights {self._dtype()}); the run stops before anything is saved. Use float32 "
                "(or bfloat16), a lower learning rate or training.max_grad_norm"
            )
        if abs(mean_nll) > self.cfg.max_loss:
            problem = (
                f"forget NLL {mean_nll:.2f} exceeds training.max_loss={self.cfg.max_loss}: the model is being "
                "destroyed rather than unlearned; the step was skipped. Lower the learning rate or tighten the "
                "stop rule"
            )
        if problem:
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(problem)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_taken += 1
        self._check_weights()
        return grad_norm

    def _dtype(self) -> str:
        return str(self._params[0].dtype).removeprefix("torch.")

    @torch.no_grad()
    def _check_weights(self) -> None:
        """After a step: every trained weight still finite (a finite loss and gradient can still overflow a
        low-precision weight). Raises :class:`WeightsDiverged`; nothing has been saved at that point."""
        if not all_finite(self._params):  # sharded: each process checks its shards, all agree on the verdict
            raise WeightsDiverged(f"optimizer step {self.steps_taken} turned weights into NaN/inf ({self._dtype()}); "
                                  "the run stops before anything is saved. Use float32 (or bfloat16), a lower "
                                  "learning rate or training.max_grad_norm")  # fmt: skip


def _as_float(value: torch.Tensor) -> float:
    """A scalar tensor's value; a sharded (DTensor) one's whole value."""
    return float(value.full_tensor() if hasattr(value, "full_tensor") else value)


def _sharding_applies(cfg: TrainingConfig, processes: int) -> bool:
    """Whether this run shards its model; refuses the combinations that cannot work, naming the setting."""
    if cfg.sharding == "none":
        return False
    if cfg.lora.enabled:
        raise ConfigError("training.sharding=fsdp with training.lora.enabled is not supported: a LoRA adapter is "
                             "small enough to train replicated (leave sharding off), or shard the full model "
                             "without LoRA")  # fmt: skip
    if cfg.checkpoint_every:
        raise ConfigError("training.sharding=fsdp does not write resumable checkpoints yet: set "
                             "training.checkpoint_every=0 (the unlearned model is still saved whole)")  # fmt: skip
    if processes == 1:
        log.info("training.sharding=fsdp in one process: nothing to split, training unsharded (launch with "
                 "torchrun --nproc_per_node N to shard)")  # fmt: skip
    return processes > 1


def _accelerator(cpu: bool, mixed_precision: str) -> Accelerator:
    """An Accelerator with this run's settings. Accelerate keeps one process-wide state and refuses another
    mixed precision or device later in the same process (two API calls, say); in a single process that state
    holds nothing a new run needs, so it is reset and the Accelerator made again (never under several processes,
    whose group it also holds)."""
    from accelerate.state import AcceleratorState, PartialState

    try:
        return Accelerator(cpu=cpu, mixed_precision=mixed_precision)
    except ValueError as exc:
        if "already been initialized" not in str(exc) or PartialState().num_processes > 1:
            raise
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision)


def _with_lora(model: PreTrainedModel, cfg: TrainingConfig) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = cfg.lora
    config = LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=lora.target_modules, task_type="CAUSAL_LM",
    )  # fmt: skip
    return get_peft_model(model, config)
