"""Sharded training with torch's FSDP2 (``fully_shard``): every process keeps 1/N of each weight, gradient and
Adam moment; a forward or backward pass gathers one decoder block at a time and frees it again.

What the rest of obliviate needs from a sharded model, and how it gets it here:

- copies (NPO's / IdkDPO's / KL's reference, MATCH's start model, TA's edited model, RMU's frozen copy): FSDP
  refuses ``copy.deepcopy``; a model sharded here answers it with a new model of the same class, sharded the
  same way, whose local shards are copies of this one's - shard by shard, nothing gathered. So every method's
  ``copy.deepcopy(engine.unwrapped)`` holds its second model sharded too (all processes copy together, as they
  run every step together).
- the weight check: each process checks its own shards, then one all-reduce agrees on the verdict.
- the result: :func:`gather_full_model` gathers the full state dict onto the main process (the one place a whole
  model is unavoidable: the audit after unlearning and the saved safetensors directory) and loads it into a plain
  model of the original class.

Every process must run the same forward passes on a sharded model (each pass gathers weights from all of them);
the engine keeps its scoring and micro-batches in step for that."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard

from obliviate.errors import ConfigError

log = logging.getLogger("obliviate")


def local_part(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a sharded (DTensor) tensor; a plain tensor as it is."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def reshard(model: torch.nn.Module) -> torch.nn.Module:
    """Free the whole weights a pass left gathered: FSDP keeps the root unit's (embeddings, head) gathered after a
    forward until a backward, and while gathered, ``named_parameters`` yields those plain tensors, not the shards.
    Call before reading or writing parameters by name; a no-op on an unsharded model."""
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()
    return model


def process_mesh(device: torch.device) -> DeviceMesh:
    """All processes of the default group, on ``device``'s type (cpu with gloo, cuda with NCCL)."""
    return init_device_mesh(device.type, (dist.get_world_size(),))


def shard_model(model: torch.nn.Module, mesh: DeviceMesh) -> torch.nn.Module:
    """Shard ``model`` in place over ``mesh``: each decoder block (the classes the model names in
    ``_no_split_modules``) is one unit, the rest (embeddings, final norm, head) the root unit. Each process keeps
    only its shards, moved to the mesh's device (a model loaded on the CPU never lands whole on a GPU). Returns
    it."""
    if not hasattr(model, "config") or not hasattr(type(model), "_from_config"):
        raise ConfigError(f"sharding needs a Hugging Face transformers model, not {type(model).__name__}")
    plain_class = type(model)
    block_names = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in block_names:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    model.__class__ = _copyable(type(model), plain_class)
    return model


@cache
def _copyable(fsdp_class: type, plain_class: type) -> type:
    """FSDP's class for ``plain_class`` with ``copy.deepcopy`` answered by :func:`sharded_copy`."""
    return type(fsdp_class.__name__, (fsdp_class,), {"__deepcopy__": sharded_copy, "plain_class": plain_class})


def _empty_plain(model: torch.nn.Module) -> torch.nn.Module:
    """A model of ``model``'s original class and config on the meta device (no memory)."""
    with torch.device("meta"):
        out = type(model).plain_class._from_config(model.config, dtype=model.dtype)
    out.generation_config = model.generation_config
    return out


@torch.no_grad()
def sharded_copy(model: torch.nn.Module, memo: dict | None = None) -> torch.nn.Module:
    """An independent copy of a sharded model, sharded the same way: built empty, sharded, then each local shard,
    buffer and ``requires_grad`` flag copied from ``model`` (this process's part only)."""
    first = next(reshard(model).parameters())
    device = local_part(first).device
    out = shard_model(_empty_plain(model), first.device_mesh)
    out.to_empty(device=device)
    params = dict(model.named_parameters())
    for name, param in out.named_parameters():
        local_part(param).copy_(local_part(params[name]))
        param.requires_grad_(params[name].requires_grad)
    buffers = dict(model.named_buffers())
    for name, buffer in out.named_buffers():
        buffer.copy_(buffers[name])
    return out.train(model.training)


def gather_full_model(model: torch.nn.Module, is_main: bool) -> torch.nn.Module | None:
    """The whole model as a plain (unsharded) module on the main process, None on the others. Every process must
    call it (it gathers the full state dict, kept on the main process's CPU only)."""
    state = get_model_state_dict(reshard(model), options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not is_main:
        return None
    device = next(model.parameters()).device
    plain = _empty_plain(model)
    plain.load_state_dict(state, strict=False, assign=True)  # tied weights: the head may be absent or shared
    plain.tie_weights()
    buffers = dict(model.named_buffers())
    for name, buffer in list(plain.named_buffers()):
        if buffer.is_meta:  # a non-persistent buffer (rotary frequencies): not in any state dict
            owner, _, leaf = name.rpartition(".")
            plain.get_submodule(owner)._buffers[leaf] = buffers[name].detach().clone()
    missing = [name for name, p in plain.named_parameters() if p.is_meta]
    if missing:
        raise RuntimeError(f"the gathered state dict lacks {missing[:3]}")
    return plain.to(device).eval()


@torch.no_grad()
def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every value of every tensor is finite on every process (each checks its own shards)."""
    local = [t for t in (local_part(x.detach()) for x in tensors) if t.numel()]
    finite = all(bool(torch.isfinite(n)) for n in torch._foreach_norm(local)) if local else True
    bad = torch.tensor(float(not finite))
    if any(hasattr(t, "to_local") for t in tensors):  # sharded: one verdict for all processes
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
    return not bool(bad)


@dataclass(frozen=True)
class ShardSizes:
    """How many numbers this process holds, against the whole model (what sharding saves)."""

    weights: int  # local shards of the parameters
    full_weights: int  # the whole model's parameters
    adam_state: int  # local shards of Adam's moments (exp_avg, exp_avg_sq)

    @property
    def weight_share(self) -> float:
        return self.weights / self.full_weights

    @property
    def adam_share(self) -> float:
        """Adam's state held here over the whole model's (two moments per parameter)."""
        return self.adam_state / (2 * self.full_weights)


def shard_sizes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> ShardSizes:
    params = list(model.parameters())
    moments = [v for state in optimizer.state.values() for k, v in state.items() if k in ("exp_avg", "exp_avg_sq")]
    return ShardSizes(weights=sum(local_part(p).numel() for p in params), full_weights=sum(p.numel() for p in params),
                      adam_state=sum(local_part(v).numel() for v in moments))  # fmt: skip
