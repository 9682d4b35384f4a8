"""Output folders of the commands that write several files into one (``benchmark``, ``evaluate``): a folder is
written into only when it is new, empty, or holds an earlier run's results, so that a mistyped ``-o`` never
replaces someone's files of the same names (``results.csv``, ``report.md``, figures); and the folder a new output
path would be created in (:func:`nearest_existing`), for checks made before any work."""

from __future__ import annotations

from pathlib import Path

from sarcodec.errors import OutputError

__all__ = ["nearest_existing", "results_folder"]


def results_folder(output: str | Path, marker: str, what: str, create: bool = True) -> Path:
    """``output`` as a folder to write results into, created if missing (with ``create``; else only checked, for a
    caller that creates it once its work has succeeded). OutputError when it is not a folder, or holds files but
    not ``marker`` (the file every earlier run of ``what`` wrote there), or cannot be created."""
    out = Path(output)
    if not str(output).strip():
        raise OutputError("the output folder's path is empty")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise OutputError(f"{out}: holds files and no {marker}, so it is not an earlier {what}'s results; choose a new "
                          "or empty folder")
    if not create:
        return out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot be created ({exc.strerror or exc})") from None
    return out


def nearest_existing(path: Path) -> Path:
    """``path`` itself or its nearest ancestor that exists: where creating ``path`` (and its missing parents) would
    start, so whether that can be done is known before any work."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
