"""evaluate layer of selflabel."""
