"""The prediction service: ``POST /predict`` scores flights from their online features with the champion.

    POST /predict   {"flights": [{"carrier": "UA", "flight": 1545, "origin": "EWR", "dest": "IAH",
                                  "flight_date": "2013-01-01", "sched_dep_time": 515}, ...]}
    GET  /health    status, the model version served, whether Redis answers, the last push
    GET  /docs      the OpenAPI page (schema at /openapi.json)

A flight is named by its natural key as in ``features.flight_features``: ``flight_date``
(the New York day, ``YYYY-MM-DD``) and ``sched_dep_time`` (local New York ``HHMM`` as an
integer, 515 = 05:15), with carrier, flight number and origin; ``dest`` is checked against
the stored row. Each answer gives the probability of arriving more than 15 minutes late,
the class at the model version's threshold (its ``threshold`` tag, as batch scoring uses),
the model version, ``predicted_at`` and the ``known_at`` of every feature family.

Scoring is exactly batch scoring: the stored row becomes the frame ``model.to_pandas_features``
builds (``scoring.features_frame``) and goes through ``pipeline.predict_proba`` (see
``flight_predictions``), in a scoring thread limited to one OpenMP thread.

Answers never carry a stack trace: bad input is a 4xx with the reason (404 no features,
413 too many flights or too large a body, 422 malformed or wrong values), Redis down or
no model yet is a 503 with the reason, and the service recovers by itself when Redis or
the registry come back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from threadpoolctl import threadpool_info, threadpool_limits

from ml_platform.domain.features import KNOWN_AT_COLUMNS
from ml_platform.serving.champion import ChampionWatcher, RegistryChampion
from ml_platform.serving.online_store import (
    FlightKey,
    OnlineStore,
    OnlineStoreSettings,
    OnlineStoreUnavailable,
    redacted,
)
from ml_platform.serving.prediction_log import PredictionLog
from ml_platform.serving.scoring import predict_proba

log = logging.getLogger(__name__)
DEFAULT_PORT = 8770
MAX_FLIGHTS = 1000
MAX_BODY_BYTES = 2 * 1024 * 1024  # 1,000 flights are ~120 kB


@dataclass(frozen=True)
class ServiceSettings:
    """What the service needs: the online store, the MLflow server, the lake for the answer log."""

    online: OnlineStoreSettings
    tracking_uri: str
    lake_url: str
    alias: str = "champion"
    max_flights: int = MAX_FLIGHTS
    max_body_bytes: int = MAX_BODY_BYTES
    model_check_seconds: float = 10.0
    log_flush_rows: int = 5000
    log_flush_seconds: float = 5.0
    scoring_threads: int = 1
    home: str | None = None  # the data home whose registry this is (refused when it belongs to another)


# ---------------------------------------------------------------- the API's shapes


class Flight(BaseModel):
    """One flight, by its natural key (New York day and scheduled departure as local HHMM)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "carrier": "UA",
                    "flight": 1545,
                    "origin": "EWR",
                    "dest": "IAH",
                    "flight_date": "2013-01-01",
                    "sched_dep_time": 515,
                }
            ]
        },
    )

    carrier: str = Field(pattern=r"^[A-Z0-9]{2}$", description="carrier code, e.g. UA")
    flight: StrictInt = Field(ge=1, le=99999, description="flight number")
    origin: str = Field(pattern=r"^[A-Z]{3}$", description="origin airport (FAA code), e.g. EWR")
    dest: str = Field(pattern=r"^[A-Z]{3}$", description="destination airport (FAA code), e.g. IAH")
    flight_date: dt.date = Field(description="the New York day of the scheduled departure, YYYY-MM-DD")
    sched_dep_time: StrictInt = Field(
        ge=0, le=2359, description="scheduled departure, local New York HHMM (515 = 05:15)"
    )

    @field_validator("flight_date", mode="before")
    @classmethod
    def _iso_day(cls, value):
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(f"{value!r} is not a day written YYYY-MM-DD")
        return value

    @field_validator("sched_dep_time")
    @classmethod
    def _minutes(cls, value: int) -> int:
        if value % 100 >= 60:
            raise ValueError(f"{value} is not an HHMM time (minutes {value % 100} >= 60)")
        return value


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flights: list[Flight] = Field(min_length=1, description=f"1 to {MAX_FLIGHTS} flights")


