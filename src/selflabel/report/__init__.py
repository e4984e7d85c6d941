"""The report layer of selflabel.

TEAM NOTE (delete when done): before editing, read /work/main/CONTRIBUTING.md — several engineers
work in this checkout at once: commit only your own paths (`git commit -- <paths>`), never
`git add -A`, reset, stash or amend; test files need globally unique names and no __init__.py;
register CLI commands with a one-line edit of COMMANDS in cli.py; finish by 18:30 UTC.
"""
