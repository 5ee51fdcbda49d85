"""Session fixtures: one real local stack for the whole integration run.

The stack listens on 127.20.x.1, apart from `make run`'s 127.10.x.1, so tests can run
while a development stack is up.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cis.devstack.platform import CisProcess, create_tenant, register_backing_clusters, start_cis
from cis.devstack.stack import Stack, StackSettings

# Overridable so two test runs (say, two developers' sessions) can share a machine.
TEST_NET = int(os.environ.get("CIS_TEST_NET", "20"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    run_dir = Path(os.environ.get("CIS_TEST_RUN_DIR", f"/var/tmp/cis/test-{os.getpid()}"))
    shutil.rmtree(run_dir, ignore_errors=True)
    # Nodes big enough that tests never run out of room unless they mean to (cordon).
    s = Stack(StackSettings(run_dir=run_dir, net=TEST_NET, kwok_nodes=2, node_cpu="1000",
                            node_memory="4000Gi", node_pods="1000"))
    s.start()
    try:
        yield s
    finally:
        s.stop()
        if not os.environ.get("CIS_KEEP_RUN_DIR"):
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cis(stack: Stack) -> Iterator[CisProcess]:
    """The real `cis serve` process on the stack, with the backing clusters registered."""
    register_backing_clusters(stack)
    proc = start_cis(stack)
    try:
        yield proc
    finally:
        proc.process.stop()


@pytest.fixture(scope="session")
def tenant_key(cis: CisProcess) -> str:
    return create_tenant(cis, "acme", quota={"maxInstances": 5000, "maxVcpu": 5000, "maxMemoryGiB": 20000},
                         createBurst=5000, createRatePerSecond=1000)


@pytest.fixture(scope="session")
def other_tenant_key(cis: CisProcess) -> str:
    return create_tenant(cis, "globex")


@pytest.fixture
def clean_tenant(cis: CisProcess, tenant_key: str) -> Iterator[None]:
    """Each test starts and ends with no instances of tenant acme, so one failing test
    cannot leave pods that starve the next."""
    from tests.integration.helpers import Client, wait_for

    c = Client(cis, tenant_key)

    def clear() -> None:
        for inst in c.list_all():
            c.call("DELETE", f"/v1/instances/{inst['id']}")
        wait_for("tenant acme empty", lambda: not c.list_all(), 240, every=1)

    clear()
    yield
    clear()
