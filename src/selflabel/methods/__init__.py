"""Self-supervised methods: each owns its loss for a batch and its assignment phase."""

from selflabel.methods.base import Batch, Method, StepContext, StepOutput

__all__ = ["Batch", "Method", "StepContext", "StepOutput"]
