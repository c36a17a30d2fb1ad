"""Task vectors: a difference of weights with +, unary -, scalar * and apply (Ilharco et al.; MUSE's class).

TA/TAU build tau = theta_t - theta_s and evaluate theta_s + c * tau. For a LoRA model the vector is taken over
the effective dense weights of the adapted layers (base weight + scale * B @ A), so the same edit applies to a
full model or to an adapter, and the result is always a plain model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from obliviate.models.sharding import reshard


def effective_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the weights that training changes, named as in the plain (non-PEFT) model.

    Full fine-tuning: every trainable parameter. LoRA (PEFT): each adapted layer's merged weight."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    if not isinstance(model, PeftModel):  # a sharded model's weights: this process's shards (DTensors)
        return {name: p.detach().clone() for name, p in reshard(model).named_parameters() if p.requires_grad}
    out = {}
    for name, module in model.base_model.model.named_modules():
        if isinstance(module, LoraLayer):
            weight = module.get_base_layer().weight.detach().clone()
            for adapter in module.active_adapters:
                if adapter in module.lora_A:
                    weight += module.get_delta_weight(adapter).detach().to(weight.dtype)
            out[f"{name}.weight"] = weight
    return out


@dataclass
class TaskVector:
    """A mapping from parameter name to a weight difference."""

    deltas: dict[str, torch.Tensor]

    @classmethod
    def between(cls, base: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor]) -> TaskVector:
        """tuned - base over the names both hold (shapes must agree)."""
        missing = set(tuned) - set(base)
        if missing:
            raise KeyError(f"base weights lack {sorted(missing)[:3]}")
        deltas = {}
        for name, weight in tuned.items():
            if weight.shape != base[name].shape:
                raise ValueError(f"{name}: shape {tuple(weight.shape)} != {tuple(base[name].shape)}")
            deltas[name] = (weight.detach().float() - base[name].detach().float()).to(weight.dtype)
        return cls(deltas)

    def __add__(self, other: TaskVector) -> TaskVector:
        names = set(self.deltas) | set(other.deltas)
        zero = torch.zeros(())
        return TaskVector({n: self.deltas.get(n, zero) + other.deltas.get(n, zero) for n in names})

    def __neg__(self) -> TaskVector:
        return self * -1.0

    def __mul__(self, scale: float) -> TaskVector:
        return TaskVector({name: delta * scale for name, delta in self.deltas.items()})

    __rmul__ = __mul__

    def norm(self) -> float:
        return float(torch.sqrt(sum((d.float() ** 2).sum() for d in self.deltas.values())))

    @torch.no_grad()
    def apply_to(
        self, model: torch.nn.Module, scale: float = 1.0, base: Mapping[str, torch.Tensor] | None = None
    ) -> torch.nn.Module:
        """Set each named parameter of ``model`` to ``base[name] + scale * delta`` (in place; returns it).

        Without ``base`` the model's current value is the base. Parameters the vector does not name are left
        as they are."""
        params = dict(reshard(model).named_parameters())  # sharded: shard by shard
        unknown = set(self.deltas) - set(params)
        if unknown:
            raise KeyError(f"model has no parameters {sorted(unknown)[:3]}")
        for name, delta in self.deltas.items():
            param = params[name]
            start = param.detach().clone() if base is None else base[name].to(param.device)
            param.copy_((start.float() + scale * delta.to(param.device).float()).to(param.dtype))
        return model
