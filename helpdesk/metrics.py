"""Prometheus metrics (prometheus-client), shared by every worker.

``serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` (``var/metrics``, emptied at each start) before
the workers import this module, so that each worker writes its counts there and ``/metrics``
in any worker adds them all up. Without it (tests, a single process run otherwise) the
counts live in this process.

Counted as things happen: request latency by route template, FAQ questions by whether the
bot answered, tickets created. Read from the database at each scrape: the outbox by status
(backlog = queued + sending, dead letters), received mail by status (failures), and the age
of the leader's heartbeat.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import Scope

__all__ = [
    "CONTENT_TYPE_LATEST",
    "FAQ_ANSWERED",
    "FAQ_NOT_ANSWERED",
    "FAQ_QUESTIONS",
    "REQUEST_SECONDS",
    "TICKETS_CREATED",
    "observe_request",
]

REQUEST_SECONDS = Histogram(
    "helpdesk_http_request_duration_seconds",
    "Time to answer HTTP requests, by route template",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FAQ_QUESTIONS = Counter(
    "helpdesk_faq_questions",
    "Questions asked to the FAQ bot, by whether it answered (answered rate: yes / all)",
    ["answered"],
)
FAQ_ANSWERED, FAQ_NOT_ANSWERED = FAQ_QUESTIONS.labels("yes"), FAQ_QUESTIONS.labels("no")
TICKETS_CREATED = Counter("helpdesk_tickets_created", "Tickets created", ["kind", "channel"])

# Routes not in the table (probes of random paths) share one label: bounded cardinality.
UNMATCHED = "(unmatched)"


#: Methods counted under their own name; any other (a client may send any token) is "other",
#: so that the label's values stay bounded.
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
# The histogram's children by label values, found once (``labels`` checks and locks on
# every call). Bounded: methods above, route templates, and HTTP statuses.
_REQUEST_CHILDREN: dict[tuple[str, str, int], Histogram] = {}


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    """Count an answered HTTP request by method, route template and status (the route is
    the one Starlette's router matched; probes of unknown paths share ``UNMATCHED``)."""
    method = scope.get("method", "")
    if method not in _METHODS:
        method = "other"
    template = getattr(scope.get("route"), "path", None) or UNMATCHED
    key = (method, template, status)
    child = _REQUEST_CHILDREN.get(key)
    if child is None:
        child = _REQUEST_CHILDREN[key] = REQUEST_SECONDS.labels(method, template, str(status))
    child.observe(seconds)


class _Snapshot(Collector):
    """Gauges read from the database just before a scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def database_families(
    *,
    outbox: dict[str, int],
    inbound: dict[str, int],
    heartbeat_age: float | None,
) -> list[Metric]:
    outbox_family = GaugeMetricFamily(
        "helpdesk_outbox_mails",
        "Mails in the outbox by status (backlog: queued + sending; dead letters: dead)",
        labels=["status"],
    )
    for status in ("queued", "sending", "sent", "dead"):
        outbox_family.add_metric([status], outbox.get(status, 0))
    inbound_family = GaugeMetricFamily(
        "helpdesk_inbound_mails",
        "Received mails by status (failed: agents must look; retry: temporary failures)",
        labels=["status"],
    )
    for status in ("received", "retry", "processed", "ignored", "failed"):
        inbound_family.add_metric([status], inbound.get(status, 0))
    families: list[Metric] = [outbox_family, inbound_family]
    if heartbeat_age is not None:
        families.append(
            GaugeMetricFamily(
                "helpdesk_leader_heartbeat_age_seconds",
                "Seconds since the process running background work last reported",
                value=heartbeat_age,
            )
        )
    return families


def exposition(families: list[Metric]) -> bytes:
    """The text ``/metrics`` answers: every worker's counts and the database gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
        output = generate_latest(registry)
    else:
        output = generate_latest(REGISTRY)
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(families))
    return output + generate_latest(snapshot)
