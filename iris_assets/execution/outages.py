"""When a service a run needs stops answering for a while: wait, within one limit, then say which.

The services: the MLflow tracking server (an ``http(s)://`` tracking URI), the object
store of ``$IRIS_ASSET_STORAGE`` (``s3://``), and the Celery broker of a run on the
``celery`` executor. ``$IRIS_OUTAGE_LIMIT_SECONDS`` (60 by default) bounds every wait:

* before its first step, a run waits until each of its services answers (an automatic
  retry launched during an outage waits for the recovery instead of failing at once);
  past the limit a Celery run whose broker is away fails naming it (nothing can run),
  and otherwise the run starts and the first call fails with that client's message;
* a storage call that meets a connection error or a 5xx retries with backoff until the
  limit, then fails naming the store (``retrying``);
* the Celery executor publishes a step with the same budget (``publish_retry_policy``),
  and the run worker names the broker when it gives up (``broker_unavailable``);
* MLflow's client retries tracking server requests within the limit
  (``settings.http_retries_within``);
* the instance's PostgreSQL: every storage connection retries within the limit, then fails
  naming it (``iris_assets.instance``); the run worker then waits for PostgreSQL to answer
  again, to record that the run failed and why (``record_when_postgres_answers``).

Addresses are shown without their ``user:password@``.
"""

from __future__ import annotations

import errno
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional, TypeVar
from urllib.parse import urlsplit

from iris_assets import settings
from iris_assets.dagster_private import POSTGRES_GAVE_UP
from iris_assets.tracking.redaction import redacted, without_credentials

T = TypeVar("T")

# Seconds between attempts: quick at first (a restart), then every few seconds.
BACKOFF = (0.5, 1, 2, 4, 5)
LIMIT_SETTING = "$IRIS_OUTAGE_LIMIT_SECONDS"
BROKER = "Celery broker"


class ServiceUnavailable(ConnectionError):
    """A service did not answer within the outage limit; the message names it and its address."""


@dataclass(frozen=True)
class Service:
    """A service a run needs: what it is, where (no credentials), and a probe that raises while it is away."""

    name: str
    address: str
    probe: Callable[[], Any]

    def unavailable(self, seconds: float, error: BaseException) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"The {self.name} at {self.address} did not answer for {seconds:.0f} s (the limit, {LIMIT_SETTING}): "
            f"{type(error).__name__}: {shown_error(error)}"
        )


def limit_seconds() -> int:
    return settings.current().outage_limit_seconds


def backoff() -> Iterator[float]:
    return itertools.chain(BACKOFF, itertools.repeat(BACKOFF[-1]))


def shown_error(error: BaseException) -> str:
    """An error's message without credentials, at most a few lines."""
    return redacted(str(error))[:500]


# -- the services of this environment ------------------------------------------------------------


def tracking_server(tracking_uri: str) -> Optional[Service]:
    if not tracking_uri.startswith(("http://", "https://")):
        return None  # a database or a folder: its client reports its own errors
    shown = without_credentials(tracking_uri)

    def probe() -> None:
        import urllib.error
        import urllib.request

        try:
            urllib.request.urlopen(f"{shown.rstrip('/')}/health", timeout=5).close()
        except urllib.error.HTTPError:
            pass  # it answered (a proxy's 401 or 404 is an answer)

    return Service("MLflow tracking server", shown, probe)


def object_store(base: Any) -> Optional[Service]:
    """The S3-compatible store of a ``UPath`` base, probed with a HEAD of its bucket."""
    if base.protocol not in ("s3", "s3a"):
        return None
    bucket = base.path.split("/", 1)[0]
    endpoint = base.storage_options.get("endpoint_url") or "AWS S3"

    def probe() -> None:
        base.fs.call_s3("head_bucket", Bucket=bucket)

    return Service("object store", f"{without_credentials(endpoint)} (bucket {bucket})", probe)


def celery_broker(broker_url: str) -> Service:
    def probe() -> None:
        import kombu

        with kombu.Connection(broker_url, connect_timeout=5) as connection:
            connection.connect()

    return Service(BROKER, broker_address(broker_url), probe)


