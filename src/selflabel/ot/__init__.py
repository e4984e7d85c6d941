"""ot layer of selflabel."""
