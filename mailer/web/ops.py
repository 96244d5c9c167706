"""Health, readiness and metrics over HTTP: on `mailer serve`, or alone for a bare daemon."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.engine import Engine

from mailer import ops
from mailer.settings import Config

router = APIRouter()


@dataclass(frozen=True)
class Probe:
    """What the routes need: the database, the settings, and the daemon's state (None when
    this process runs no daemon: a worker, or `mailer serve --no-daemon`)."""

    config: Config
    engine: Engine
    daemon_state: Callable[[], str | None]

    def allowed(self, address: str) -> bool:
        try:
            client = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(
            client in ipaddress.ip_network(entry, strict=False)
            for entry in self.config.settings.ops.metrics_allow
        )


def _probe(request: Request) -> Probe:
    probe: Probe = request.app.state.probe
    return probe


@router.get("/healthz", include_in_schema=False)
def healthz() -> Response:
    """The process answers (nothing else is checked: that is /readyz)."""
    return PlainTextResponse("ok\n")


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> Response:
    """200 when the database answers at the newest migration and a daemon keeps the
    calendar with a fresh tick; 503 otherwise, saying which check failed."""
    probe = _probe(request)
    seen = ops.readiness(probe.engine, probe.config.settings, daemon_state=probe.daemon_state())
    return JSONResponse(
        {"ready": seen.ready, "checks": seen.checks}, status_code=200 if seen.ready else 503
    )


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format, for the addresses in ``[ops] metrics_allow`` only."""
    probe = _probe(request)
    if not probe.allowed(request.client.host if request.client else ""):
        return PlainTextResponse("not allowed from this address\n", status_code=403)
    state = probe.daemon_state()
    leading = None if state is None else state == "leading"
    return Response(ops.metrics(probe.engine, leading=leading), media_type=CONTENT_TYPE_LATEST)


def standalone(probe: Probe) -> FastAPI:
    """The three routes alone, for `[ops] listen` on a bare daemon or worker."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.probe = probe
    app.include_router(router)
    return app


class _Quiet(uvicorn.Server):
    """Uvicorn without its own signal handlers: the command's own stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listener(probe: Probe) -> uvicorn.Server | None:
    """A server for ``[ops] listen`` (None when it is empty); run ``serve()`` beside the
    daemon or worker and set ``should_exit`` to stop it."""
    listen = probe.config.settings.ops.listen
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    return _Quiet(
        uvicorn.Config(
            standalone(probe), host=host, port=int(port), log_level="warning", lifespan="off"
        )
    )