class KnownAt(BaseModel):
    weather_known_at: dt.datetime | None
    airport_state_known_at: dt.datetime | None
    history_known_at: dt.datetime | None


class Prediction(BaseModel):
    carrier: str
    flight: int
    origin: str
    dest: str
    flight_date: dt.date
    sched_dep_time: int
    predicted_at: dt.datetime = Field(description="scheduled departure minus the horizon: what the features describe")
    probability: float = Field(description="probability of arriving more than 15 minutes late")
    predicted_class: bool = Field(description="probability >= threshold")
    threshold: float
    model_version: int
    after_training_cutoff: bool = Field(description="false: the model was trained on this flight's day or later")
    known_at: KnownAt = Field(description="the newest source time each feature family used (all <= predicted_at)")
    airport_state_online: bool = Field(description="true: the stream's fresher airport state replaced the pushed one")
    features_pushed_at: dt.datetime


class Missing(BaseModel):
    flight: Flight
    reason: str


class PredictResponse(BaseModel):
    request_id: str
    model_version: int
    predictions: list[Prediction]
    missing: list[Missing] = Field(default_factory=list, description="only with ?partial=true")


class Problem(BaseModel):
    reason: str
    detail: list | None = None


# ---------------------------------------------------------------- scoring


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _limit_scoring_thread() -> None:
    """Runs once in each scoring thread: scikit-learn's OpenMP uses one thread there."""
    threadpool_limits(limits=1, user_api="openmp")


