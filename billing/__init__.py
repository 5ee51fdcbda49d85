"""Per-second billing of CIS instances from their lifecycle events in Elasticsearch.

Flow: `store` streams each instance's events → `metering` (pure) pairs them into runs and
prices them with `prices` → `store` writes one usage record per instance and day → `reports`
renders them; `runner` wires one run or the periodic loop, `reconcile` checks the result,
`service` is what the CIS API calls and `cli` is `cis billing`. Never imports `cis`.
"""
