"""cluster layer of selflabel."""
