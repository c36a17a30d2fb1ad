"""The paper's UnSTAR against UnSTAR with the removal term, per seed, on associations it was never tuned on.

Run: python benchmarks/bench_unstar_removal.py --split test [--seeds 0 1 2] [--weight 1.0] [--timing]
Each row is a real ``obliviate unlearn --benchmark associations --method unstar`` run (self-taught generator,
template fallback) on builtin:associations-dev (for choosing settings) or builtin:associations-test (only ever
reported). Writes benchmarks/results/unstar_removal_<split>.md: per seed and variant the held-out paraphrase
accuracy, multiple choice against distractors (by likelihood; chance 0.25), leak@16 (temperature 1), relearning
(5 steps on half the paraphrases: share of what unlearning took from the other half that comes back), subject /
object / unrelated accuracy as a share of before, with each bar of the issue marked; then mean and worst seed.
``--timing`` also runs the paper's UnSTAR on 3 and on 12 associations (dev + test) and compares the wall times."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import write_result
from obliviate.api import unlearn

SETS = ("forget", "subject", "object", "unrelated")
BARS = {"forget": 0.10, "mc_margin": 0.10, "leak": 0.20, "recovery": 0.5, "kept": 0.90}


def _run(args, forget: str, seed: int, weight: float, limit: int | None = None) -> tuple[Path, dict, float]:
    extra = dict(args.removal_settings) if weight else {}
    config = {"method": {"name": "unstar", "unlikelihood_weight": weight, **extra},
              "benchmark": {"name": "associations", "leak_k": args.leak_k}, "forget": forget, "limit": limit,
              "seed": seed, "save_model": False, "progress": False, "output_dir": args.output_dir}  # fmt: skip
    started = time.perf_counter()
    result = unlearn(config, report=False)
    assert result.run_dir is not None
    return result.run_dir, json.loads((result.run_dir / "metrics.json").read_text()), time.perf_counter() - started


def _figures(m: dict[str, Any]) -> dict[str, float]:
    s, probes, relearn = m["sets"], m["probes"]["after"], m.get("relearning") or {}
    mc = probes.get("multiple_choice", {})
    return {
        "forget_before": s["forget"]["before"], "forget": s["forget"]["after"],
        "mc": mc.get("accuracy", float("nan")), "chance": mc.get("chance", float("nan")),
        "leak": probes["leak_at_k"]["leak"] if "leak_at_k" in probes else float("nan"),
        "recovery": relearn.get("recovery") if relearn.get("recovery") is not None else float("nan"),
        **{f"kept_{k}": (s[k]["after"] / s[k]["before"]) if s[k]["before"] else float("nan") for k in SETS[1:]},
        "steps": m["steps"], "seconds": m["seconds_unlearning"],
    }  # fmt: skip


def _passes(f: dict[str, float]) -> dict[str, bool]:
    return {"forget": f["forget"] <= BARS["forget"], "mc": f["mc"] <= f["chance"] + BARS["mc_margin"],
            "leak": f["leak"] <= BARS["leak"], "relearning": f["recovery"] <= BARS["recovery"],
            "kept": min(f[f"kept_{k}"] for k in SETS[1:]) >= BARS["kept"]}  # fmt: skip


def _row(label: str, f: dict[str, float]) -> str:
    ok = _passes(f)
    mark = lambda key, text: f"{text} {'✓' if ok[key] else '✗'}"  # noqa: E731
    return "| " + " | ".join([
        label, mark("forget", f"{f['forget_before']:.2f} → {f['forget']:.2f}"),
        mark("mc", f"{f['mc']:.2f} (chance {f['chance']:.2f})"), mark("leak", f"{f['leak']:.2f}"),
        mark("relearning", f"{f['recovery']:.0%}"),
        mark("kept", " / ".join(f"{f[f'kept_{k}']:.2f}" for k in SETS[1:])),
        f"{f['steps']:.0f}", f"{f['seconds']:.0f}",
    ]) + " |"  # fmt: skip


HEADER = ("| variant, seed | held-out accuracy | multiple choice | leak@16 | relearning recovery | subject / object / "
          "unrelated kept | steps | unlearning s |\n|---|---|---|---|---|---|---|---|")  # fmt: skip


def _summary(label: str, rows: list[dict[str, float]]) -> list[str]:
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    worst = {k: (min if k.startswith("kept") else max)(r[k] for r in rows) for k in rows[0]}
    worst["chance"], worst["forget_before"] = mean["chance"], mean["forget_before"]
    return [_row(f"{label}, mean of {len(rows)}", mean), _row(f"{label}, worst seed", worst)]


def _timing(args) -> str:
    combined = Path(args.output_dir) / "associations_dev_test.jsonl"
    combined.parent.mkdir(parents=True, exist_ok=True)
    from obliviate.unstar.associations import builtin_path

    combined.write_text("".join(builtin_path(n).read_text() for n in ("associations-dev", "associations-test")))
    out = {}
    for n in (3, 12):
        _, m, wall = _run(args, str(combined), 0, 0.0, limit=n)
        out[n] = (m["seconds_unlearning"], wall, m["steps"])
    ratio = out[12][0] / out[3][0]
    return ("\n## Cost: 3 against 12 associations (paper UnSTAR, seed 0)\n\n| associations | steps | unlearning s | "
            "run s |\n|---|---|---|---|\n" + "".join(f"| {n} | {s} | {u:.0f} | {w:.0f} |\n" for n, (u, w, s) in
                                                   out.items()) + f"\n12 / 3 unlearning time: {ratio:.2f}x "
            f"({'within' if ratio <= 3 else 'over'} the 3x bar).\n")  # fmt: skip


CAPITAL_PARAPHRASES = ("Which city is the capital of {}?", "Name the capital city of {}.",
                       "What city serves as the capital of {}?", "{}'s capital is which city?",
                       "What is the name of the capital city of {}?")  # the test set's capital paraphrases


# Made-up countries and capitals: facts no model can know before it is taught them.
FICTIONAL_CAPITALS = (("Zorbia", "Quellport"), ("Mirandel", "Ostravik"), ("Tarvonia", "Belcaster"),
                      ("Kelsland", "Driftholm"), ("Ardovia", "Sunmarrow"), ("Velquist", "Port Anselm"),
                      ("Braxony", "Hallowmere"), ("Ostrelia", "Caddenburg"), ("Numaria", "Elsworth"),
                      ("Qandor", "Ravenstead"), ("Lutheria", "Morrowgate"), ("Sembria", "Ashcombe"))  # fmt: skip


def _never_known_control(steps: int) -> str:
    """The relearning check on facts the model cannot have known (made-up countries and capitals, asked with the
    test set's paraphrase templates), on the model before any unlearning: how much of the held-back half the same
    steps teach from scratch - what a truly removed fact would give back at most, if it relearned as easily as a
    never-known one."""
    from obliviate.config import AntiSampleTrainingConfig
    from obliviate.models import load_model
    from obliviate.unstar.associations import Association
    from obliviate.unstar.evaluation import relearning_check
    from obliviate.unstar.judge import build_judge

    loaded, judge = load_model("embedded", device="cpu", dtype="float32"), build_judge(["exact"])
    control = [Association(f"made-up-{k}", country, "capital", city, f"What is the capital of {country}?", city,
                           "city", tuple(t.format(country) for t in CAPITAL_PARAPHRASES))
               for k, (country, city) in enumerate(FICTIONAL_CAPITALS)]  # fmt: skip
    out = relearning_check(loaded.model, loaded.tokenizer, control, judge, AntiSampleTrainingConfig(), steps=steps)
    return (f"\n## Never-known control for the relearning check\n\nThe same relearning check ({out['steps']} steps, "
            f"Adam 4e-5, on the first 2 of 5 paraphrases) on the embedded model before any unlearning, for "
            f"{len(control)} made-up countries with made-up capitals, asked with the test set's capital paraphrase "
            f"templates: accuracy on the other {out['measured_on']} paraphrases {out['before']:.2f} -> "
            f"{out['after']:.2f}. This is what the check teaches from scratch; a removed fact that relearns far more "
            "than this was hidden, not removed.\n")


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--weight", type=float, default=1.0, help="unlikelihood weight of the removal variant")
    parser.add_argument("--variants", nargs="*", default=["paper", "removal"], choices=["paper", "removal"],
                        help="variants to run (none: only --timing / --control)")  # fmt: skip
    parser.add_argument("--set", dest="removal_settings", nargs="*", default=[], type=_setting, metavar="KEY=VALUE",
                        help="more method settings of the removal variant, e.g. probe_samples=8 passes=6")  # fmt: skip
    parser.add_argument("--leak-k", type=int, default=16)
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--control", action="store_true", help="also the never-known relearning control")
    parser.add_argument("--output-dir", default="runs/bench_unstar_removal")
    args = parser.parse_args()
    forget = f"builtin:associations-{args.split}"
    lines, notes = [HEADER], []
    for variant in args.variants:
        weight = args.weight if variant == "removal" else 0.0
        figures = []
        for seed in args.seeds:
            run_dir, m, _ = _run(args, forget, seed, weight)
            figures.append(_figures(m))
            lines.append(_row(f"{variant} (unlikelihood {weight:g}), seed {seed}", figures[-1]))
            notes.append(f"- {variant}, seed {seed}: `{run_dir}`")
            print(lines[-1], flush=True)
        if len(figures) > 1:
            lines += _summary(variant, figures)
    body = (
        f"Associations `{forget}` on SmolLM2-135M-Instruct, fp32. UnSTAR defaults (self-taught generator, template "
        f"fallback, Adam 4e-5, batch 4, 4 passes per round, up to 6 rounds); removal: the same plus "
        f"method.unlikelihood_weight={args.weight:g}" + "".join(f", method.{k}={v}" for k, v in args.removal_settings)
        + f". Bars (issue 14): held-out accuracy <= {BARS['forget']:.0%}, "
        f"multiple choice <= chance + {BARS['mc_margin']:.0%}, leak@{args.leak_k} <= {BARS['leak']:.0%}, relearning "
        f"recovery <= {BARS['recovery']:.0%}, subject / object / unrelated >= {BARS['kept']:.0%} of before. "
        "The worst-seed row takes each column's worst value over the seeds.\n\n" + "\n".join(lines) + "\n\n"
        + "\n".join(notes) + "\n"
    )  # fmt: skip
    if args.timing:
        body += _timing(args)
    if args.control:
        body += _never_known_control(5)
    print(body, flush=True)
    if not args.variants:  # a control / timing run alone keeps the variants' table as it is
        body = body[body.index("\n## ") + 1 :] if "\n## " in body else body
    name = f"unstar_removal_{args.split}" if args.variants else "unstar_relearning_control"
    print("wrote", write_result(name, f"UnSTAR: paper vs removal on the {args.split} associations" if args.variants
                                else "UnSTAR: the relearning check against never-known facts", body))  # fmt: skip


if __name__ == "__main__":
    main()
