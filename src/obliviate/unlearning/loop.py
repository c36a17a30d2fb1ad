"""The unlearning loop: score -> (maybe stop) -> select -> one optimizer step, with a per-step trace,
checkpoints and resume. Method-agnostic: a :class:`MemorizationMethod` decides, the :class:`Engine` trains."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from tqdm.auto import tqdm

from obliviate.errors import ConfigError
from obliviate.io import write_json_atomic
from obliviate.methods.base import MemorizationMethod
from obliviate.methods.rules import StopRule, Thresholds
from obliviate.metrics.teacher_forcing import TokenStats
from obliviate.training.engine import Engine, TrainingDiverged, WeightsDiverged

log = logging.getLogger("obliviate")


@dataclass
class LoopResult:
    steps: int  # optimizer steps taken (in this run and any resumed one)
    stop_reason: str
    trace: list[dict[str, Any]] = field(default_factory=list)
    rule: str = ""  # the stop rule the method applied (its own, for a method that has one)

    @property
    def final_ma(self) -> np.ndarray:
        return np.array(list(self.trace[-1]["ma"].values()))


class UnlearningLoop:
    def __init__(
        self,
        engine: Engine,
        method: MemorizationMethod,
        windows: list[list[int]],
        ids: list[str],
        *,
        rule: StopRule,
        thresholds: Thresholds,
        max_steps: int,
        scoring_batch_size: int = 8,
        checkpoint_every: int = 0,
        run_dir: Path | None = None,
        progress: bool = True,
        masks: list[list[int]] | None = None,
        fingerprint: dict[str, str] | None = None,
        start_scores: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.engine, self.method, self.windows, self.ids = engine, method, windows, ids
        self.rule, self.thresholds, self.max_steps = rule, thresholds, max_steps
        self.scoring_batch_size, self.checkpoint_every = scoring_batch_size, checkpoint_every
        self.run_dir, self.progress = run_dir, progress
        self.masks = masks  # per window, the tokens that are scored and trained on (None: all)
        self.trace: list[dict[str, Any]] = []
        self.start_step = 0
        # what a checkpoint must match to be resumed here: model, data, method, settings (see read_checkpoint_state)
        self.fingerprint = fingerprint or {}
        # the starting model's scores when an audit already has them (:func:`scores_from_stats`): the first step
        # then skips its scoring pass
        self.start_scores = start_scores

    # the loop -------------------------------------------------------------------------------------------
    def run(self) -> LoopResult:
        engine, method = self.engine, self.method
        bar = tqdm(
            total=self.max_steps, initial=self.start_step, desc=f"unlearning ({method.name})", unit="step",
            disable=not (self.progress and engine.is_main), leave=False,
        )  # fmt: skip
        step, reason = self.start_step, "max_steps"
        known = self.start_scores if step == 0 else None  # a resumed run's model is no longer the starting one
        while True:
            started = time.perf_counter()
            scored = method.scored_model(engine)
            if known is not None and scored is engine.unwrapped:
                scores = known
            else:
                scores = engine.score(scored, self.windows, self.scoring_batch_size, self.masks)
            known = None
            method.scores = scores
            ma = method.observe(engine, scores["ma"])
            record = self._record(step, ma, scores)
            if method.should_stop(ma):
                reason = f"stop rule '{method.stop_rule_name}' met"
                self._log(record, started)
                break
            if step >= self.max_steps:
                self._log(record, started)
                break
            selected = method.select(ma)
            if selected.size == 0:
                reason = "no sequence left to select"
                self._log(record, started)
                break
            record["selected"] = [self.ids[i] for i in selected]
            try:
                record["terms"] = method.step(engine, self.windows, selected.tolist(), self.masks)
            except WeightsDiverged:
                raise  # the model is broken: the run stops, nothing is saved
            except TrainingDiverged as exc:
                reason = f"diverged: {exc}"
                log.error("step %d: %s", step + 1, exc)
                self._log(record, started)
                break
            self._log(record, started)
            step += 1
            bar.update(1)
            bar.set_postfix(mean_ma=f"{ma.mean():.3f}", above=record["c_high"], selected=selected.size)
            if self.checkpoint_every and step % self.checkpoint_every == 0:
                self.save_checkpoint(step)
        bar.close()
        log.info("%s stopped after %d steps: %s", method.name, step, reason)
        return LoopResult(steps=step, stop_reason=reason, trace=self.trace, rule=method.stop_rule_name)

    def _record(self, step: int, ma: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, Any]:
        return {
            "step": step,
            "phase": self.method.phase,
            "mean_ma": float(ma.mean()),
            "max_ma": float(ma.max()),
            "c_high": int((ma > self.thresholds.upper).sum()),
            "c_low": int((ma < self.thresholds.lower).sum()),
            "ma": {sid: float(v) for sid, v in zip(self.ids, ma)},
            "mean_loss": float(scores["loss"].mean()),
            **{key: {sid: float(v) for sid, v in zip(self.ids, scores[key])} for key in ("loss", "entropy")},
        }

    def _log(self, record: dict[str, Any], started: float) -> None:
        record["seconds"] = time.perf_counter() - started
        self.trace.append(record)
        self._log_record_only(record)

    def write_trace_so_far(self) -> None:
        """Write the trace a resumed run inherited, so the new run directory's trace.jsonl is complete."""
        for record in self.trace:
            self._log_record_only(record)

    def _log_record_only(self, record: dict[str, Any]) -> None:
        """Append one record to the run's trace.jsonl (main process; a crash loses nothing already written)."""
        if self.run_dir is not None and self.engine.is_main:
            with open(self.run_dir / "trace.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")

    # checkpoints ----------------------------------------------------------------------------------------
    def save_checkpoint(self, step: int) -> Path | None:
        """Weights (safetensors), Adam state, method state and trace so far, written atomically."""
        self.engine.accelerator.wait_for_everyone()
        if self.run_dir is None or not self.engine.is_main:
            return None
        final = self.run_dir / "checkpoints" / f"step-{step:04d}"
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            save_model(self.engine.unwrapped, str(tmp / "model.safetensors"))
            torch.save(self.engine.optimizer.state_dict(), tmp / "optimizer.pt")
            tensors = {k: v.detach().contiguous() for k, v in self.method.tensors().items()}
            if tensors:
                save_file(tensors, str(tmp / "method.safetensors"))
            state = {"step": step, "method": self.method.name, "method_state": self.method.state(),
                     "trace": self.trace, "fingerprint": self.fingerprint}  # fmt: skip
            write_json_atomic(tmp / "state.json", state)
            tmp.rename(final)
        except BaseException:  # a full disk, an interrupt, SIGTERM: no half-written checkpoint is left behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        size = sum(f.stat().st_size for f in final.iterdir())
        keep = self.engine.cfg.keep_checkpoints
        for old in sorted(final.parent.glob("step-[0-9]*"))[:-keep]:
            if old.is_dir() and not old.name.endswith(".tmp"):
                shutil.rmtree(old, ignore_errors=True)
        log.info("checkpoint %s: %.1f MB (weights + Adam state); keeping the last %d", final, size / 1e6, keep)
        return final

    def resume_from(self, checkpoint: str | Path) -> None:
        """Continue a run from a checkpoint directory written by :meth:`save_checkpoint`."""
        path = Path(checkpoint)
        if self.engine.sharded:
            raise ConfigError("resuming under training.sharding=fsdp is not supported yet: resume without sharding "
                              "(the checkpoint holds the whole model) or start again")  # fmt: skip
        state = read_checkpoint_state(path, self.method.name, self.fingerprint)
        try:
            load_model(self.engine.unwrapped, str(path / "model.safetensors"))
            optimizer_state = torch.load(path / "optimizer.pt", map_location=self.engine.device, weights_only=True)
            self.engine.optimizer.load_state_dict(optimizer_state)
            tensors = load_file(str(path / "method.safetensors")) if (path / "method.safetensors").is_file() else {}
        except Exception as exc:  # truncated or corrupt files raise the readers' own errors
            raise ConfigError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc}); resume from another "
                              "checkpoint or start again") from None
        self.method.load_state(state["method_state"], self.engine, tensors)
        self.trace = list(state["trace"])
        self.start_step = int(state["step"])
        log.info("resumed from %s at step %d", path, self.start_step)


