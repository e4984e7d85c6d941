"""engine layer of selflabel."""
