"""Running the hub: Prometheus metrics at ``/metrics`` and one JSON log line per request.

With the ``metrics_token`` setting ``/metrics`` needs ``Authorization: Bearer <token>`` and names
partners. Without it, it is open, and every series labelled by partner is added up over partners: an
anonymous scraper sees how much the hub ingests and serves, never who publishes what (a partner's
count would tell others how much it shares, hidden objects included).

Metrics are labelled by the Flask URL rule (``/<api_root>/collections/<id>/objects/``), never by
the raw path, so an id in a URL never becomes a new time series. ``cti-hub serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` (default ``<data_dir>/prometheus``), which gunicorn empties before the
workers start: each worker then writes its samples there and ``/metrics`` adds up all workers. Every
metric here is a counter or a histogram, which stay correct after a worker exits, so no gunicorn
``child_exit`` hook is needed.

The access log (logger ``hub.access``) carries a request id (the client's ``X-Request-ID`` when it
is a sane token, else a fresh one; echoed in the response), method, rule, status, duration and the
partner slug. It never carries query strings (``next`` tokens), keys or Authorization headers.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator

import orjson
from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from hub.auth import Principal

REQUESTS = Counter("cti_hub_http_requests_total", "HTTP requests served", ["method", "endpoint", "status"])
LATENCY = Histogram(
    "cti_hub_http_request_duration_seconds",
    "Time to serve a request",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INGESTED = Counter("cti_hub_objects_ingested_total", "Object versions accepted from a partner", ["partner"])
REFUSED = Counter("cti_hub_objects_refused_total", "Objects refused on publish, by reason", ["partner", "reason"])
DELIVERED = Counter(
    "cti_hub_objects_delivered_total", "Object versions served to a partner (objects endpoints)", ["partner"]
)
DENIALS = Counter(
    "cti_hub_sharing_denials_total", "Requests or objects the sharing rules refused, by reason", ["reason"]
)
NEXT_IGNORED = Counter(
    "cti_hub_next_ignored_total",
    "TAXII requests whose next token could not be used and was ignored, by reason",
    ["reason"],
)
KEY_AGE = Counter(
    "cti_hub_requests_by_key_age_total",
    "Authenticated requests by the age of the API key used (keys past a year are due for rotation)",
    ["age"],
)
KEY_AGE_BUCKETS = ((7, "<7d"), (30, "7-30d"), (90, "30-90d"), (365, "90-365d"))


def key_age_bucket(created_us: int, now_us: int) -> str:
    """The label of a key's age: ``<7d``, ``7-30d``, ``30-90d``, ``90-365d`` or ``>365d``."""
    days = (now_us - created_us) / 86_400_000_000
    return next((label for limit, label in KEY_AGE_BUCKETS if days < limit), ">365d")


FEED_SYNCS = Counter(
    "cti_hub_feed_syncs_total", "Scheduled syncs of remote feed sources, by source and outcome", ["source", "outcome"]
)

