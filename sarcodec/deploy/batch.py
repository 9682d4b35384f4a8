"""Archive batches on Dask distributed: compress (or decompress) many scenes, one task per scene and band.

:func:`run_batch` plans the jobs on the client: one per single-band raster (``NAME.sarc``), one per band of a
multi-band raster (``NAME_bK.sarc``) or, with ``decompress=True``, one per ``.sarc`` file (``NAME.tif``). It then
submits them to Dask, to a ``LocalCluster`` of worker processes (one thread and one PyTorch thread each, so N workers
use N cores) or to an existing scheduler, whose workers may run on other machines that mount the same paths (jobs
carry absolute paths for that reason). Dask, not a home-made pool, so the same batch scales from a laptop to a
cluster and brings its scheduler, its retries of tasks whose worker died, its dashboard and its progress bar.

- Resumable: a job whose output exists and verifies is skipped. A ``.sarc`` verifies when it opens (which checks
  the whole-file checksum) and records the source's height, width and band; a decoded GeoTIFF when sarcodec wrote
  it (its TIFF Software tag), every block is in the file and it has the ``.sarc``'s height and width. A damaged
  output sarcodec wrote is written again.
- Nothing else is replaced: an existing file at an output's name that sarcodec did not write (not a ``.sarc``, the
  complete ``.sarc`` of another raster, a GeoTIFF without sarcodec's tag, anything but a regular file) fails its
  scene with a one-line reason, and a ``manifest.csv`` that is not a batch manifest stops the batch before it starts.
- Atomic: ``sarcodec.compress``/``decompress`` write a temporary file and rename it into place, so an interrupted
  batch leaves no partial output under a final name; ``OUTDIR/manifest.csv`` is written the same way, at the end.
  An interrupted batch on a local cluster also removes the temporary files of the scenes its killed workers were
  writing (:func:`_remove_partial_outputs`).
- Isolated: each task catches every ``Exception`` and returns a failed row, so one bad scene never stops the others;
  :func:`raise_for_failures` then turns failed rows into :class:`BatchError` (exit code 6 on the command line).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sarcodec.errors import BadInputError, OutputError, SarcodecError

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "BatchError",
    "COMPRESS_OPTIONS",
    "DECOMPRESS_OPTIONS",
    "Job",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "find_sarcs",
    "plan_jobs",
    "raise_for_failures",
    "run_batch",
    "run_job",
    "summary_line",
    "write_manifest",
]

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("input", "band", "output", "status", "bytes", "bpp", "seconds", "error")
#: Keyword arguments of ``sarcodec.compress`` a batch passes through (``band`` also chooses the jobs).
COMPRESS_OPTIONS = frozenset({"quality", "bpp", "max_error", "max_error_units", "lossless", "model", "units", "band",
                              "runtime", "speckle"})
#: Keyword arguments of ``sarcodec.decompress`` a batch passes through.
DECOMPRESS_OPTIONS = frozenset({"cog", "model", "speckle"})
#: Seconds to wait for an existing scheduler before giving up.
CONNECT_TIMEOUT_S = 10.0


class BatchError(SarcodecError):
    """Some scenes of a batch failed; the others were written (the manifest says which failed and why)."""

    exit_code = 6


@dataclass(frozen=True)
class Job:
    """One task: code ``source`` to ``output``. ``band`` is the raster band compressed (None when decompressing,
    or when the raster could not be opened while planning: its task then fails and says why)."""

    source: Path
    band: int | None
    output: Path


def find_sarcs(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and directories (recursively, sorted) into ``.sarc`` files; a missing path or a directory
    without any is an error. Files named explicitly are taken as they are (a foreign one fails in its task)."""
    from sarcodec.io.raster import expand_paths

    return expand_paths(paths, lambda f, _: f.suffix == ".sarc", ".sarc files")


def _bands(raster: Path, band: int | None) -> list[tuple[int | None, str]]:
    """(band, output stem) of each job of ``raster``: every band of a multi-band raster unless ``band`` is given."""
    from sarcodec.io.raster import open_raster

    try:
        with open_raster(raster, 1) as reader:
            count = reader.info.band_count
    except Exception:  # unreadable: one job, whose task reports why in the manifest instead of ending the batch
        return [(band, raster.stem)]
    if count == 1:
        return [(1 if band is None else band, raster.stem)]
    return [(b, f"{raster.stem}_b{b}") for b in ([band] if band is not None else range(1, count + 1))]


