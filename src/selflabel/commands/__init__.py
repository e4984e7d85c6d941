"""The ``selflabel`` sub-commands, one click command per module, registered in ``selflabel.cli``."""
