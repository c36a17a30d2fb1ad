"""``obliviate evaluate``: judge a model made anywhere on any benchmark's evaluation and attacks - the same code
``obliviate unlearn`` runs before and after - and write a run directory in the common metrics.json schema."""

from __future__ import annotations

from typing import Annotated

import typer

from obliviate.cli.common import (
    ConfigOpt,
    DeviceOpt,
    DtypeOpt,
    LimitOpt,
    OutOpt,
    QuietOpt,
    RemoteOpt,
    SeedOpt,
    app,
    run_action,
)
from obliviate.cli.unlearn import benchmark_of, parse_sets, run_config

Opt = typer.Option
Str = str | None


def evaluate_action(cfg) -> None:
    from obliviate.api import evaluate as api_evaluate
    from obliviate.cli.render import print_run

    result = api_evaluate(cfg)
    print_run(result.run_dir, result.metrics)


@app.command()
def evaluate(
    forget: Annotated[Str, typer.Argument(help="what was to be forgotten: a sequence or question-answer file, or "
                                               "builtin:NAME [the benchmark's default]")] = None,
    model: Annotated[Str, Opt(help="the model to evaluate: a model directory, a LoRA adapter directory (loaded on "
                                   "its base model), a hub id, embedded, tiny[:SEED]")] = None,
    benchmark: Annotated[Str, Opt(help="memorization | qa | associations | tofu | muse-news [from the forget "
                                       "set]")] = None,
    before: Annotated[Str, Opt(help="the model of the before column, e.g. the one unlearning started from "
                                    "[memorization / qa / associations: the evaluated model; tofu: TOFU-mini's full "
                                    "model; muse-news: its target]")] = None,
    retain_only: Annotated[Str, Opt(help="a model never trained on the forget set: PrivLeak and KS forget quality "
                                         "(memorization, tofu, muse-news) [tofu / muse-news: their own]")] = None,
    reference: Annotated[Str, Opt(help="memorization: never-seen reference sequences")] = None,
    retain: Annotated[Str, Opt(help="qa / associations: facts to keep")] = None,
    base_model: Annotated[Str, Opt(help="tofu / muse-news: the base model their testbeds are fine-tuned from "
                                        "[embedded]")] = None,
    set_: Annotated[list[str] | None, Opt("--set", help="KEY=VALUE for any config key, repeatable "
                                                        "(benchmark.leak_k=4)")] = None,
    config: ConfigOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = None,
    trust_remote_code: RemoteOpt = None,
    limit: LimitOpt = None,
    seed: SeedOpt = None,
    output_dir: OutOpt = None,
    no_progress: QuietOpt = False,
) -> None:
    """Evaluate a model as it is - one unlearned by obliviate, another toolkit, or anyone - on a benchmark's
    evaluation and attacks: memorization (MA / EL / MIA per sequence, c(D_f), MIAU), qa, associations, tofu
    (forget quality, model utility) or muse-news (VerbMem, KnowMem, PrivLeak). --before fills the before column,
    --retain-only the comparison with a model that never saw the forget set. Writes metrics.json, summary.md and
    report.html; `obliviate compare` takes the run beside unlearn runs."""

    def build():
        bench = benchmark_of(benchmark, "none", forget, config)
        overrides = {
            "forget": forget, "benchmark.name": bench, "limit": limit, "seed": seed, "output_dir": output_dir,
            "progress": False if no_progress else None, "evaluate.model": model, "evaluate.before": before,
            "evaluate.retain_only": retain_only, "benchmark.reference": reference, "benchmark.retain": retain,
            "model.model": base_model, "model.device": device, "model.dtype": dtype,
            "model.trust_remote_code": trust_remote_code, **parse_sets(set_),
        }  # fmt: skip
        return run_config(config, overrides)

    run_action(build, evaluate_action)
