"""Folders of images and list/CSV files of paths → :class:`~selflabel.data.files.FileSource`.

Folder layouts:

- **class sub-folders** — the folder holds only sub-folders (hidden ones ignored) and no images at
  its top level: each sub-folder is a class (sorted names → labels ``0..K-1``), its images searched
  recursively;
- **flat or nested** — anything else: every image under the folder, unlabelled (label ``-1``).

Files are sorted by path so indices are stable across runs. Files whose extension is not an image
format (``README.txt``, ``labels.csv``) are ignored and counted in the log; hidden files
(``.DS_Store``, ``._x.jpg``) are ignored. Symbolic links that resolve to a file already listed are
skipped as duplicates.

List files (``.csv``, ``.txt``, ``.lst``, ``.tsv``): one image per row, ``path`` and an optional
``label`` (an integer or a class name; empty → unknown). A CSV may have a header naming the columns
(``path``/``file``/``filename``/``image`` and ``label``/``class``/``target``). Relative paths are
relative to the list file. Missing files and repeated paths are skipped and reported.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

from selflabel.data.decode import IMAGE_EXTENSIONS
from selflabel.data.files import FileSource

log = logging.getLogger(__name__)

LIST_EXTENSIONS = frozenset({".csv", ".txt", ".lst", ".tsv", ".list"})
_PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "img", "filepath")
_LABEL_COLUMNS = ("label", "class", "target", "y", "category")


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _images_under(root: Path) -> tuple[list[Path], int]:
    """All image files under ``root`` (sorted), and how many other files were ignored."""
    found: list[Path] = []
    ignored = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for f in filenames:
            if _hidden(f):
                continue
            if Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / f)
            else:
                ignored += 1
    return sorted(found), ignored


def _dedupe(
    paths: list[Path], labels: list[int]
) -> tuple[list[Path], list[int], list[tuple[str, str]]]:
    seen: dict[str, Path] = {}
    out_p, out_y, skipped = [], [], []
    for p, y in zip(paths, labels, strict=True):
        key = os.path.realpath(p)
        if key in seen:
            skipped.append((str(p), f"duplicate of {seen[key]}"))
            continue
        seen[key] = p
        out_p.append(p)
        out_y.append(y)
    return out_p, out_y, skipped


def load_folder(root: str | os.PathLike[str], **options: Any) -> FileSource:
    """Load a folder of images (class sub-folders → labels; otherwise unlabelled).

    ``options`` go to :class:`FileSource` (``image_size``, ``strict``, ``channels``). Example::

        ds = load_folder("photos/", image_size=96)
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    entries = [e for e in root.iterdir() if not _hidden(e.name)]
    subdirs = sorted(e for e in entries if e.is_dir())
    top_images = [e for e in entries if e.is_file() and e.suffix.lower() in IMAGE_EXTENSIONS]
    paths: list[Path] = []
    labels: list[int] = []
    classes: list[str] | None = None
    ignored = 0
    if subdirs and not top_images:
        classes = []
        for d in subdirs:
            imgs, ign = _images_under(d)
            ignored += ign
            if not imgs:
                log.warning("class folder %s holds no images; it is not a class", d)
                continue
            paths += imgs
            labels += [len(classes)] * len(imgs)
            classes.append(d.name)
    else:
        paths, ignored = _images_under(root)
        labels = [-1] * len(paths)
    if ignored:
        log.info("%s: ignored %d file(s) that are not images by extension", root, ignored)
    if not paths:
        raise ValueError(
            f"no images found in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, "
            "recursively)"
        )
    paths, labels, skipped = _dedupe(paths, labels)
    return FileSource(paths, labels, name=str(root), classes=classes or None, skipped=skipped,
                      **options)


def _parse_rows(path: Path) -> list[list[str]]:
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".csv", ".tsv"):
        delim = "\t" if path.suffix.lower() == ".tsv" else ","
        reader = csv.reader(text.splitlines(), delimiter=delim)
        return [r for r in reader if any(c.strip() for c in r)]
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "\t" in line:
            rows.append([c.strip() for c in line.split("\t")])
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) == 2 and _is_int(parts[1]):
            rows.append(parts)
        else:
            rows.append([line])
    return rows


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def load_list(list_file: str | os.PathLike[str], **options: Any) -> FileSource:
    """Load a CSV/list file of image paths with optional labels (see the module docstring).

    Example (``train.csv``)::

        path,label
        img/cat1.jpg,cat
        img/dog1.jpg,dog

        ds = load_list("train.csv", image_size=128)   # classes ['cat', 'dog']
    """
    list_file = Path(list_file)
    rows = _parse_rows(list_file)
    if not rows:
        raise ValueError(f"list file {list_file} is empty: no image paths")
    path_col, label_col = 0, 1 if any(len(r) > 1 for r in rows) else None
    header = [c.strip().lower() for c in rows[0]]
    if any(h in _PATH_COLUMNS for h in header):
        path_col = next(i for i, h in enumerate(header) if h in _PATH_COLUMNS)
        label_col = next((i for i, h in enumerate(header) if h in _LABEL_COLUMNS), None)
        rows = rows[1:]
    base = list_file.parent
    raw_labels: list[str] = []
    paths: list[Path] = []
    skipped: list[tuple[str, str]] = []
    first_line: dict[str, int] = {}
    for n, row in enumerate(rows, start=1):
        if len(row) <= path_col or not row[path_col].strip():
            raise ValueError(f"{list_file}: row {n} has no path: {row!r}")
        p = Path(row[path_col].strip()).expanduser()
        p = p if p.is_absolute() else base / p
        key = os.path.realpath(p)
        if key in first_line:
            skipped.append((str(p), f"duplicate of row {first_line[key]} in {list_file.name}"))
            continue
        first_line[key] = n
        if not p.is_file():
            skipped.append((str(p), f"missing file (row {n} of {list_file.name})"))
            continue
        paths.append(p)
        raw_labels.append(row[label_col].strip() if label_col is not None and len(row) > label_col
                          else "")
    if not paths:
        report = "; ".join(f"{p}: {why}" for p, why in skipped[:3])
        raise ValueError(f"list file {list_file} names no existing image files ({report})")
    labels, classes = _encode_labels(raw_labels, list_file)
    return FileSource(paths, labels, name=str(list_file), classes=classes, skipped=skipped,
                      **options)


def _encode_labels(raw: list[str], where: Path) -> tuple[list[int], list[str] | None]:
    given = [r for r in raw if r != ""]
    if not given:
        return [-1] * len(raw), None
    if all(_is_int(r) for r in given):
        vals = [int(r) if r != "" else -1 for r in raw]
        if min(vals) < -1:
            raise ValueError(f"{where}: labels must be >= 0 (or empty for unknown)")
        return vals, None
    classes = sorted(set(given))
    lookup = {c: i for i, c in enumerate(classes)}
    return [lookup[r] if r != "" else -1 for r in raw], classes