def scores_from_stats(stats: list[TokenStats]) -> dict[str, np.ndarray]:
    """:meth:`Engine.score`'s values (MA, mean NLL, mean predictive entropy per window, no masks) from statistics
    an audit computed on the same model and windows."""
    rows = [[float(s.matches.mean()), float(-s.target_logprob.mean()), float(-s.expected_logprob.mean())]
            for s in stats]  # fmt: skip
    out = np.array(rows, dtype=float).reshape(len(stats), 3)
    return {"ma": out[:, 0], "loss": out[:, 1], "entropy": out[:, 2]}


def read_checkpoint_state(path: Path, method: str, fingerprint: dict[str, str] | None = None) -> dict[str, Any]:
    """The state.json of a checkpoint directory, checked to be one, to belong to ``method`` and, given the run's
    ``fingerprint``, to come from a run on the same model, data and settings (a mismatch names what differs)."""
    if not (path / "state.json").is_file():
        raise ConfigError(f"{path} is not an obliviate checkpoint (no state.json)")
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"checkpoint {path}: state.json cannot be read ({exc})") from None
    if not isinstance(state, dict) or not {"step", "method", "trace"} <= set(state):
        raise ConfigError(f"checkpoint {path}: state.json is not an obliviate checkpoint state")
    if state.get("method") != method:
        raise ConfigError(f"checkpoint {path} is from method {state.get('method')!r}, not {method!r}")
    if fingerprint:
        saved = state.get("fingerprint") or {}
        differ = [key for key in fingerprint if saved.get(key) != fingerprint[key]]
        if differ:
            details = "; ".join(f"{k}: checkpoint {saved.get(k, 'not recorded')!r}, this run {fingerprint[k]!r}"
                                for k in differ)  # fmt: skip
            raise ConfigError(f"checkpoint {path} was written by a different run ({', '.join(differ)} differ: "
                              f"{details}); resume with the same model, data and settings, or start again")  # fmt: skip
    return state
