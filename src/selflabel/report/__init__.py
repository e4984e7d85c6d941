"""report layer of selflabel."""
