"""Benchmark configs derived from the flat run configs their drivers read (no field written twice)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, create_model

from obliviate.benchmarks.spec import BenchmarkConfig

# what the runner (or the method config) owns, so a benchmark config never repeats it
RUN_FIELDS = frozenset({"model", "method", "forget", "limit", "seed", "save_model", "output_dir", "progress"})


def benchmark_config(name: str, flat: type[BaseModel], drop: frozenset[str] = frozenset()) -> type[BenchmarkConfig]:
    """A BenchmarkConfig named ``name`` with the fields of ``flat`` except the run's (and ``drop``)."""
    fields: dict[str, Any] = {k: (f.annotation, f) for k, f in flat.model_fields.items()
                              if k not in RUN_FIELDS | drop}  # fmt: skip
    fields["name"] = (Literal[name], name)  # type: ignore[valid-type]
    return create_model(f"{name.title().replace('-', '')}BenchmarkConfig", __base__=BenchmarkConfig, **fields)


def flat_config(flat: type[BaseModel], ctx: Any, *, exclude: frozenset[str] = frozenset(), **extra: Any) -> Any:
    """The flat config of a driver, from the run context: the benchmark's fields (less ``exclude``, settings the
    driver does not read) plus the run's."""
    values = ctx.benchmark.model_dump(exclude={"name", *exclude})
    run = {"model": ctx.model, "seed": ctx.seed, "save_model": ctx.save_model, "output_dir": ctx.output_dir,
           "progress": ctx.progress, "forget": ctx.forget or None, "limit": ctx.limit}  # fmt: skip
    values.update({k: v for k, v in run.items() if k in flat.model_fields and v is not None})
    values.update(extra)
    return flat.model_validate(values)