def plan_jobs(inputs: Sequence[str | Path], outdir: str | Path, *, decompress: bool = False,
              band: int | None = None) -> list[Job]:
    """The jobs of a batch, in input order, with absolute paths (an input listed twice is one job). Two inputs
    that would write the same output (the same file name in two folders) are an error, raised before any work."""
    out = Path(outdir).absolute()
    jobs: list[Job] = []
    if decompress:
        for sarc in dict.fromkeys(p.absolute() for p in find_sarcs(inputs)):
            jobs.append(Job(sarc, None, out / f"{sarc.stem}.tif"))
    else:
        from sarcodec.io.raster import find_rasters

        for raster in dict.fromkeys(p.absolute() for p in find_rasters(list(inputs))):
            jobs.extend(Job(raster, b, out / f"{stem}.sarc") for b, stem in _bands(raster, band))
    owners: dict[Path, Job] = {}
    for job in jobs:
        first = owners.setdefault(job.output, job)
        if first is not job:
            raise BadInputError(f"{first.source} and {job.source} would both write {job.output}: rename one or "
                                "run them as separate batches")
    return jobs


# ------------------------------------------------------------------------------ the task
def _one_line(exc: BaseException) -> str:
    """An error as one line: sarcodec's own messages as they are, anything else prefixed with its type."""
    text = str(exc) if isinstance(exc, SarcodecError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _row(job: Job, status: str, size: int | None = None, pixels: int | None = None, seconds: float | None = None,
         error: str = "") -> dict[str, Any]:
    return {"input": str(job.source), "band": job.band, "output": str(job.output), "status": status,
            "bytes": size, "bpp": None if size is None or not pixels else size * 8 / pixels,
            "seconds": seconds, "error": error}


def _verified_sarc(job: Job) -> int | None:
    """The source's pixel count if ``job.output`` is a complete ``.sarc`` of it (checksum, height, width, band)."""
    from sarcodec.codec.info import read_info
    from sarcodec.io.raster import open_raster

    try:
        info = read_info(job.output)
        with open_raster(job.source, job.band) as reader:
            src = reader.info
    except Exception:  # damaged or foreign output (or unreadable source): redone, and a real problem fails then
        return None
    if (info["height"], info["width"], info["band"]) != (src.height, src.width, src.band):
        return None
    return src.height * src.width


def _tif_header(path: Path) -> tuple[str, tuple[int, int]] | None:
    """The TIFF Software tag ('' when there is none) and the height and width of the GeoTIFF at ``path``; None
    when it does not open (not a raster, or cut short inside its header)."""
    import rasterio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                return str(ds.tags().get("TIFFTAG_SOFTWARE", "")), (ds.height, ds.width)
    except Exception:
        return None


def _verified_tif(job: Job) -> int | None:
    """The pixel count if ``job.output`` is a GeoTIFF that sarcodec wrote (its Software tag), that has every block
    within the file (a copy or a write cut short does not: ``raster.tiff_complete``) and the ``.sarc``'s height and
    width."""
    from sarcodec.codec.api import SOFTWARE_PREFIX
    from sarcodec.codec.info import read_info
    from sarcodec.io.raster import tiff_complete

    header = _tif_header(job.output)
    if header is None or not header[0].startswith(SOFTWARE_PREFIX) or not tiff_complete(job.output):
        return None
    try:
        info = read_info(job.source)
    except Exception:  # a damaged source: redone, and the problem fails then
        return None
    shape = header[1]
    return shape[0] * shape[1] if shape == (info["height"], info["width"]) else None


def _foreign(job: Job, decompress: bool) -> str | None:
    """Why the existing ``job.output``, which did not verify, is not a file this batch may replace; None when it
    may: a ``.sarc``, or a GeoTIFF with sarcodec's Software tag, that is damaged or cut short. A complete file of
    another source, a symbolic link (replacing it would replace the link), anything else that is not a regular file,
    a ``.sarc`` of a format this version does not read, and whatever cannot be recognised as sarcodec's (such as a
    file cut short before its header) are someone's, or cannot be known not to be."""
    from sarcodec.io.raster import tiff_complete
    from sarcodec.io.sarc import MAGIC, READ_VERSIONS

    output = job.output
    if output.is_symlink():
        return "is a symbolic link"
    if not output.is_file():
        return "is not a regular file"
    if decompress:
        from sarcodec.codec.api import SOFTWARE_PREFIX

        header = _tif_header(output)
        if header is None:
            return "is not a GeoTIFF that sarcodec wrote (it does not open)"
        software, shape = header
        if not software.startswith(SOFTWARE_PREFIX):
            return "was not written by sarcodec (no sarcodec Software tag)"
        if not tiff_complete(output):
            return None  # damaged or cut short: redone
        from sarcodec.codec.info import read_info

        try:
            read_info(job.source)
        except Exception:  # the .sarc cannot be read: the scene fails on that, and the GeoTIFF is not blamed
            return None
        return f"is the complete decoded GeoTIFF of another .sarc ({shape[0]} x {shape[1]})"
    with open(output, "rb") as f:
        head = f.read(len(MAGIC) + 2)
    if head[: len(MAGIC)] != MAGIC:
        return "is not a .sarc file"
    version = int.from_bytes(head[len(MAGIC):], "little") if len(head) == len(MAGIC) + 2 else None
    if version is not None and version not in READ_VERSIONS:
        return f"is a .sarc of format version {version}, which this version does not read"
    from sarcodec.codec.info import read_info
    from sarcodec.io.raster import open_raster

    try:
        info = read_info(output)
    except Exception:  # a damaged .sarc (a copy cut short): redone
        return None
    try:
        with open_raster(job.source, job.band):
            pass
    except Exception:  # the source cannot be read (now): the scene fails on that, and the .sarc is not blamed
        return None
    return f"is the .sarc of another raster ({info['height']} x {info['width']}, band {info['band']})"


def run_job(job: Job, decompress: bool, options: Mapping[str, Any]) -> dict[str, Any]:
    """The task a worker runs: skip a verified output, else write it (replacing a damaged one that sarcodec wrote,
    never anyone else's file: :func:`_foreign`). Never raises: a failure becomes a ``failed`` row, so that one scene
    cannot stop the batch."""
    start = time.monotonic()
    try:
        exists = job.output.exists() or job.output.is_symlink()
        if exists:  # verified without PyTorch: skipping costs a header read, not an import
            pixels = _verified_tif(job) if decompress else _verified_sarc(job)
            if pixels is not None:
                return _row(job, "skipped", job.output.stat().st_size, pixels, time.monotonic() - start)
            reason = _foreign(job, decompress)
            if reason is not None:
                raise OutputError(f"{job.output}: exists and {reason}; remove it or choose another output folder")
        import torch

        from sarcodec.codec.pipeline import set_cpu_workers

        torch.set_num_threads(1)  # one core per worker process: N workers use N cores, not N x cores
        set_cpu_workers(1)  # the same for the near-lossless/lossless tiles, which use no PyTorch
        if decompress:
            from sarcodec.codec.api import decompress as decode

            d = decode(job.source, job.output, device="cpu", overwrite=exists, **options)
            size, pixels = job.output.stat().st_size, d.height * d.width
        else:
            from sarcodec.codec.api import compress

            c = compress(job.source, job.output, band=job.band, device="cpu", overwrite=exists, **options)
            size, pixels = c.bytes, c.height * c.width
        return _row(job, "done", size, pixels, time.monotonic() - start)
    except Exception as exc:  # isolation: a failed scene is a row of the manifest, never the end of the batch
        return _row(job, "failed", seconds=time.monotonic() - start, error=_one_line(exc))


# ------------------------------------------------------------------------------ the batch
def _checked_options(options: Mapping[str, Any], decompress: bool) -> dict[str, Any]:
    """The options that were given (None dropped), those of the mode only, a model path made absolute for workers
    elsewhere; an unknown model, or rate options out of range or that do not go together, are an error here,
    before a cluster starts, rather than once per scene."""
    given = {k: v for k, v in options.items() if v is not None}
    allowed = DECOMPRESS_OPTIONS if decompress else COMPRESS_OPTIONS
    foreign = sorted(set(given) - allowed)
    if foreign:
        raise BadInputError(f"{', '.join(foreign)}: not an option of {'decompress' if decompress else 'compress'} "
                            f"(those are {', '.join(sorted(allowed))})")
    if "model" in given:
        from sarcodec.codec.registry import resolve_codec, shipped_codecs

        resolve_codec(given["model"])
        if str(given["model"]) not in shipped_codecs():
            given["model"] = str(Path(given["model"]).absolute())
    if "max_error_units" in given and "max_error" not in given:
        raise BadInputError("max_error_units needs max_error (alone it would be ignored)")
    if not decompress:  # a quality, bpp or maximum error out of range fails here, not in every scene's task
        from sarcodec.codec.api import check_rate_options
        from sarcodec.codec.registry import DEFAULT_CODEC

        check_rate_options(given.get("quality"), given.get("bpp"), given.get("max_error"),
                           given.get("max_error_units", "db"), bool(given.get("lossless")),
                           given.get("model", DEFAULT_CODEC), bool(given.get("speckle")))
    if "runtime" in given:  # checked here, not once per scene on the workers
        import importlib.util

        from sarcodec.codec.api import RUNTIMES

        if given["runtime"] not in RUNTIMES:
            raise BadInputError(f"runtime must be one of {', '.join(RUNTIMES)}, got {given['runtime']!r}")
        if given["runtime"] == "onnx" and importlib.util.find_spec("onnxruntime") is None:
            raise BadInputError("the ONNX runtime needs onnxruntime: pip install 'sarcodec[onnx]'")
    return given


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile, in the main thread (elsewhere nothing changes). Processes started meanwhile keep
    ignoring it: an ignored signal stays ignored across fork and exec, and Python installs its KeyboardInterrupt
    handler only where SIGINT has its default action. (A signal mask would be cleared by multiprocessing's spawn.)"""
    previous = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if previous is None:  # not the main thread, or a handler not set from Python: leave it as it is
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int, timeout: float) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a local cluster of ``workers`` single-threaded processes
    (its HTTP server on a free port: a batch must not warn because another cluster holds Dask's default 8787)."""
    from distributed import Client, LocalCluster

    if scheduler is None:
        if workers < 1:
            raise BadInputError(f"workers must be a positive integer, got {workers}")
        # An interrupt stops the batch in this process, which closes the cluster. Ctrl-C in a terminal signals every
        # process of the command, and each worker would print a KeyboardInterrupt traceback, so the workers ignore
        # SIGINT (Dask stops them with SIGTERM and SIGKILL); a Ctrl-C while they start (~1 s) is ignored too.
        # Dask's warnings are off (errors stay): closing the cluster with workers in the middle of a scene makes
        # the nannies and workers warn about the kills and cancelled tasks it asks for. The command's one line
        # stays the only one; a run reports its scenes itself (summary line, manifest).
        with _sigint_ignored():
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                silence_logs=logging.ERROR)
        with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    try:
        client = Client(scheduler, timeout=timeout)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise BadInputError(f"invalid Dask scheduler address {scheduler!r} ({exc})") from None
    except OSError as exc:  # TimeoutError included
        raise BadInputError(f"cannot reach the Dask scheduler {scheduler} within {timeout:g} s ({exc})") from None
    with client:
        yield client


def _collect(client: Client, jobs: list[Job], decompress: bool, options: dict[str, Any], progress: bool,
             manifest: Path) -> list[dict[str, Any]]:
    """Run one task per job and return their rows in job order; the manifest is written even when interrupted
    (with the rows collected so far)."""
    from distributed import as_completed
    from distributed import progress as progress_bar

    futures = client.map(run_job, jobs, decompress=decompress, options=options, pure=False)
    index = {future.key: i for i, future in enumerate(futures)}
    rows: list[dict[str, Any] | None] = [None] * len(jobs)
    try:
        if progress:
            with contextlib.redirect_stdout(sys.stderr):  # Dask's text bar writes to stdout, the summary's stream
                progress_bar(futures)  # type: ignore[no-untyped-call]
        finished = as_completed(futures, with_results=True, raise_errors=False)  # type: ignore[no-untyped-call]
        for future, result in finished:
            i = index[future.key]
            if future.status == "finished":
                rows[i] = result
            else:  # the task itself raised (its worker died repeatedly: KilledWorker) or was cancelled
                error = _one_line(result[1]) if future.status == "error" else f"task {future.status}"
                rows[i] = _row(jobs[i], "failed", error=error)
    finally:
        write_manifest([row for row in rows if row is not None], manifest)
    return [row for row in rows if row is not None]


def run_batch(
    inputs: Sequence[str | Path],
    outdir: str | Path,
    *,
    decompress: bool = False,
    workers: int = 2,
    scheduler: str | None = None,
    options: Mapping[str, Any] | None = None,
    progress: bool = False,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Compress the rasters in ``inputs`` (files or directories) into ``outdir`` on Dask, or with
    ``decompress=True`` decode the ``.sarc`` files in them to GeoTIFFs; returns one row per job (the columns of
    :data:`MANIFEST_COLUMNS`, ``status`` one of done, skipped, failed) and writes them to ``outdir/manifest.csv``.

    ``options`` are passed to ``sarcodec.compress`` (:data:`COMPRESS_OPTIONS`) or ``sarcodec.decompress``
    (:data:`DECOMPRESS_OPTIONS`); the codec runs on the CPU. ``scheduler`` is the address of an existing Dask
    scheduler (``workers`` is then unused); without it a local cluster of ``workers`` processes is started and
    closed. ``progress`` shows Dask's progress bar on stderr. ``log`` receives the one-line summary.

    Bad input (no inputs, an ``outdir`` that is a file, a scheduler not reachable within ``connect_timeout``
    seconds, an option of the other mode) raises BadInputError before anything is written. A failed scene does
    not raise: see :func:`raise_for_failures`.
    """
    opts = _checked_options(options or {}, decompress)
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"{out}: exists and is not a directory")
    jobs = plan_jobs(inputs, out, decompress=decompress, band=opts.pop("band", None))
    if not jobs:
        raise BadInputError("no inputs")
    _check_manifest(out / MANIFEST_NAME)
    local_pids: set[int] = set()  # the local cluster's worker processes
    try:
        with _client(scheduler, workers, connect_timeout) as client:
            if scheduler is None:
                local_pids.update(client.run(os.getpid).values())
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{out}: cannot be created ({exc.strerror or exc})") from None
            start = time.monotonic()
            rows = _collect(client, jobs, decompress, opts, progress, out / MANIFEST_NAME)
            seconds = time.monotonic() - start
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM / SIGHUP on the command line (cli.Stopped)
        _remove_partial_outputs(jobs, local_pids)
        raise
    log(summary_line(rows, seconds, out / MANIFEST_NAME))
    return rows


def _remove_partial_outputs(jobs: Sequence[Job], pids: set[int]) -> None:
    """Remove the temporary files (``.NAME.PID.partial*``) that the processes ``pids`` left of the jobs' outputs.
    Called when a batch on a local cluster is interrupted: closing the cluster kills its workers mid-scene, before
    their writers can clean up. Only those workers' files (another batch or command writing into the same folder
    keeps its own), and none with an existing scheduler, whose workers finish their running tasks."""
    import glob

    for job in jobs:
        name = glob.escape(job.output.name)
        for pid in pids:
            for tmp in job.output.parent.glob(f".{name}.{pid}.partial*"):
                with contextlib.suppress(OSError):
                    tmp.unlink()


# ------------------------------------------------------------------------------ manifest and summary
def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "bpp":
        return f"{value:.6f}"
    if column == "seconds":
        return f"{value:.3f}"
    return str(value)


def _check_manifest(path: Path) -> None:
    """OutputError unless ``path`` is absent or a manifest a batch wrote (it is replaced at the end)."""
    if not (path.exists() or path.is_symlink()):
        return
    header = ""
    if path.is_file() and not path.is_symlink():
        with contextlib.suppress(OSError, UnicodeDecodeError), open(path, encoding="utf-8") as f:
            header = f.readline().strip()
    if header != ",".join(MANIFEST_COLUMNS):
        raise OutputError(f"{path}: exists and is not a sarcodec batch manifest (it would be replaced); remove it "
                          "or choose another output folder")


def write_manifest(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Write ``rows`` as CSV (:data:`MANIFEST_COLUMNS`) to ``path`` through a temporary file renamed into place, so
    a reader never sees half a manifest."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(MANIFEST_COLUMNS)
            writer.writerows([_cell(c, row[c]) for c in MANIFEST_COLUMNS] for row in rows)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot be written ({exc.strerror or exc})") from None


def summary_line(rows: Sequence[Mapping[str, Any]], seconds: float, manifest: Path) -> str:
    """One line: done/skipped/failed counts, wall time and scenes per minute (every row counts as a scene)."""
    counts = {status: sum(row["status"] == status for row in rows) for status in ("done", "skipped", "failed")}
    rate = len(rows) * 60 / max(seconds, 1e-9)
    return (f"batch: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed of {len(rows)} "
            f"scene(s) in {seconds:.1f} s ({rate:.1f} scenes/min); manifest {manifest}")


def raise_for_failures(rows: Sequence[Mapping[str, Any]], manifest: Path) -> None:
    """Raise BatchError, naming the first failure, if any row failed."""
    failed = [row for row in rows if row["status"] == "failed"]
    if failed:
        first = failed[0]
        reason = first["error"] if first["input"] in first["error"] else f"{first['input']}: {first['error']}"
        raise BatchError(f"{len(failed)} of {len(rows)} scene(s) failed (first: {reason}); see {manifest}")
