"""``sarcodec serve``: the codec over HTTP (FastAPI on uvicorn).

Endpoints (every one but ``/healthz`` needs ``Authorization: Bearer TOKEN`` when ``SARCODEC_API_TOKEN`` is set):

- ``POST /compress``: a raster upload in the multipart field ``file``; query parameters as the CLI's options
  (``quality``, ``bpp``, ``max_error``, ``max_error_units``, ``lossless``, ``model``, ``units``, ``band``, ``nodata``,
  ``speckle``)
  -> the ``.sarc`` file (``X-Sarcodec-*`` headers: bytes, bpp, mode, units);
- ``POST /decompress``: a ``.sarc`` upload (``cog``, ``srcwin`` and ``speckle`` query parameters) -> the GeoTIFF;
- ``POST /info``: a ``.sarc`` upload -> its header as JSON (as ``sarcodec info``); ``GET /info``: the service
  (version, models, limits);
- ``GET /healthz`` -> ``{"status": "ok"}``; ``GET /metrics`` -> Prometheus text (requests, latency, bytes, queue).

Uploads are streamed to disk (Starlette spools to an unnamed temporary file past 1 MiB, then the bytes are copied
into a folder of this request), never held whole in memory; the request body is counted as it arrives and cut off
with 413 past the upload limit; images beyond the pixel limit get 413 before any coding. Bad input gets a JSON
``{"error": ...}`` with the CLI's message (4xx), unexpected failures a JSON 500 without a traceback. At most
``jobs`` requests work at once and ``queue`` more wait; beyond that 503 at once. Each request's folder is removed
when its response has been sent or it failed; the service's folder when it stops.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations (``Request``, imported
# inside create_app) at definition time.
import functools
import hmac
import inspect
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sarcodec.errors import BadInputError, CorruptFileError, IncompatibleModelError, OutputError, SarcodecError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_STATUS = {BadInputError: 400, CorruptFileError: 400, IncompatibleModelError: 422, OutputError: 500}


@dataclass
class ServeConfig:
    """Limits and settings of the service; :meth:`from_env` reads the ``SARCODEC_*`` variables."""

    max_upload_bytes: int = 4 << 30
    max_pixels: int = 1_000_000_000
    jobs: int = 1  # requests coding at once (each codes its tiles on every core)
    queue: int = 8  # requests waiting for a job slot; more get 503
    #: seconds an upload may send nothing before it is answered 408 (its place among jobs + queue is freed)
    upload_idle_s: float = 30.0
    #: bytes per second an upload must average: it has ``upload_idle_s`` plus one second per this many bytes it
    #: has sent (Apache's mod_reqtimeout MinRate), so a client sending a byte now and then cannot hold a place
    upload_min_rate: float = 4096.0
    token: str | None = field(default=None, repr=False)
    tmpdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))

    @classmethod
    def from_env(cls, **overrides: Any) -> "ServeConfig":
        """``SARCODEC_API_TOKEN``, ``SARCODEC_MAX_UPLOAD_MB``, ``SARCODEC_MAX_PIXELS``, ``SARCODEC_JOBS``,
        ``SARCODEC_QUEUE``, ``SARCODEC_UPLOAD_IDLE_S``, ``SARCODEC_UPLOAD_MIN_RATE``, ``SARCODEC_TMPDIR``;
        ``overrides`` (not None) win."""
        env = os.environ
        values: dict[str, Any] = {}
        try:
            if env.get("SARCODEC_MAX_UPLOAD_MB"):
                megabytes = float(env["SARCODEC_MAX_UPLOAD_MB"])
                if not math.isfinite(megabytes):
                    raise ValueError(f"SARCODEC_MAX_UPLOAD_MB={env['SARCODEC_MAX_UPLOAD_MB']}")
                values["max_upload_bytes"] = int(megabytes * 2**20)
            for key, name in (("upload_idle_s", "SARCODEC_UPLOAD_IDLE_S"),
                              ("upload_min_rate", "SARCODEC_UPLOAD_MIN_RATE")):
                if env.get(name):
                    values[key] = float(env[name])
            for key, name in (("max_pixels", "SARCODEC_MAX_PIXELS"), ("jobs", "SARCODEC_JOBS"),
                              ("queue", "SARCODEC_QUEUE")):
                if env.get(name):
                    values[key] = int(env[name])
        except ValueError as exc:
            raise BadInputError(f"a SARCODEC_* limit is not a number ({exc})") from None
        if env.get("SARCODEC_API_TOKEN"):
            values["token"] = env["SARCODEC_API_TOKEN"]
        if env.get("SARCODEC_TMPDIR"):
            values["tmpdir"] = Path(env["SARCODEC_TMPDIR"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)
        if (config.max_upload_bytes <= 0 or config.max_pixels <= 0 or config.jobs < 1 or config.queue < 0
                or not all(math.isfinite(v) and v > 0 for v in (config.upload_idle_s, config.upload_min_rate))):
            raise BadInputError("limits must be positive and finite (jobs >= 1, queue >= 0)")
        return config


class _Rejected(Exception):
    """An HTTP error with a JSON body."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}


