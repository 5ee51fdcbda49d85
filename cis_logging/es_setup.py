"""Creates the Elasticsearch layout at startup: index templates for logs and lifecycle
events, plus retention policies where ILM exists.

Idempotent: templates and policies are PUT (the same body twice is the same state), and
mappings of already existing indices gain any field added since (adding fields is always
allowed). Safe to run from every CIS replica at every start.

The minimal Elasticsearch distribution has no ILM (`GET _ilm/status` has no handler
there); retention is then `prune_expired_indices`, which deletes whole dated indices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from cis_logging.errors import LoggingError, Unavailable
from cis_logging.layout import (
    EsLayout,
    events_template,
    expired_indices,
    logs_template,
    retention_policy,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetupResult:
    ilm: bool
    templates: tuple[str, ...]
    policies: tuple[str, ...]


def planned_policies(layout: EsLayout, *, ilm: bool) -> dict[str, dict[str, Any]]:
    if not ilm:
        return {}
    return {layout.logs_policy_name: retention_policy(layout.logs_retention_days),
            layout.events_policy_name: retention_policy(layout.events_retention_days)}


def planned_templates(layout: EsLayout, *, ilm: bool) -> dict[str, dict[str, Any]]:
    return {layout.logs_template_name: logs_template(layout, ilm=ilm),
            layout.events_template_name: events_template(layout, ilm=ilm)}


def _translate(exc: Exception, what: str) -> LoggingError:
    if isinstance(exc, ApiError):
        if exc.meta.status in (429, 502, 503, 504):
            return Unavailable(f"{what}: Elasticsearch answered {exc.meta.status}")
        return LoggingError(f"{what}: {exc.meta.status} {str(exc)[:300]}")
    return Unavailable(f"{what}: Elasticsearch unreachable: {str(exc)[:300]}")


async def ilm_available(es: AsyncElasticsearch) -> bool:
    """Whether the cluster runs index lifecycle management."""
    try:
        await es.ilm.get_status()
    except ApiError as exc:
        if exc.meta.status in (429, 502, 503, 504):
            raise _translate(exc, "ILM status") from exc
        # 400/404/405/410: no such handler on this distribution.
        log.info("no ILM on this cluster (%s); dated indices are pruned by age instead",
                 exc.meta.status)
        return False
    except TransportError as exc:
        raise _translate(exc, "ILM status") from exc
    return True


async def ensure_layout(es: AsyncElasticsearch, layout: EsLayout) -> SetupResult:
    """Create or update policies and templates, then extend existing indices' mappings."""
    ilm = await ilm_available(es)
    policies = planned_policies(layout, ilm=ilm)
    templates = planned_templates(layout, ilm=ilm)
    try:
        for name, body in policies.items():
            await es.ilm.put_lifecycle(name=name, policy=body["policy"])
        for name, body in templates.items():
            kwargs = {k: v for k, v in body.items() if k != "_meta"}
            await es.indices.put_index_template(name=name, meta=body.get("_meta"), **kwargs)
            mappings = body["template"]["mappings"]
            # Existing indices keep the mapping they were created with; new fields are
            # always compatible additions.
            await es.indices.put_mapping(index=body["index_patterns"][0],
                                         allow_no_indices=True, **mappings)
    except (ApiError, TransportError) as exc:
        raise _translate(exc, "index setup") from exc
    log.info("Elasticsearch layout ready: templates %s, ILM %s", sorted(templates),
             "on" if ilm else "off")
    return SetupResult(ilm=ilm, templates=tuple(sorted(templates)),
                       policies=tuple(sorted(policies)))


async def prune_expired_indices(es: AsyncElasticsearch, layout: EsLayout, *,
                                today: date) -> list[str]:
    """Delete dated log/event indices past their retention (clusters without ILM).

    `today` is a parameter so callers (and tests) own the clock.
    """
    deleted: list[str] = []
    for prefix, days in ((layout.logs_prefix, layout.logs_retention_days),
                         (layout.events_prefix, layout.events_retention_days)):
        try:
            resp = await es.indices.get(index=f"{prefix}-*", allow_no_indices=True,
                                        ignore_unavailable=True, expand_wildcards="open")
            names = list(resp.body)
            doomed = expired_indices(prefix, names, today=today, retention_days=days)
            for name in doomed:
                await es.indices.delete(index=name, ignore_unavailable=True)
        except (ApiError, TransportError) as exc:
            raise _translate(exc, "index pruning") from exc
        if doomed:
            log.info("deleted expired indices %s", doomed)
        deleted += doomed
    return deleted