ACCESS = logging.getLogger("hub.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Publish refusals grouped into a few stable reasons (the full message is in the status resource).
_REFUSAL_REASONS = (
    ("invalid STIX", "invalid_stix"),
    ("not a STIX", "invalid_stix"),
    ("already", "conflict"),
    ("different object with this id", "conflict"),
    ("read-only", "read_only_key"),
    ("created_by_ref", "wrong_identity"),
    ("TLP", "tlp"),
    ("originator", "not_originator"),
    ("type", "type_not_allowed"),
    ("marking", "marking"),
)


def init_app(app: Flask) -> None:
    """Add ``/metrics``, request metrics and the JSON access log to ``app``."""
    if not ACCESS.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ACCESS.addHandler(handler)
        ACCESS.setLevel(logging.INFO)
        ACCESS.propagate = False
    app.before_request(_start)
    app.after_request(_finish)

    @app.get("/metrics")
    def metrics() -> Response:
        if not _metrics_allowed(app.config["HUB"]["metrics_token"]):
            return Response(
                "metrics need Authorization: Bearer <metrics_token>\n",
                status=401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="cti-hub metrics"'},
            )
        registry = _registry()
        if not app.config["HUB"]["metrics_token"]:
            registry = _without_partners(registry)
        # content_type, not mimetype: Flask would add a second charset to the one CONTENT_TYPE_LATEST names.
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _metrics_allowed(token: str) -> bool:
    """No token configured: open. Otherwise the request must send it as a Bearer token (compared in constant time)."""
    if not token:
        return True
    scheme, _, sent = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


def _without_partners(registry: CollectorRegistry) -> CollectorRegistry:
    view = CollectorRegistry(auto_describe=False)
    view.register(_WithoutPartners(registry))
    return view


class _WithoutPartners(Collector):
    """A registry view whose series carry no ``partner`` label: samples that differ only in it are added up.

    A ``_created`` sample (when a series began) keeps the earliest time instead of a sum.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if not any("partner" in sample.labels for sample in family.samples):
                yield family
                continue
            merged: dict[tuple, Sample] = {}
            for sample in family.samples:
                labels = {k: v for k, v in sample.labels.items() if k != "partner"}
                key = (sample.name, tuple(sorted(labels.items())))
                before = merged.get(key)
                if before is None:
                    merged[key] = sample._replace(labels=labels)
                elif sample.name.endswith("_created"):
                    merged[key] = before._replace(value=min(before.value, sample.value))
                else:
                    merged[key] = before._replace(value=before.value + sample.value)
            family.samples = list(merged.values())
            yield family


def _registry():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def request_id() -> str:
    """Return this request's id (the client's X-Request-ID when sane, else a new one)."""
    if "hub_request_id" not in g:
        sent = request.headers.get("X-Request-ID", "")
        g.hub_request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
    return g.hub_request_id


def _start() -> None:
    g.hub_started = time.perf_counter()
    request_id()


def _finish(response: Response) -> Response:
    elapsed = time.perf_counter() - g.get("hub_started", time.perf_counter())
    rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    principal = g.get("flask_httpauth_user") or g.get("hub_caller")
    partner = principal.slug if isinstance(principal, Principal) else ""
    if isinstance(principal, Principal):
        KEY_AGE.labels(key_age_bucket(principal.created_us, time.time_ns() // 1000)).inc()
    status = response.status_code
    REQUESTS.labels(request.method, rule, str(status)).inc()
    LATENCY.labels(request.method, rule).observe(elapsed)
    if status == 401 and request.headers.get("Authorization"):
        DENIALS.labels("authentication").inc()
    elif status == 429:
        DENIALS.labels("rate_limited").inc()
    if partner and request.method == "POST" and status == 202 and rule.endswith("/objects/"):
        _count_publish(partner, response)
    rid = request_id()
    response.headers["X-Request-ID"] = rid
    ACCESS.info(
        orjson.dumps(
            {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "request_id": rid,
                "method": request.method,
                "rule": rule,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "partner": partner,
                "remote": request.remote_addr or "",
                **({"next_ignored": g.hub_next_ignored} if "hub_next_ignored" in g else {}),
            }
        ).decode()
    )
    return response


def _count_publish(partner: str, response: Response) -> None:
    """Count accepted and refused objects from the status resource a publish returned."""
    try:
        status = orjson.loads(response.get_data())
    except orjson.JSONDecodeError:
        return
    INGESTED.labels(partner).inc(status.get("success_count", 0))
    for failure in status.get("failures", ()):
        reason = refusal_reason(str(failure.get("message", "")))
        REFUSED.labels(partner, reason).inc()
        DENIALS.labels("publish_" + reason).inc()


def refusal_reason(message: str) -> str:
    """Map a status failure message to a short, bounded metric label."""
    for needle, reason in _REFUSAL_REASONS:
        if needle in message:
            return reason
    return "other"
