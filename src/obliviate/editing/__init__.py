"""Weight-space editing: task vectors (differences of weights) for task arithmetic."""

from obliviate.editing.task_vector import TaskVector, effective_weights

__all__ = ["TaskVector", "effective_weights"]
