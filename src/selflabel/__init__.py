"""selflabel: representations and cluster labels from unlabelled images with optimal transport.

Layers, bottom to top (a lower layer never imports a higher one)::

    ot -> cluster -> data -> models -> methods -> engine -> evaluate -> report -> cli

The library API is importable without the CLI, e.g. ``from selflabel.ot import sinkhorn_codes``.
"""

from selflabel._version import __version__

__all__ = ["__version__"]
