"""A KV cache for lock-step batched decoding with room reserved up front.

transformers' DynamicLayer appends by ``torch.cat``, which copies the whole cache on every decoding step; with
hundreds of rows that copy costs as much as the model itself on a CPU. This layer writes new entries in place."""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A DynamicLayer over fixed [batch, heads, capacity, dim] buffers; keys/values view the used part."""

    def __init__(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> None:
        super().__init__()
        self.dtype, self.device = key_buffer.dtype, key_buffer.device
        self.is_initialized = True
        self._key_buffer, self._value_buffer, self._length = key_buffer, value_buffer, length
        self._refresh()

    def _refresh(self) -> None:
        self.keys = self._key_buffer[:, :, : self._length]
        self.values = self._value_buffer[:, :, : self._length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self._length + key_states.shape[-2]
        if end > self._key_buffer.shape[2]:
            raise RuntimeError(f"KV buffer full: {end} > capacity {self._key_buffer.shape[2]}")
        self._key_buffer[:, :, self._length : end] = key_states
        self._value_buffer[:, :, self._length : end] = value_states
        self._length = end
        self._refresh()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._key_buffer = self._key_buffer[indices]
        self._value_buffer = self._value_buffer[indices]
        self._refresh()


def preallocated_cache(buffers: list[tuple[torch.Tensor, torch.Tensor]], length: int) -> DynamicCache:
    """A DynamicCache whose layers are :class:`PreallocatedLayer` over ``buffers`` holding ``length`` entries."""
    cache = DynamicCache()
    cache.layers = [PreallocatedLayer(keys, values, length) for keys, values in buffers]
    return cache
