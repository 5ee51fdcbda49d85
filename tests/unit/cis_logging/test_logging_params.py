"""Parameter validation: every bad value is refused at construction, naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from cis_logging.errors import InvalidParameter
from cis_logging.layout import EsLayout
from cis_logging.params import (
    EventsParams,
    ManifestParams,
    NodeConfigParams,
    OutputParams,
    PodLogsParams,
)

BAD = [
    # (class, kwargs, field named in the error)
    (OutputParams, {"es_hosts": ()}, "es_hosts"),
    (OutputParams, {"es_hosts": ("ftp://es:9200",)}, "es_hosts[0]"),
    (OutputParams, {"es_hosts": ("http://ok:9200", "es:9200")}, "es_hosts[1]"),
    (OutputParams, {"es_hosts": ("http://user:pw@es:9200",)}, "es_hosts[0]"),
    (OutputParams, {"es_hosts": ("http://es:99999",)}, "es_hosts[0]"),
    (OutputParams, {"es_hosts": ("http://es:9200/?x=1",)}, "es_hosts[0]"),
    (OutputParams, {"es_hosts": ("http://${HOST}:9200",)}, "es_hosts[0]"),
    (OutputParams, {"es_hosts": ('http://es"\n  evil: 1',)}, "es_hosts[0]"),
    (OutputParams, {"es_hosts": ("http://:9200",)}, "es_hosts[0]"),
    (OutputParams, {"es_hosts": "http://es:9200"}, "es_hosts"),
    (OutputParams, {"flush_timeout_seconds": -1}, "flush_timeout_seconds"),
    (OutputParams, {"backoff_max_seconds": 0}, "backoff_max_seconds"),
    (OutputParams, {"scan_interval_seconds": True}, "scan_interval_seconds"),
    (PodLogsParams, {"logs_root": "var/log/pods"}, "logs_root"),
    (PodLogsParams, {"logs_root": "/var/log/pods/"}, "logs_root"),
    (PodLogsParams, {"logs_root": "/var/log/*/pods"}, "logs_root"),
    (PodLogsParams, {"logs_root": "/var/log/%{x}"}, "logs_root"),
    (PodLogsParams, {"logs_root": "/var/log/../etc"}, "logs_root"),
    (PodLogsParams, {"logs_root": "/var/log/po ds"}, "logs_root"),
    (PodLogsParams, {"logs_root": "/"}, "logs_root"),
    (PodLogsParams, {"index_prefix": "Cis-Logs"}, "index_prefix"),
    (PodLogsParams, {"index_prefix": "cis logs"}, "index_prefix"),
    (PodLogsParams, {"index_prefix": "_cis"}, "index_prefix"),
    (PodLogsParams, {"index_prefix": "cis*"}, "index_prefix"),
    (PodLogsParams, {"tenant_namespace_prefix": "Tenant_"}, "tenant_namespace_prefix"),
    (PodLogsParams, {"instance_pod_pattern": "ci-("}, "instance_pod_pattern"),
    (PodLogsParams, {"instance_pod_pattern": "(?=ci)"}, "instance_pod_pattern"),
    (PodLogsParams, {"instance_pod_pattern": "${X}"}, "instance_pod_pattern"),
    (PodLogsParams, {"kubernetes_metadata": "yes"}, "kubernetes_metadata"),
    (PodLogsParams, {"kube_config": "relative/kubeconfig"}, "kube_config"),
    (PodLogsParams, {"node_name_env": "node-name"}, "node_name_env"),
    (PodLogsParams, {"input_id": ""}, "input_id"),
    (EventsParams, {"events_dir": "/var/lib/cis/events/"}, "events_dir"),
    (EventsParams, {"file_pattern": "../*.ndjson"}, "file_pattern"),
    (EventsParams, {"index_prefix": "CIS"}, "index_prefix"),
    (ManifestParams, {"image": "bad image"}, "image"),
    (ManifestParams, {"image": "x/y:1", "namespace": "Kube_System"}, "namespace"),
    (ManifestParams, {"image": "x/y:1", "name": "-x"}, "name"),
    (ManifestParams, {"image": "x/y:1", "data_host_path": "data"}, "data_host_path"),
    (ManifestParams, {"image": "x/y:1", "memory_limit": "lots"}, "memory_limit"),
    (ManifestParams, {"image": "x/y:1", "image_pull_policy": "Sometimes"}, "image_pull_policy"),
    (ManifestParams, {"image": "x/y:1", "node": NodeConfigParams()}, "kubernetes_metadata"),
    (EsLayout, {"logs_prefix": "Logs"}, "logs_prefix"),
    (EsLayout, {"events_prefix": "cis-logs"}, "events_prefix"),
    (EsLayout, {"replicas": -1}, "replicas"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"), BAD, ids=[f"{c.__name__}-{f}-{i}" for i, (c, _, f) in enumerate(BAD)]
)
def test_bad_parameter_names_its_field(cls: type[Any], kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        cls(**kwargs)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


GOOD = [
    (OutputParams, {"es_hosts": ("https://es.example:9243", "http://10.0.0.1")}),
    (OutputParams, {"es_hosts": ("http://[::1]:9200",)}),
    (OutputParams, {"es_hosts": ("http://es:9200/prefix",)}),
    (PodLogsParams, {"logs_root": "/tmp/pytest-of-root/pytest_3/t0/pods"}),
    (PodLogsParams, {"tenant_namespace_prefix": ""}),
    (PodLogsParams, {"instance_pod_pattern": r"^ci-[a-z0-9]+\d?$"}),
    (EventsParams, {"file_pattern": "lifecycle-*.ndjson"}),
    (ManifestParams, {"image": "registry.example:5000/beats/filebeat-oss:9.3.0"}),
    (EsLayout, {"logs_prefix": "test-logs", "events_prefix": "test-events"}),
]


@pytest.mark.parametrize(("cls", "kwargs"), GOOD, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(GOOD)])
def test_good_parameters_construct(cls: type[Any], kwargs: dict[str, Any]) -> None:
    cls(**kwargs)


def test_params_are_frozen() -> None:
    params = OutputParams()
    with pytest.raises(AttributeError):
        params.es_hosts = ("http://other:9200",)  # type: ignore[misc]
