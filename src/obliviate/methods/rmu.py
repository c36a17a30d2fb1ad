"""RMU (Li et al. 2024): representation misdirection at one decoder block. Layers are numbered as WMDP and
OpenUnlearning number them: layer k is the output of decoder block k (0-based, ``model.layers[k]``), read with a
forward hook - before the final norm, even for the last block. Only answer tokens are steered and kept
(OpenUnlearning's ``labels != -100``); on plain sequences every token but the first."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from obliviate.config import Seed
from obliviate.errors import ConfigError
from obliviate.methods.objective import ObjectiveMethod, QABatch
from obliviate.methods.preference_losses import activation_mse, rmu_control_vector, rmu_loss
from obliviate.methods.reductions import reference_labels
from obliviate.methods.spec import MethodConfig, MethodSpec, register

WMDP_LAYER, WMDP_DEPTH = 7, 32  # WMDP's RMU steers model.layers[7] of 32-layer Zephyr-7B


class RMUConfig(MethodConfig):
    name: Literal["rmu"] = "rmu"
    layer: int | None = Field(
        None, ge=0, description="decoder block (0-based, as model.layers[k]) whose output is steered; default "
        "round(7 / 32 * number of blocks), within range: WMDP's layer 7 on a 32-layer model",
    )  # fmt: skip
    coefficient: float = Field(20.0, gt=0, description="norm c of the random control vector c * u")
    retain_weight: float = Field(100.0, ge=0, description="weight of the retain term")
    seed: Seed = Field(0, description="seed of the random direction u")


def default_layer(depth: int) -> int:
    """WMDP's layer at the same fraction of the depth: round(7 / 32 * depth), clipped to 0..depth-1."""
    return min(max(round(WMDP_LAYER / WMDP_DEPTH * depth), 0), depth - 1)


def decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's decoder blocks: the first ``nn.ModuleList`` with ``config.num_hidden_layers`` modules."""
    config = getattr(model, "config", None) or getattr(getattr(model, "module", None), "config", None)
    depth = getattr(config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and depth is not None and len(module) == depth:
            return module
    raise ConfigError(f"RMU cannot find the model's decoder blocks: no module list of config.num_hidden_layers "
                      f"({depth}) modules in {type(model).__name__}")  # fmt: skip


def block_output(model: torch.nn.Module, batch: QABatch, block: torch.nn.Module) -> torch.Tensor:
    """The hidden states ``block`` outputs [B, L, d] when ``model`` runs on the batch (a forward hook)."""
    captured: list[torch.Tensor] = []

    def keep(module, inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output)

    handle = block.register_forward_hook(keep)
    try:
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    finally:
        handle.remove()
    return captured[0]


class RMU(ObjectiveMethod):
    """Representation misdirection at one layer: forget activations towards c * u, retain activations kept
    at the reference's (the authors also update only a few layers; here every trainable weight moves)."""

    name = "rmu"
    needs_reference = True

    def __init__(self, layer: int | None = None, coefficient: float = 20.0, retain_weight: float = 100.0,
                 seed: int = 0) -> None:  # fmt: skip
        super().__init__(retain_weight)
        self.layer, self.coefficient, self.seed = layer, coefficient, seed
        self._control: torch.Tensor | None = None

    def layer_of(self, depth: int) -> int:
        """The steered block's index on a model with ``depth`` decoder blocks."""
        if self.layer is None:
            return default_layer(depth)
        if not 0 <= self.layer < depth:
            raise ConfigError(f"RMU layer {self.layer} is out of range: this model has {depth} decoder blocks, so "
                              f"layer must be in 0..{depth - 1}")  # fmt: skip
        return self.layer

    def activations(self, model: torch.nn.Module, batch: QABatch) -> torch.Tensor:
        """The steered block's output on the batch [B, L, d]."""
        blocks = decoder_blocks(model)
        return block_output(model, batch, blocks[self.layer_of(len(blocks))])

    def loss(self, model, reference, forget, retain=None, idk=None):
        h_forget = self.activations(model, forget)
        if self._control is None:
            self._control = rmu_control_vector(h_forget.shape[-1], self.coefficient, self.seed)
        control = self._control.to(h_forget.device, h_forget.dtype)
        forget_mask = reference_labels(forget)
        if retain is None:
            return activation_mse(h_forget, control.expand_as(h_forget), forget_mask)
        with torch.no_grad():
            h_ref = self.activations(reference, retain)
        return rmu_loss(h_forget, control, self.activations(model, retain), h_ref, self.retain_weight,
                        forget_mask=forget_mask, retain_mask=reference_labels(retain))  # fmt: skip


register(MethodSpec("rmu", "steer forget activations to a random direction, keep retain ones", RMUConfig,
                    objective=lambda cfg: RMU(**cfg.params())))
