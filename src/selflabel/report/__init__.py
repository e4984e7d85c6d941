"""Reports of a run: PNG plots, cluster galleries, confusion matrices and an HTML page.

``selflabel report RUN_DIR`` (see :func:`selflabel.report.build.build_report` and docs/report.md)
writes ``RUN_DIR/report/index.html`` with every figure beside it.
"""
