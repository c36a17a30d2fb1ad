"""A KV cache for staggered lock-step decoding with room reserved up front.

Rows are sorted by the column where they start decoding; at column c the active rows are a leading slice of the
batch, and every active row writes column c. The cache therefore exposes ``buffer[:active, :, :c]`` views: no
padding, no attention mask, no copies when rows join (transformers' DynamicLayer would ``torch.cat`` the whole
cache on every step, which on a CPU costs as much as the model itself)."""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A DynamicLayer over fixed [rows, heads, capacity, dim] buffers; keys/values view the active part."""

    def __init__(self, key_buffer: torch.Tensor, value_buffer: torch.Tensor, length: int) -> None:
        super().__init__()
        self.dtype, self.device = key_buffer.dtype, key_buffer.device
        self.is_initialized = True
        self._key_buffer, self._value_buffer = key_buffer, value_buffer
        self._rows, self._length = key_buffer.shape[0], length
        self._refresh()

    def _refresh(self) -> None:
        self.keys = self._key_buffer[: self._rows, :, : self._length]
        self.values = self._value_buffer[: self._rows, :, : self._length]

    def set_window(self, rows: int, length: int) -> None:
        """Expose the first ``rows`` rows and ``length`` columns; the next update writes column ``length``."""
        self._rows, self._length = rows, length
        self._refresh()

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self._length + key_states.shape[-2]
        if end > self._key_buffer.shape[2]:
            raise RuntimeError(f"KV buffer full: {end} > capacity {self._key_buffer.shape[2]}")
        self._key_buffer[: self._rows, :, self._length : end] = key_states
        self._value_buffer[: self._rows, :, self._length : end] = value_states
        self._length = end
        self._refresh()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._length


class PreallocatedCache(DynamicCache):
    """A DynamicCache made of :class:`PreallocatedLayer` s over ``buffers`` holding ``length`` entries."""

    def __init__(self, buffers: list[tuple[torch.Tensor, torch.Tensor]], length: int) -> None:
        super().__init__()
        self.layers = [PreallocatedLayer(keys, values, length) for keys, values in buffers]

    def set_window(self, rows: int, length: int) -> None:
        for layer in self.layers:
            layer.set_window(rows, length)