class PredictionService:
    """The state behind the app: the online store, the champion watcher, the answer log, the scoring threads."""

    def __init__(self, settings: ServiceSettings, *, champion: RegistryChampion | None = None) -> None:
        self.settings = settings
        self.store = OnlineStore(settings.online)
        self.watcher = ChampionWatcher(
            champion or RegistryChampion(settings.tracking_uri, settings.alias, settings.home),
            check_seconds=settings.model_check_seconds,
        )
        self.answers = PredictionLog(
            settings.lake_url, max_rows=settings.log_flush_rows, max_seconds=settings.log_flush_seconds
        )
        self.scoring = ThreadPoolExecutor(
            settings.scoring_threads, thread_name_prefix="scoring", initializer=_limit_scoring_thread
        )

    def start(self) -> None:
        self.watcher.check()  # the first load, before the first request when the registry answers
        self.watcher.start()
        self.answers.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.scoring.shutdown(wait=True)
        self.answers.close()
        self.store.close()

    def scoring_openmp_threads(self) -> int | None:
        """What OpenMP reports inside a scoring thread (1 when the limit holds)."""
        info = self.scoring.submit(lambda: [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"])
        threads = info.result(timeout=10)
        return max(threads) if threads else None

    def predict(self, flights: list[Flight], partial: bool) -> tuple[int, dict]:
        """(HTTP status, body) for a validated request; runs in a scoring thread."""
        model = self.watcher.model  # one snapshot: the whole request scores with one version
        if model is None:
            return 503, {
                "reason": f"no champion model loaded yet ({self.watcher.last_error or 'loading'}); retry shortly"
            }
        keys = [FlightKey(f.flight_date, f.carrier, f.flight, f.origin, f.sched_dep_time) for f in flights]
        try:
            lookups = self.store.read(keys)
        except OnlineStoreUnavailable as e:
            return 503, {"reason": str(e)}
        for flight, lookup in zip(flights, lookups, strict=True):
            if lookup.row is not None and lookup.row["dest"] != flight.dest:
                stored = lookup.row["dest"]
                lookup.row, lookup.status = None, 422
                lookup.reason = f"this flight goes to {stored}, not {flight.dest}"
        found = [(f, lk) for f, lk in zip(flights, lookups, strict=True) if lk.row is not None]
        missing = [
            {"flight": f.model_dump(mode="json"), "reason": lk.reason}
            for f, lk in zip(flights, lookups, strict=True)
            if lk.row is None
        ]
        if missing and not partial:
            status = 404 if any(lk.status == 404 for lk in lookups if lk.row is None) else 422
            return status, {
                "reason": f"{len(missing)} of {len(flights)} flights cannot be scored: {missing[0]['reason']}",
                "missing": missing,
            }
        proba = predict_proba(model.pipeline, [lk.row for _, lk in found], model.feature_columns) if found else []
        request_id = uuid.uuid4().hex
        scored_at = dt.datetime.now(dt.UTC)
        predictions, logged = [], []
        for (flight, lk), p in zip(found, proba, strict=True):
            row, probability = lk.row, float(p)
            predicted_class = probability >= model.threshold
            after = model.training_cutoff is None or flight.flight_date > model.training_cutoff
            predictions.append(
                {
                    **flight.model_dump(mode="json"),
                    "predicted_at": _iso(row["predicted_at"]),
                    "probability": probability,
                    "predicted_class": predicted_class,
                    "threshold": model.threshold,
                    "model_version": model.version,
                    "after_training_cutoff": after,
                    "known_at": {c: _iso(row[c]) for c in KNOWN_AT_COLUMNS},
                    "airport_state_online": lk.airport_state_online,
                    "features_pushed_at": _iso(lk.pushed_at),
                }
            )
            logged.append(
                {
                    "request_id": request_id,
                    "scored_at": scored_at,
                    **flight.model_dump(),
                    "predicted_at": row["predicted_at"],
                    "model_version": model.version,
                    "probability": probability,
                    "predicted_class": predicted_class,
                    "threshold": model.threshold,
                    **{c: row[c] for c in KNOWN_AT_COLUMNS},
                    "airport_state_online": lk.airport_state_online,
                    "features_pushed_at": lk.pushed_at,
                }
            )
        self.answers.append(logged)
        body = {"request_id": request_id, "model_version": model.version, "predictions": predictions}
        if partial:
            body["missing"] = missing
        return 200, body

    def health(self) -> tuple[int, dict]:
        reasons = []
        redis_state: dict = {"url": redacted(self.settings.online.url), "key_prefix": self.settings.online.prefix}
        try:
            self.store.ping()
            redis_state["ok"] = True
            redis_state["last_push"] = self.store.last_push()
        except OnlineStoreUnavailable as e:
            redis_state.update(ok=False, reason=str(e))
            reasons.append(str(e))
        model = self.watcher.model
        if model is None:
            reasons.append(f"no champion model loaded ({self.watcher.last_error or 'loading'})")
        body = {
            "status": "ok" if not reasons else "degraded",
            "reasons": reasons,
            "model_version": model.version if model else None,
            "model": {
                "alias": self.watcher.source.alias,
                "threshold": model.threshold if model else None,
                "training_cutoff": _iso(model.training_cutoff) if model else None,
                "loaded_at": _iso(model.loaded_at) if model else None,
                "last_check": _iso(self.watcher.last_check),
                "check_seconds": self.watcher.check_seconds,
                "last_error": self.watcher.last_error,
            },
            "redis": redis_state,
            "scoring_openmp_threads": self.scoring_openmp_threads(),
            "prediction_log": {
                "folder": f"{self.settings.lake_url.rstrip('/')}/raw/online_predictions",
                "buffered": self.answers.buffered,
                "files_written": self.answers.files_written,
                "rows_written": self.answers.rows_written,
                "rows_dropped": self.answers.rows_dropped,
                "last_error": self.answers.last_error,
            },
        }
        return (200 if not reasons else 503), body


# ---------------------------------------------------------------- the app


def _validation_reason(errors: list[dict]) -> str:
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    if first.get("type") == "json_invalid":
        return f"malformed JSON: {first.get('ctx', {}).get('error', first.get('msg'))}"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


class BodyLimit:
    """413 for a body above ``limit`` bytes, before anything parses it: announced by Content-Length,
    or streamed (chunked), in which case the body is read here up to the limit and handed on whole."""

    DRAIN_FACTOR = 16  # a refused stream is read on (and dropped) up to 16x the limit, so the client hears the 413

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                return await self._refuse(scope, send, length.decode(errors="replace"))
            return await self.app(scope, receive, send)
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
            if size > self.limit:
                while more and size <= self.DRAIN_FACTOR * self.limit:
                    message = await receive()
                    size += len(message.get("body", b""))
                    more = message["type"] == "http.request" and message.get("more_body", False)
                return await self._refuse(scope, send, f"more than {self.limit}")
            chunks.append(message.get("body", b""))
        body, delivered = b"".join(chunks), False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope, send, size: str) -> None:
        response = JSONResponse(
            {"reason": f"request body of {size} bytes is larger than the limit of {self.limit} bytes"}, status_code=413
        )
        await response(scope, None, send)


def _local_docs(app: FastAPI) -> None:
    """Serve /docs with Swagger UI's files from the ``fastapi-offline`` package when it is installed:
    FastAPI's default page loads them from a CDN, which a machine without internet cannot reach.
    (``swagger-ui-bundle`` was tried: its Swagger UI 4 cannot render FastAPI's OpenAPI 3.1.)"""
    try:
        import fastapi_offline
    except ImportError:
        return
    from pathlib import Path

    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    static = Path(fastapi_offline.__file__).parent / "static"
    if not (static / "swagger-ui-bundle.js").is_file():
        return
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != "/docs"]
    app.mount("/docs-static", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - docs",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon.png",
        )


