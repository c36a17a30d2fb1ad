"""Build a memorization testbed: inject sequences into a base model with a spread of repetition counts.

Outputs (in a new run directory): the memorized model, optionally the retain-only model (same recipe without
the forget set), the splits as JSONL, and audits of every model (forget set vs never-seen held-out set)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from obliviate.config import TestbedConfig
from obliviate.core.rundir import TrackedRun
from obliviate.data import SequenceSet, load_sequences
from obliviate.evaluation.audit_report import audit_tables
from obliviate.io import write_json_atomic, write_text_atomic
from obliviate.metrics.audit import MemorizationAudit, audit_memorization
from obliviate.metrics.tokens import encode_windows
from obliviate.models import LoadedModel, load_model, save_model
from obliviate.render.markdown import markdown_table
from obliviate.render.plots import plot_memorization_histogram
from obliviate.testbed.splits import injection_order, repetition_schedule, select_splits
from obliviate.training.finetune import finetune_on_windows

log = logging.getLogger("obliviate")


def _load(cfg: TestbedConfig) -> LoadedModel:
    m = cfg.model
    return load_model(m.model, device=m.device, dtype=m.dtype, trust_remote_code=m.trust_remote_code)


def _train(cfg: TestbedConfig, loaded: LoadedModel, stream: list[list[int]], desc: str) -> dict[str, Any]:
    start = time.perf_counter()
    losses = finetune_on_windows(
        loaded.model,
        stream,
        pad_id=loaded.tokenizer.pad_token_id,
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        seed=cfg.seed,
        progress=cfg.progress,
        desc=desc,
    )
    return {
        "steps": len(losses),
        "sequences": len(stream),
        "losses": losses,
        "seconds": time.perf_counter() - start,
    }


def _write_splits(run_dir: Path, splits: dict[str, SequenceSet], repeats: dict[str, int]) -> None:
    for name, split in splits.items():
        lines = []
        for item in split:
            record = {"id": item.id, "text": item.text}
            if name == "forget":
                record["repetitions"] = repeats[item.id]
            lines.append(json.dumps(record, ensure_ascii=False))
        write_text_atomic(run_dir / "splits" / f"{name}.jsonl", "\n".join(lines) + "\n")


def build_testbed(cfg: TestbedConfig) -> tuple[Path, dict[str, Any]]:
    """Build the testbed described by ``cfg``; returns (run directory, metrics)."""
    started = time.perf_counter()
    source = load_sequences(cfg.source)
    base = _load(cfg)
    sizes = {"forget": cfg.forget, "heldout": cfg.heldout, "filler": cfg.filler}
    splits = select_splits(base.tokenizer, source, sizes, cfg.tokens, cfg.seed)
    forget, heldout = splits["forget"], splits["heldout"]
    repeats = dict(zip(forget.ids, repetition_schedule(len(forget), cfg.min_repeats, cfg.max_repeats, cfg.seed)))
    scoring = cfg.scoring.model_copy(update={"max_tokens": cfg.tokens})
    with TrackedRun(cfg.output_dir, "testbed", cfg.model_dump(mode="json")) as run_dir:
        _write_splits(run_dir, splits, repeats)
        audits = {"base": audit_memorization(base, forget, heldout, scoring, progress=cfg.progress)}
        encode = lambda s: encode_windows(base.tokenizer, s.texts, cfg.tokens, ids=s.ids)  # noqa: E731
        filler = encode(splits["filler"]) if "filler" in splits else []
        stream = injection_order(encode(forget), [repeats[i] for i in forget.ids], filler, cfg.seed)
        training = {"memorized": _train(cfg, base, stream, "injecting forget set")}
        save_model(base, run_dir / "memorized")
        audits["memorized"] = audit_memorization(base, forget, heldout, scoring, progress=cfg.progress)
        if cfg.retain_only:
            retain = _load(cfg)
            retain_stream = injection_order([], [], filler, cfg.seed)
            training["retain_only"] = _train(cfg, retain, retain_stream, "retain-only model")
            save_model(retain, run_dir / "retain_only")
            audits["retain_only"] = audit_memorization(retain, forget, heldout, scoring, progress=cfg.progress)
        metrics = _testbed_metrics(audits, repeats, training, time.perf_counter() - started)
        write_json_atomic(run_dir / "metrics.json", metrics)
        _write_testbed_report(run_dir, cfg, audits, metrics)
        log.info("testbed written to %s in %.0f s", run_dir, metrics["summary"]["wall_seconds"])
    return run_dir, metrics


def _testbed_metrics(audits: dict[str, MemorizationAudit], repeats, training, wall: float) -> dict[str, Any]:
    base, memorized = audits["base"], audits["memorized"]
    models = {name: audit.to_dict() for name, audit in audits.items()}
    forget_ma = memorized.target.values["ma"]
    summary = {
        "forget_ma_min": float(forget_ma.min()),
        "forget_ma_max": float(forget_ma.max()),
        "forget_ma_mean": float(forget_ma.mean()),
        "heldout_ma_base": float(base.reference.values["ma"].mean()),
        "heldout_ma_memorized": float(memorized.reference.values["ma"].mean()),
        "miau_best": models["memorized"]["miau_best"],
        "spearman_repetitions_vs_ma": float(
            np.corrcoef(
                np.argsort(np.argsort([repeats[i] for i in memorized.target.ids])),
                np.argsort(np.argsort(forget_ma)),
            )[0, 1]
        ),
        "wall_seconds": wall,
    }
    summary["heldout_ma_shift"] = summary["heldout_ma_memorized"] - summary["heldout_ma_base"]
    return {
        "summary": summary,
        "repetitions": repeats,
        "training": training,
        "models": models,
    }


def _write_testbed_report(run_dir: Path, cfg: TestbedConfig, audits, metrics) -> None:
    memorized = audits["memorized"]
    ref = memorized.reference_stats("ma")
    plot_memorization_histogram(
        run_dir / "ma_histogram.png",
        {
            "forget, base model": audits["base"].target.values["ma"].tolist(),
            "forget, memorized model": memorized.target.values["ma"].tolist(),
            "held-out, memorized model": memorized.reference.values["ma"].tolist(),
        },
        band=ref.band(cfg.scoring.k_sigma),
        reference_mean=ref.mean,
        title="Testbed: per-sequence exact memorization",
    )
    s = metrics["summary"]
    rows = [
        [
            i,
            metrics["repetitions"][i],
            audits["base"].target.values["ma"][k],
            memorized.target.values["ma"][k],
        ]
        for k, i in enumerate(memorized.target.ids)
    ]
    text = (
        f"# Memorization testbed\n\n- base model: `{cfg.model.model}`\n- source: `{cfg.source}`\n"
        f"- {cfg.forget} forget + {cfg.heldout} held-out + {cfg.filler} filler sequences of {cfg.tokens} tokens\n"
        f"- repetitions {cfg.min_repeats}..{cfg.max_repeats}, lr {cfg.learning_rate}, batch {cfg.batch_size}\n"
        f"- wall time {s['wall_seconds']:.0f} s\n\n"
        f"Forget MA after injection: min {s['forget_ma_min']:.4f}, max {s['forget_ma_max']:.4f}, "
        f"mean {s['forget_ma_mean']:.4f}. Held-out MA: base {s['heldout_ma_base']:.4f}, memorized "
        f"{s['heldout_ma_memorized']:.4f} (shift {s['heldout_ma_shift']:+.4f}). Best MIAU AUC "
        f"{s['miau_best']['auc']:.4f} ({s['miau_best']['score']}).\n\n"
        "The tables below audit the memorized model.\n\n"
        + audit_tables(memorized, metrics["models"]["memorized"])
        + "\n## Forget sequences\n\n"
        + markdown_table(["id", "repetitions", "MA base", "MA memorized"], rows)
        + "\n![MA histogram](ma_histogram.png)\n"
    )
    write_text_atomic(run_dir / "summary.md", text)


def add_retain_only(testbed: str | Path, *, progress: bool = True) -> Path:
    """Train the retain-only model of an existing testbed (same base model, recipe and seed, on its filler split
    alone, without the forget set) into ``TESTBED/retain_only``; returns that path. Refuses to overwrite one."""
    import yaml

    root = Path(testbed)
    out = root / "retain_only"
    if out.exists():
        raise FileExistsError(f"{out} exists already; it is the retain-only model of this testbed")
    cfg = TestbedConfig.model_validate(yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8")))
    cfg = cfg.model_copy(update={"progress": progress})
    retain = _load(cfg)
    filler = load_sequences(root / "splits" / "filler.jsonl")
    windows = encode_windows(retain.tokenizer, filler.texts, cfg.tokens, ids=filler.ids)
    training = _train(cfg, retain, injection_order([], [], windows, cfg.seed), "retain-only model")
    save_model(retain, out)
    log.info("retain-only model: %d steps on %d filler sequences, written to %s", training["steps"], len(windows), out)
    return out
