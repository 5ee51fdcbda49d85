"""The pure domain of the CIS control plane: values and decisions, no I/O.

Nothing in this package awaits, opens a connection or reads the clock: time and randomness
are parameters. The API, the controller and the Kubernetes adapters build on it.

    errors      CisError tree with stable codes (+ HTTP/gRPC status hints)
    ids         InstanceId & co., instance id generation, tenant namespaces
    syntax      name/label/image/env/CIDR predicates
    jsonread    typed readers of untrusted JSON that name the failing field
    sizes       the size table, round_up, Kubernetes quantities
    spec        InstanceSpec (+ spec_parse: validation), secrets, fingerprint
    model       Instance, InstanceStatus, ContainerInstance CR <-> Instance, REST JSON
    pods        backing-cluster Pod, Secrets, NetworkPolicies, Namespace
    status      pod -> InstanceStatus; release / re-place decisions
    placement   ClusterSnapshot, admission, choose_cluster
    events      lifecycle events (DESIGN §4), transitions, heartbeats
    apikeys     API key generation, hashing, verification
    tenants     Tenant resource, quota, create token bucket
    timestamps  RFC 3339 millisecond UTC formatting/parsing
"""
