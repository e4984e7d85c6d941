"""The training job behind ``selflabel train``: build a run from its config, train, evaluate, write.

This is the interface layer's orchestration: it may import every lower layer, and nothing in the
library imports it.
"""
