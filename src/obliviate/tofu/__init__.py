"""TOFU (Maini et al. 2024): its metrics, bit-compatible with the reference implementation."""
