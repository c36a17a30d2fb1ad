"""Model loading: the embedded default, local directories, hub ids and a tiny test model."""

from obliviate.models.loading import DEFAULT_MODEL, LoadedModel, load_model, save_model

__all__ = ["DEFAULT_MODEL", "LoadedModel", "load_model", "save_model"]
