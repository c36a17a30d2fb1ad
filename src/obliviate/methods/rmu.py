"""RMU (Li et al. 2024): representation misdirection at one layer."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from obliviate.config import Seed
from obliviate.methods.objective import ObjectiveMethod, QABatch
from obliviate.methods.preference_losses import activation_mse, rmu_control_vector, rmu_loss
from obliviate.methods.spec import MethodConfig, MethodSpec, register


class RMUConfig(MethodConfig):
    name: Literal["rmu"] = "rmu"
    layer: int = Field(10, ge=1, description="hidden layer whose activations are steered")
    coefficient: float = Field(20.0, gt=0, description="norm c of the random control vector c * u")
    retain_weight: float = Field(100.0, ge=0, description="weight of the retain term")
    seed: Seed = Field(0, description="seed of the random direction u")


class RMU(ObjectiveMethod):
    """Representation misdirection at one layer: forget activations towards c * u, retain activations kept
    at the reference's (the authors also update only a few layers; here every trainable weight moves)."""

    name = "rmu"
    needs_reference = True

    def __init__(self, layer: int = 7, coefficient: float = 20.0, retain_weight: float = 100.0, seed: int = 0) -> None:
        super().__init__(retain_weight)
        self.layer, self.coefficient, self.seed = layer, coefficient, seed
        self._control: torch.Tensor | None = None

    def _hidden(self, model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
        if not 0 < self.layer < len(out.hidden_states):
            raise ValueError(f"RMU layer must be in 1..{len(out.hidden_states) - 1}, got {self.layer}")
        return out.hidden_states[self.layer]

    def loss(self, model, reference, forget, retain=None, idk=None):
        h_forget = self._hidden(model, forget)
        if self._control is None:
            self._control = rmu_control_vector(h_forget.shape[-1], self.coefficient, self.seed)
        control = self._control.to(h_forget.device, h_forget.dtype)
        if retain is None:
            return activation_mse(h_forget, control.expand_as(h_forget), forget.attention_mask)
        with torch.no_grad():
            h_ref = self._hidden(reference, retain)
        return rmu_loss(h_forget, control, self._hidden(model, retain), h_ref, self.retain_weight,
                        forget_mask=forget.attention_mask, retain_mask=retain.attention_mask)  # fmt: skip


register(MethodSpec("rmu", "steer forget activations to a random direction, keep retain ones", RMUConfig,
                    objective=lambda cfg: RMU(**cfg.params())))
