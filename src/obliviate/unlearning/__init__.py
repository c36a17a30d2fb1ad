"""The unlearning loop and the `obliviate unlearn` run around it."""
