"""The actions of the pod controller, one method each: create the instance, write the pod
status, delete the instance, delete the pod, fail a pod whose instance was lost.

Decisions are made in `decisions`, translations in `translate`, `env` and `podstatus`;
this module fetches what they need, calls them, and applies the result. A failure that a
retry may fix raises `Retry`; the controller requeues the pod with backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubeio.client import KubeClient, KubeError, NotFound, Unreachable
from vk_provider import env as envmod
from vk_provider import volumes as volmod
from vk_provider.cis_client import Cis, CisError, Conflict, Instance, InvalidInput, Temporary
from vk_provider.decisions import managed_status
from vk_provider.events import EventRecorder
from vk_provider.instance_cache import InstanceCache
from vk_provider.podstatus import failed_status, pending_status, status_from_instance, status_patch
from vk_provider.translate import LABEL_POD_UID, instance_spec, pod_problems, registry_credentials

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Clock = Callable[[], datetime]
LOST_EXIT_CODE = 137  # what a killed process reports; the Go VK uses -137


class Retry(Exception):
    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ObjectReader:
    """GETs of ConfigMaps and Secrets (the node identity may read those its pods reference),
    cached for a few seconds so 500 replicas of one Deployment cost one read."""

    def __init__(self, kube: KubeClient, ttl: float = 5.0) -> None:
        self._kube = kube
        self._ttl = ttl
        self._cache: dict[tuple[str, str, str], tuple[float, JSON | envmod.FetchFailed | None]] = {}

    async def get(self, kind: str, namespace: str, name: str) -> JSON | envmod.FetchFailed | None:
        key = (kind, namespace, name)
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self._ttl:
            return hit[1]
        plural = "configmaps" if kind == envmod.CONFIGMAP else "secrets"
        result: JSON | envmod.FetchFailed | None
        try:
            result = await self._kube.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        except NotFound:
            result = None
        except Unreachable:
            raise
        except KubeError as exc:
            if exc.status >= 500 or exc.status == 429:
                raise
            if exc.status == 403 and "no relationship found" in exc.message:
                # The Node authorizer learns pod -> secret edges from its own informer, a
                # moment after the pod is bound to us: not an answer yet, ask again.
                raise Retry(f"{kind} {namespace}/{name}: node authorizer not caught up yet") from exc
            result = envmod.FetchFailed(exc.message or exc.reason)
        self._cache[key] = (time.monotonic(), result)
        if len(self._cache) > 10_000:
            self._cache.clear()
        return result


def _data(kind: str, raw: JSON | envmod.FetchFailed | None) -> envmod.Lookup:
    if raw is None or isinstance(raw, envmod.FetchFailed):
        return raw
    return envmod.secret_data(raw) if kind == envmod.SECRET else envmod.configmap_data(raw)


class PodSyncer:
    def __init__(self, kube: KubeClient, cis: Cis, instances: InstanceCache, recorder: EventRecorder, *,
                 node: str, host_ip: str, clock: Clock) -> None:
        self._kube = kube
        self._cis = cis
        self._instances = instances
        self._recorder = recorder
        self._node = node
        self._host_ip = host_ip
        self._clock = clock
        self._reader = ObjectReader(kube)
        self.last_written: dict[str, Any] = {}  # pod uid -> managed status we wrote last
        self._warned: set[str] = set()
        self._update_warned: set[tuple[str, tuple[Any, ...]]] = set()

    def forget(self, uid: str) -> None:
        self.last_written.pop(uid, None)
        self._warned.discard(uid)
        self._update_warned = {k for k in self._update_warned if k[0] != uid}

    async def write_status(self, pod: JSON, status: JSON) -> None:
        patch = status_patch(pod, status)
        if patch is None:
            return
        meta = pod["metadata"]
        # Our own write comes back through the informer, maybe before this call returns:
        # record what it will look like first, so that echo is not taken for news.
        self.last_written[meta["uid"]] = managed_status({"status": {**(pod.get("status") or {}), **patch["status"]}})
        try:
            written = await self._kube.patch(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                                             patch)
        except KubeError as exc:
            if exc.status in (404, 409):  # gone, or replaced by a pod with another uid
                return
            raise
        self.last_written[meta["uid"]] = managed_status(written)

    async def push_status(self, pod: JSON, inst: Instance) -> None:
        self._warn_if_changed(pod, inst)
        await self.write_status(pod, status_from_instance(pod, inst, self._host_ip, self._clock()))

    def _warn_if_changed(self, pod: JSON, inst: Instance) -> None:
        """CIS cannot change an instance in place (the kubelet would restart the container
        with the new image): say so once per new image set, rather than ignore it."""
        wanted = tuple(c.get("image") for c in pod.get("spec", {}).get("containers") or [])
        running = tuple(c.get("image") for c in (inst.body.get("spec") or {}).get("containers") or [])
        key = (pod["metadata"]["uid"], wanted)
        if running and wanted != running and key not in self._update_warned:
            self._update_warned.add(key)
            self._recorder.emit(pod, "ProviderUpdateFailed", f"instance {inst.id} runs {list(running)}; CIS cannot"
                                f" update an instance in place: delete the pod to run {list(wanted)}")

    async def _lookups(self, pod: JSON) -> tuple[dict[envmod.Ref, envmod.Lookup],
                                                 dict[envmod.Ref, volmod.FileLookup]]:
        """What env resolution (text) and volume resolution (bytes) need, each object read once."""
        ns = pod["metadata"]["namespace"]
        env_refs, volume_refs = envmod.references(pod), volmod.references(pod)
        # One by one: a pod names few objects, and the reader's cache serves its replicas.
        raw = {(kind, name): await self._reader.get(kind, ns, name) for kind, name in sorted(env_refs | volume_refs)}
        return ({ref: _data(ref[0], raw[ref]) for ref in env_refs},
                {ref: volmod.file_data(ref[0], raw[ref]) for ref in volume_refs})

    async def _pull_credentials(self, pod: JSON) -> list[JSON]:
        ns = pod["metadata"]["namespace"]
        found = []
        for ref in pod.get("spec", {}).get("imagePullSecrets") or []:
            raw = await self._reader.get(envmod.SECRET, ns, str(ref.get("name", "")))
            if isinstance(raw, dict):
                found.append(raw)
            else:
                self._recorder.emit(pod, "FailedToRetrieveImagePullSecret",
                                    f"unable to retrieve image pull secret \"{ref.get('name')}\"; pulling without it")
        return registry_credentials(found)

    async def create(self, pod: JSON) -> None:
        now = self._clock()
        uid = pod["metadata"]["uid"]
        problems = pod_problems(pod)
        fatal = [p.message for p in problems if p.fatal]
        if fatal:
            message = "; ".join(fatal)
            self._recorder.emit(pod, "UnsupportedPodFeature", message)
            await self.write_status(pod, failed_status(pod, "UnsupportedPodFeature", message, self._host_ip, now))
            return
        env_lookups, volume_lookups = await self._lookups(pod)
        resolution = envmod.resolve_pod_env(pod, env_lookups, self._host_ip)
        volumes = volmod.resolve_pod_volumes(pod, volume_lookups)
        for event in resolution.events + volumes.events:
            self._recorder.emit(pod, event.reason, event.message, warning=event.warning)
        if resolution.fatal or volumes.fatal:
            message = "; ".join(resolution.fatal + volumes.fatal)
            # The kubelet's words: env it cannot build is a config error; a volume it cannot
            # mount keeps the container creating.
            reason = "CreateContainerConfigError" if resolution.fatal else "ContainerCreating"
            await self.write_status(pod, pending_status(pod, reason, message, self._host_ip, now))
            raise Retry(message)
        if problems and uid not in self._warned:
            self._warned.add(uid)
            self._recorder.emit(pod, "UnsupportedPodFeature",
                                "running without: " + "; ".join(p.message for p in problems))
        spec = instance_spec(pod, self._node, resolution.env, await self._pull_credentials(pod), volumes)
        try:
            inst = await self._cis.create(spec)
        except InvalidInput as exc:
            self._recorder.emit(pod, "ProviderCreateFailed", exc.message)
            await self.write_status(pod, failed_status(pod, "ProviderFailed", exc.message, self._host_ip, now))
            return
        except Conflict:
            inst = await self._adopt(pod)
        except CisError as exc:
            self._recorder.emit(pod, "ProviderCreateFailed", exc.message)
            await self.write_status(pod, pending_status(pod, "ProviderFailed", exc.message, self._host_ip, now))
            raise Retry(exc.message, exc.retry_after if isinstance(exc, Temporary) else 0.0) from exc
        self._instances.put(inst)
        self._recorder.emit(pod, "ProviderCreateSuccess", f"created CIS instance {inst.id}", warning=False)
        await self.push_status(pod, self._instances.by_id.get(inst.id, inst))

    async def _adopt(self, pod: JSON) -> Instance:
        """A clientToken conflict: the instance exists with another body (a Secret changed
        between two attempts). It is this pod's instance all the same: adopt it."""
        uid = pod["metadata"]["uid"]
        found = await self._cis.list(f"{LABEL_POD_UID}={uid}")
        if not found:
            raise Retry("CIS reports a conflicting instance that cannot be listed yet")
        log.info("pod %s/%s: adopting existing instance %s", pod["metadata"]["namespace"],
                 pod["metadata"]["name"], found[0].id)
        return found[0]

    async def delete_instance(self, inst: Instance) -> None:
        await self._cis.delete(inst.id)
        log.info("instance %s: deletion requested", inst.id)

    async def delete_pod(self, pod: JSON) -> None:
        meta = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]}}
        try:
            gone = await self._kube.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}", body)
        except KubeError as exc:
            if exc.status != 409:  # another pod of that name now: not ours to delete
                raise
            gone = None
        if gone is not None:
            log.info("pod %s/%s: removed", meta["namespace"], meta["name"])

    async def mark_lost(self, pod: JSON) -> None:
        message = "the CIS instance of this pod no longer exists"
        self._recorder.emit(pod, "ProviderInstanceLost", message)
        await self.write_status(pod, failed_status(pod, "NotFound", message, self._host_ip, self._clock(),
                                                   exit_code=LOST_EXIT_CODE))