def broker_address(broker_url: str) -> str:
    parts = urlsplit(broker_url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.hostname else without_credentials(broker_url)


# -- waiting -------------------------------------------------------------------------------------


def wait_until_ready(services: Sequence[Service], log: Callable[[str], None]) -> list[tuple[Service, BaseException]]:
    """Wait, up to the limit, until every service answers; the services still away, each with
    its last error (the caller decides: fail naming one, or start and let its client say)."""
    deadline = time.monotonic() + limit_seconds()
    away: list[tuple[Service, BaseException]] = [(service, ConnectionError("not asked yet")) for service in services]
    announced = False
    pauses = backoff()
    while away:
        still: list[tuple[Service, BaseException]] = []
        for service, _ in away:
            try:
                service.probe()
            except Exception as error:
                still.append((service, error))
        away = still
        if not away:
            break
        if not announced:
            names = ", ".join(f"the {s.name} at {s.address}" for s, _ in away)
            log(f"Waiting up to {limit_seconds()} s ({LIMIT_SETTING}) for {names}: {shown_error(away[0][1])}")
            announced = True
        if time.monotonic() >= deadline:
            return away
        time.sleep(min(next(pauses), max(0.0, deadline - time.monotonic())))
    if announced:
        log("Every service answers: the run starts.")
    return []


def retrying(service: Service, call: Callable[[], T]) -> T:
    """``call()``, again with backoff while ``service`` is away (connection errors, 5xx), up to the limit."""
    started = time.monotonic()
    pauses = backoff()
    while True:
        try:
            return call()
        except Exception as error:
            if not storage_unavailable(error):
                raise
            waited = time.monotonic() - started
            if waited >= limit_seconds():
                raise service.unavailable(waited, error) from error
            time.sleep(min(next(pauses), limit_seconds() - waited))  # the last attempt at the limit


def storage_unavailable(error: BaseException) -> bool:
    """Whether an object-store error means "not answering now" (retry) rather than a real answer
    (a missing key, a denied request: never retried)."""
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # no S3 support installed: nothing to retry
        return False
    if isinstance(error, (BotoConnectionError, HTTPClientError)):
        return True
    # s3fs turns a 500 into EREMOTEIO and a 503 (SlowDown, ServiceUnavailable) into EBUSY.
    return isinstance(error, OSError) and error.errno in (errno.EREMOTEIO, errno.EBUSY)


# -- the Celery broker ---------------------------------------------------------------------------


def publish_retry_policy(seconds: float) -> dict[str, float]:
    """kombu's retry policy for publishing a step: intervals of 0, 1, 2... capped at 5 s, as many
    retries as cover ``seconds``."""
    interval_step, interval_max = 1.0, 5.0
    retries, waited = 0, 0.0
    while waited < seconds:
        waited += min(retries * interval_step, interval_max)
        retries += 1
    return {"max_retries": retries, "interval_start": 0, "interval_step": interval_step, "interval_max": interval_max}


def result_backend_retries(seconds: float) -> dict[str, float]:
    """Celery's retry settings for its result backend (the instance's PostgreSQL) that span ``seconds``:
    its database backend otherwise gives up after 3 retries within ~0.1 s (measured), failing the run
    worker that waits for a step. Celery sleeps a random time up to 0.5, 1, then 2 s between tries (full
    jitter): one retry per second covers ``seconds`` on average."""
    return {
        "result_backend_always_retry": True,
        "result_backend_max_retries": max(int(seconds), 3),
        "result_backend_base_sleep_between_retries_ms": 250,
        "result_backend_max_sleep_between_retries_ms": 2000,
    }


def broker_unavailable(broker_url: str, error: BaseException) -> ServiceUnavailable:
    return celery_broker(broker_url).unavailable(limit_seconds(), error)


def is_broker_error(error: BaseException) -> bool:
    try:
        from kombu.exceptions import OperationalError
    except ImportError:
        return False
    return isinstance(error, (OperationalError, ConnectionError)) and not isinstance(error, ServiceUnavailable)


# -- PostgreSQL, the instance's storage ----------------------------------------------------------

# How long a run worker whose storage gave up waits for PostgreSQL to answer again, to record why the
# run failed; a restart or failover is back long before. Past it the run worker ends without a record,
# and the dead-run check (``runs.sensors.close_dead_runs``) fails the run.
RECORDING_WAIT_SECONDS = 600


def postgres_gave_up(error: BaseException) -> Optional[BaseException]:
    """The error in ``error``'s chain by which the instance's PostgreSQL storage gave up at the limit
    (raised by ``dagster_private.retry_postgres_connections_within``, naming PostgreSQL), if any."""
    seen: set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "DagsterPostgresException" and str(current).startswith(POSTGRES_GAVE_UP):
            return current
        current = current.__cause__ or current.__context__
    return None


def record_when_postgres_answers(instance: Any, run_id: str, gave_up: BaseException) -> ServiceUnavailable:
    """Wait, up to ``RECORDING_WAIT_SECONDS``, until the instance's storage answers again; the error to
    fail the run with (Dagster records it as the run's failure once it can write)."""
    deadline = time.monotonic() + RECORDING_WAIT_SECONDS
    pauses = backoff()
    while time.monotonic() < deadline:
        try:
            instance.get_run_by_id(run_id)
            break
        except Exception:
            time.sleep(next(pauses))
    return ServiceUnavailable(shown_error(gave_up))
