"""Request metrics (``helpdesk.metrics.observe_request``): labels stay bounded."""

from __future__ import annotations

from prometheus_client import REGISTRY
from starlette.routing import Route

from helpdesk.metrics import observe_request


async def _nothing() -> None:  # pragma: no cover - never called
    pass


def _count(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    value = REGISTRY.get_sample_value("helpdesk_http_request_duration_seconds_count", labels)
    return value or 0.0


def test_requests_are_counted_by_method_route_template_and_status() -> None:
    route = Route("/t/{ref}", _nothing)
    before = _count("GET", "/t/{ref}", "200")
    observe_request({"method": "GET", "route": route}, 200, 0.01)
    observe_request({"method": "GET", "route": route}, 200, 0.02)
    assert _count("GET", "/t/{ref}", "200") == before + 2


def test_any_other_method_and_unknown_paths_share_one_label_each() -> None:
    # A client may send any token as its method, and any path: neither may grow the
    # number of series without bound.
    before = _count("other", "(unmatched)", "405")
    observe_request({"method": "BREW"}, 405, 0.001)
    observe_request({"method": "X" * 40}, 405, 0.001)
    assert _count("other", "(unmatched)", "405") == before + 2
    assert _count("BREW", "(unmatched)", "405") == 0.0
