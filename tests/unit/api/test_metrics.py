"""Prometheus text exposition."""

from __future__ import annotations

from cis.api.metrics import Metrics


def test_counters_render_with_sorted_escaped_labels() -> None:
    m = Metrics()
    m.describe("cis_http_requests_total", "HTTP requests")
    m.inc("cis_http_requests_total", route="/v1/instances", status="201", method="POST")
    m.inc("cis_http_requests_total", route="/v1/instances", status="201", method="POST")
    m.inc("cis_http_requests_total", route='/x"y', status="400", method="GET")
    text = m.render()
    assert "# TYPE cis_http_requests_total counter" in text
    assert 'cis_http_requests_total{method="POST",route="/v1/instances",status="201"} 2' in text
    assert 'route="/x\\"y"' in text


def test_gauges_are_read_at_render_time() -> None:
    m = Metrics()
    value = {(("cluster", "a"),): 3.0}
    m.gauge("cis_cluster_pending_pods", "pending pods", lambda: value)
    assert 'cis_cluster_pending_pods{cluster="a"} 3' in m.render()
    value[(("cluster", "a"),)] = 5.0
    assert 'cis_cluster_pending_pods{cluster="a"} 5' in m.render()


def test_counters_kept_by_their_owners_are_read_at_scrape_time() -> None:
    counts = {"GET": 3.0}
    m = Metrics()
    m.counter("cis_kube_requests_total", "Requests to Kubernetes", lambda: {
        (("cluster", "region-a"), ("method", k)): v for k, v in counts.items()})
    counts["POST"] = 2.0
    text = m.render()
    assert "# TYPE cis_kube_requests_total counter" in text
    assert 'cis_kube_requests_total{cluster="region-a",method="GET"} 3' in text
    assert 'cis_kube_requests_total{cluster="region-a",method="POST"} 2' in text
