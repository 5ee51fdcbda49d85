"""Plain pod and instance objects for the provider's unit tests."""

from __future__ import annotations

import copy
from typing import Any

from vk_provider.cis_client import Instance

JSON = dict[str, Any]


def pod(name: str = "web-1", *, namespace: str = "default", uid: str = "uid-1", containers: list[JSON] | None = None,
        status: JSON | None = None, **spec: Any) -> JSON:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": "10",
                     "labels": {"app": "web"}, "annotations": {"team": "a"}},
        "spec": {"nodeName": "vnode", "serviceAccountName": "default", "restartPolicy": "Always",
                 "containers": containers if containers is not None else [{"name": "main", "image": "nginx:1.27"}],
                 **spec},
        "status": status if status is not None else {"phase": "Pending"},
    }


def with_meta(p: JSON, **meta: Any) -> JSON:
    out = copy.deepcopy(p)
    out["metadata"].update(meta)
    return out


def instance(iid: str = "ci-1", *, phase: str = "Running", uid: str = "uid-1", rv: str = "5",
             containers: list[JSON] | None = None, **status: Any) -> Instance:
    if containers is None:
        state = {"Running": "Running", "Succeeded": "Terminated", "Failed": "Terminated"}.get(phase, "Waiting")
        containers = [{"name": "main", "state": state, "ready": phase == "Running", "restartCount": 0}]
    body = {"id": iid, "uid": f"u-{iid}", "labels": {"virtual-kubelet.io/pod-uid": uid,
                                                     "virtual-kubelet.io/node": "vnode"},
            "status": {"phase": phase, "containers": containers, **status}}
    return Instance(id=iid, uid=f"u-{iid}", resource_version=rv, body=body)
