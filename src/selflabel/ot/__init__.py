"""Optimal-transport layer of selflabel.

TEAM NOTE (delete when done): before editing, read /work/main/CONTRIBUTING.md — several engineers
work in this checkout at once: commit only your own paths (`git commit -- <paths>`), never
`git add -A`, reset, stash or amend; register CLI commands with a one-line edit; finish by 18:30 UTC.
"""