def create_app(settings: ServiceSettings, *, champion: RegistryChampion | None = None) -> FastAPI:
    """The FastAPI app; the service starts (first model load, background threads) with the app's lifespan."""
    service = PredictionService(settings, champion=champion)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await asyncio.to_thread(service.start)
        try:
            yield
        finally:
            await asyncio.to_thread(service.stop)

    app = FastAPI(
        title="ml_platform prediction service",
        description="The champion flight-delay model, scoring flights from their online features in Redis.",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in error.errors()][:20]
        return JSONResponse({"reason": _validation_reason(list(error.errors())), "detail": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the trace goes to the log, never to the client
        return JSONResponse(
            {"reason": f"internal error ({type(error).__name__}); see the service log"}, status_code=500
        )

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    _local_docs(app)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses={404: {"model": Problem}, 413: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}},
    )
    async def predict(
        body: PredictRequest,
        partial: Annotated[
            bool, Query(description="answer 200 for the flights that have features, listing the others under 'missing'")
        ] = False,
    ):
        """The probability that each flight arrives more than 15 minutes late, from its online features."""
        if len(body.flights) > settings.max_flights:
            return JSONResponse(
                {
                    "reason": f"{len(body.flights)} flights in one request; at most "
                    f"{settings.max_flights}: split the batch"
                },
                status_code=413,
            )
        loop = asyncio.get_running_loop()
        status, answer = await loop.run_in_executor(service.scoring, service.predict, body.flights, partial)
        return JSONResponse(answer, status_code=status)

    @app.get("/health")
    async def health():
        """Whether the service can answer: a champion loaded and Redis reachable (503 otherwise, with reasons)."""
        status, answer = await asyncio.to_thread(service.health)
        return JSONResponse(answer, status_code=status)

    return app


def serve(
    settings: ServiceSettings,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Run the service with uvicorn until SIGINT/SIGTERM (then the answer log is flushed)."""
    import uvicorn

    os.environ.setdefault("OMP_NUM_THREADS", "1")  # in case OpenMP has not started yet; scoring threads limit it anyway
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, access_log=access_log)
