"""commands layer of selflabel."""
