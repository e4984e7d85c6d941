"""models layer of selflabel."""
