"""data layer of selflabel."""