class _BodyLimit:
    """ASGI middleware: 413 for a request whose body is (announced or turns out) larger than ``limit`` bytes, and
    408 for one whose body stops arriving for ``idle_s`` seconds or arrives slower than ``min_rate`` bytes per
    second on average (after ``idle_s`` of grace: the body may take ``idle_s`` plus one second per ``min_rate``
    bytes received). A client that goes quiet mid-upload, or sends a byte now and then, would otherwise hold its
    place among the admitted requests for ever: nine of them locked everyone out with 503."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int,
                 idle_s: float = 30.0, min_rate: float = 4096.0) -> None:
        self.app, self.limit, self.idle_s, self.min_rate = app, limit, idle_s, min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        announced = headers.get(b"content-length")
        if announced is not None and announced.isdigit() and int(announced) > self.limit:
            await _send_json(send, 413, {"error": f"upload larger than the limit ({self.limit} bytes)"})
            return
        import anyio

        seen = 0
        complete = False
        waited = 0.0  # seconds spent waiting for the client (not the time the application took between reads)

        async def counted() -> Message:
            nonlocal seen, complete, waited
            if complete:  # after the body, receive() waits for the disconnect, as long as a response takes
                return await receive()
            allowed = self.idle_s + seen / self.min_rate - waited  # what is left of the average rate's allowance
            asked = anyio.current_time()
            try:
                with anyio.fail_after(max(min(self.idle_s, allowed), 0.0)):
                    message = await receive()
            except TimeoutError:
                if allowed >= self.idle_s:
                    raise _Rejected(408, f"the upload sent nothing for {self.idle_s:g} s; send it again") from None
                raise _Rejected(408, f"the upload arrived slower than {self.min_rate:g} bytes/s; send it again "
                                     "over a faster link") from None
            finally:
                waited += anyio.current_time() - asked
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _Rejected(413, f"upload larger than the limit ({self.limit} bytes)")
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, counted, send)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    import json

    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def _srcwin(text: str) -> tuple[int, int, int, int]:
    """The ``srcwin`` query parameter, ``XOFF,YOFF,XSIZE,YSIZE`` (``decompress --srcwin``'s four integers)."""
    parts = text.split(",")
    try:
        if len(parts) != 4:
            raise ValueError
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise BadInputError(f"srcwin={text}: give XOFF,YOFF,XSIZE,YSIZE, four integers") from None
    return x, y, w, h


def _safe_name(name: str | None, default: str) -> str:
    """The upload's base name with only harmless characters (it names the file in error messages)."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name or "").name)[:120].lstrip(".")
    return base or default


def create_app(config: ServeConfig | None = None) -> Any:
    """The FastAPI application (wrapped in the upload-size middleware)."""
    import anyio
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
    from starlette.background import BackgroundTask
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    from sarcodec.version import __version__

    cfg = config or ServeConfig.from_env()
    try:
        cfg.tmpdir.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f"sarcodec-serve-{os.getpid()}-", dir=cfg.tmpdir))
    except OSError as exc:
        raise OutputError(f"{cfg.tmpdir}: cannot hold the service's temporary files ({exc.strerror or exc})") from None
    registry = CollectorRegistry()
    requests = Counter("sarcodec_requests", "HTTP requests", ["endpoint", "status"], registry=registry)
    latency = Histogram("sarcodec_request_seconds", "request latency (s)", ["endpoint"], registry=registry,
                        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
    bytes_in = Counter("sarcodec_upload_bytes", "bytes uploaded", registry=registry)
    bytes_out = Counter("sarcodec_response_file_bytes", "bytes of files sent", registry=registry)
    in_flight = Gauge("sarcodec_requests_admitted", "requests coding or waiting", registry=registry)
    rejected = Counter("sarcodec_rejected", "requests refused", ["reason"], registry=registry)
    slots = anyio.CapacityLimiter(cfg.jobs)
    admitted = 0
    lock = threading.Lock()

    app = FastAPI(title="sarcodec", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)

    def check_token(request: Request) -> None:
        if cfg.token is None:
            return
        given = request.headers.get("authorization", "")
        if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), cfg.token.encode())):
            raise _Rejected(401, "missing or wrong token (Authorization: Bearer TOKEN)", {"WWW-Authenticate": "Bearer"})

    async def upload(request: Request, workdir: Path, default: str) -> Path:
        """The multipart field ``file``, copied into ``workdir`` under its (sanitized) name."""
        form = await request.form(max_files=1, max_fields=16)
        try:
            part = form.get("file")
            if part is None or isinstance(part, str):
                raise _Rejected(400, "no file: send it in the multipart form field 'file'")
            (workdir / "in").mkdir(exist_ok=True)  # the result folder is workdir/out: an upload named "out" collided
            path = workdir / "in" / _safe_name(part.filename, default)
            with open(path, "wb") as fh:
                while chunk := await part.read(1 << 20):
                    fh.write(chunk)
            bytes_in.inc(path.stat().st_size)
            return path
        finally:
            await form.close()

    async def run(endpoint: str, request: Request, work: Callable[[Path], Any], params: tuple[str, ...] = ()) -> Any:
        """Auth, admission, a folder for the request, the work on a thread, errors as JSON; the folder is
        removed after the response (or at once on failure)."""
        nonlocal admitted
        start = time.perf_counter()
        workdir: Path | None = None
        status = 500
        try:
            check_token(request)
            unknown = sorted(set(request.query_params) - set(params))
            if unknown:  # '?qualty=2' coded at the default quality, and said nothing
                known = f"it takes {', '.join(params)}" if params else "it takes none"
                raise _Rejected(400, f"unknown query parameter(s) {', '.join(unknown)} for /{endpoint}; {known}")
            with lock:
                if admitted >= cfg.jobs + cfg.queue:
                    rejected.labels("busy").inc()
                    raise _Rejected(503, f"busy: {cfg.jobs} job(s) running and {cfg.queue} waiting; retry later",
                                    {"Retry-After": "5"})
                admitted += 1
                in_flight.set(admitted)
            try:
                workdir = root / uuid.uuid4().hex
                workdir.mkdir()
                response = await work(workdir)
            finally:
                with lock:
                    admitted -= 1
                    in_flight.set(admitted)
            status = response.status_code
            if isinstance(response, FileResponse):
                bytes_out.inc(Path(response.path).stat().st_size)
                response.background = BackgroundTask(shutil.rmtree, workdir, ignore_errors=True)
                workdir = None
            return response
        except _Rejected as exc:
            status = exc.status
            if status == 413:
                rejected.labels("too_large").inc()
            return JSONResponse({"error": str(exc)}, status, headers=exc.headers)
        except HTTPException as exc:  # a malformed multipart body
            status = exc.status_code
            return JSONResponse({"error": f"bad upload: {exc.detail}"}, status)
        except SarcodecError as exc:
            status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
            message = (str(exc).replace(f"{workdir}{os.sep}in{os.sep}", "").replace(f"{workdir}{os.sep}", "")
                       if workdir else str(exc))
            return JSONResponse({"error": message}, status)
        except ClientDisconnect:  # the client went away mid-upload: not a server error (nginx's 499 in /metrics)
            status = 499
            return JSONResponse({"error": "the client disconnected"}, 499)
        except Exception as exc:  # noqa: BLE001 (one JSON line, never a traceback)
            return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, 500)
        finally:
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)
            requests.labels(endpoint, str(status)).inc()
            latency.labels(endpoint).observe(time.perf_counter() - start)

    async def coded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        async with slots:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError) -> JSONResponse:
        try:  # who asks comes first: without the token, 401 whatever the parameters (they were checked first)
            check_token(request)
        except _Rejected as denied:
            requests.labels("validation", "401").inc()
            return JSONResponse({"error": str(denied)}, denied.status, headers=denied.headers)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        requests.labels("validation", "400").inc()
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid value')}"}, 400)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def refused(request: Request) -> JSONResponse | None:
        """The 401 answer for a request without the token, else None (for the light GET endpoints)."""
        try:
            check_token(request)
        except _Rejected as exc:
            return JSONResponse({"error": str(exc)}, exc.status, headers=exc.headers)
        return None

    @app.get("/metrics")
    async def metrics(request: Request) -> Any:
        return refused(request) or PlainTextResponse(generate_latest(registry).decode(),
                                                     media_type="text/plain; version=0.0.4")

    @app.get("/info")
    async def service_info(request: Request) -> Any:
        from sarcodec.codec.registry import DEFAULT_CODEC, shipped_codecs

        limits = {k: v for k, v in asdict(cfg).items() if k not in ("token", "tmpdir")}
        return refused(request) or {"service": "sarcodec", "version": __version__, "models": shipped_codecs(),
                                    "default_model": DEFAULT_CODEC, "limits": limits, "auth": cfg.token is not None}

    @app.post("/info")
    async def file_info(request: Request) -> Any:
        from sarcodec.codec.info import read_info

        async def work(workdir: Path) -> Any:
            path = await upload(request, workdir, "upload.sarc")
            info = await anyio.to_thread.run_sync(read_info, path)
            return JSONResponse(_json_safe(info))

        return await run("info", request, work)

    @app.post("/compress")
    async def compress_endpoint(request: Request, quality: float | None = None, bpp: float | None = None,
                                max_error: float | None = None, max_error_units: str = "db", lossless: bool = False,
                                model: str | None = None, units: str | None = None, band: int | None = None,
                                nodata: float | None = None, speckle: bool = False) -> Any:
        from sarcodec.codec.api import compress
        from sarcodec.codec.registry import DEFAULT_CODEC
        from sarcodec.io.raster import open_raster

        async def work(workdir: Path) -> Any:
            path = await upload(request, workdir, "upload.tif")

            def check_size() -> None:
                with open_raster(path, band) as reader:
                    pixels = reader.info.height * reader.info.width
                if pixels > cfg.max_pixels:
                    raise _Rejected(413, f"{path.name}: {pixels} pixels, more than the limit ({cfg.max_pixels})")

            await anyio.to_thread.run_sync(check_size)
            out = workdir / "out" / f"{Path(path.name).stem}.sarc"  # a folder of its own: never the upload's name
            out.parent.mkdir()
            r = await coded(compress, path, out, quality=quality, bpp=bpp, max_error=max_error,
                            max_error_units=max_error_units, lossless=lossless, model=model or DEFAULT_CODEC,
                            units=units, band=band, nodata=nodata, device="cpu", speckle=speckle)
            headers = {"X-Sarcodec-Bytes": str(r.bytes), "X-Sarcodec-Bpp": f"{r.bpp:.6f}",
                       "X-Sarcodec-Mode": r.mode, "X-Sarcodec-Units": r.units}
            return FileResponse(out, media_type="application/octet-stream", filename=out.name, headers=headers)

        return await run("compress", request, work, _query_names(compress_endpoint))

    @app.post("/decompress")
    async def decompress_endpoint(request: Request, cog: bool = False, srcwin: str | None = None,
                                  speckle: bool = True) -> Any:
        from sarcodec.codec.api import decompress
        from sarcodec.codec.info import read_info
        from sarcodec.codec.tiling import Region

        async def work(workdir: Path) -> Any:
            window = None if srcwin is None else _srcwin(srcwin)  # before the upload is read
            path = await upload(request, workdir, "upload.sarc")
            info = await anyio.to_thread.run_sync(read_info, path)
            height, width = int(info["height"]), int(info["width"])
            if window is not None:  # a window beyond the raster is a bad request (400), whatever its size
                Region.from_srcwin(window, height, width)
            pixels = height * width if window is None else window[2] * window[3]
            if pixels > cfg.max_pixels:
                raise _Rejected(413, f"{path.name}: {pixels} pixels, more than the limit ({cfg.max_pixels})")
            out = workdir / "out" / f"{Path(path.name).stem}.tif"
            out.parent.mkdir()
            await coded(decompress, path, out, cog=cog, device="cpu", srcwin=window, speckle=speckle)
            return FileResponse(out, media_type="image/tiff", filename=out.name)

        return await run("decompress", request, work, _query_names(decompress_endpoint))

    limited = _BodyLimit(app, cfg.max_upload_bytes, cfg.upload_idle_s, cfg.upload_min_rate)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await limited(scope, receive, send)
        except _Rejected as exc:  # the body outgrew the limit while the form was being read
            rejected.labels("too_large").inc()
            await _send_json(send, exc.status, {"error": str(exc)})

    asgi.root = root  # type: ignore[attr-defined]  # the tests check that it is left empty
    asgi.fastapi = app  # type: ignore[attr-defined]
    return asgi


@functools.cache
def _query_names(endpoint: Callable[..., Any]) -> tuple[str, ...]:
    """The query parameters an endpoint takes: its own parameters but the request (what FastAPI reads them from)."""
    return tuple(name for name in inspect.signature(endpoint).parameters if name != "request")


def _json_safe(value: Any) -> Any:
    from sarcodec.jsonfloat import float_to_json

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return float_to_json(value)
    return value


def _check_listen(host: str, port: int) -> None:
    """BadInputError unless ``host``:``port`` can be listened on now (a port out of range, in use, or an address
    that is not this machine's): one line before anything starts, instead of uvicorn's traceback."""
    import socket

    if not 0 < port < 65536:
        raise BadInputError(f"port {port}: must be 1..65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        raise BadInputError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def serve(host: str = "127.0.0.1", port: int = 8000, config: ServeConfig | None = None,
          log: Callable[[str], None] | None = None) -> None:
    """Run the service until interrupted (uvicorn, one process; coding runs on worker threads). The address and
    the temporary folder are checked first; ``log`` then gets the line saying where it serves."""
    import uvicorn

    _check_listen(host, port)
    cfg = config or ServeConfig.from_env()
    app = create_app(cfg)
    if log is not None:
        log(f"sarcodec serve on http://{host}:{port} (jobs {cfg.jobs}, queue {cfg.queue}, "
            f"token {'required' if cfg.token else 'not required'})")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on")
    finally:
        shutil.rmtree(app.root, ignore_errors=True)
