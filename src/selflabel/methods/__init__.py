"""methods layer of selflabel."""
