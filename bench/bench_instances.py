"""Benchmark: instances through CIS batch create until Running, against a baseline of bare
pods created with a plain kubernetes-asyncio loop on the same backing clusters, measured
in the same run. Rounds alternate the two phases (--rounds, default 5); each prints
instances/s for both, their ratio and the CPU every component used; the result is the
median ratio (target >= 0.7). With --perf, `perf stat` also counts the instructions each
process retired (their baseline/CIS ratio is the measure of work that the host's other
load hardly moves) and the cycles each phase took. Counting is off by default: on this
kind of VM the hardware counters are virtualised, and counting every process of the stack
makes both phases 35-60% slower (the one with more context switches more), so the timed
rounds run without it.
Then the controller's RSS with --rss-instances instances in the system (default 10,000;
those beyond the clusters' room stay Queued, which is what admission is for).

Starts its own stack (addresses 127.40.x.1) in --run-dir.
Usage: .venv/bin/python bench/bench_instances.py [--count 2000] [--rounds 5] [--rss-instances 10000] [--perf]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from cis.devstack.platform import CisProcess, create_tenant, register_backing_clusters, start_cis
from cis.devstack.stack import Stack, StackSettings
from cis.domain.timestamps import parse_optional

CONCURRENCY = 32
IDLE_SECONDS = 15.0


def pod_body(name: str) -> dict[str, Any]:
    res = {"cpu": "250m", "memory": "512Mi"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "baseline"}},
            "spec": {"runtimeClassName": "kata", "automountServiceAccountToken": False,
                     "containers": [{"name": "main", "image": "nginx:1.27",
                                     "resources": {"requests": res, "limits": res}}]}}


async def baseline(stack: Stack, count: int, count_cpu_events: bool) -> tuple[float, CpuCounters, PhaseCounts | None]:
    """Bare pods, spread evenly over the backing clusters: seconds until all Running, and
    the stack's CPU and instruction counters at that moment (before the pods are deleted
    again)."""
    apis = []
    for c in stack.backing:
        cfg = k8s.Configuration()
        await k8s_config.load_kube_config(config_file=str(c.kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = CONCURRENCY
        apis.append(k8s.ApiClient(cfg))
    try:
        cores = [k8s.CoreV1Api(a) for a in apis]
        sem = asyncio.Semaphore(CONCURRENCY)
        perf = PerfCounters(stack_pids(stack), enabled=count_cpu_events)
        t0 = time.monotonic()

        async def create(i: int) -> None:
            async with sem:
                await cores[i % len(cores)].create_namespaced_pod("default", pod_body(f"bare-{i}"))  # type: ignore[arg-type]  # dicts are accepted

        await asyncio.gather(*(create(i) for i in range(count)))
        while True:
            running = 0
            for core in cores:
                pods = await core.list_namespaced_pod("default", label_selector="bench=baseline")
                running += sum(1 for p in pods.items if p.status.phase == "Running")
            if running >= count:
                break
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - t0
        cpu_at_end = stack_cpu(stack)
        counted = perf.stop()
        for core in cores:
            await core.delete_collection_namespaced_pod("default", label_selector="bench=baseline",
                                                        grace_period_seconds=0)
        for core in cores:
            while (await core.list_namespaced_pod("default", label_selector="bench=baseline")).items:
                await asyncio.sleep(0.5)
        return elapsed, cpu_at_end, counted
    finally:
        for a in apis:
            await a.close()


def call(url: str, key: str, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(url + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method, headers={"Authorization": f"Bearer {key}",
                                                         "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read())


def list_instances(url: str, key: str, query: str = "") -> Iterator[dict[str, Any]]:
    """Every instance of the tenant (matching `query`), page by page."""
    cont = ""
    while True:
        page = call(url, key, "GET", f"/v1/instances?limit=1000{query}" + (f"&continue={cont}" if cont else ""))
        yield from page["items"]
        if not (cont := page.get("continue", "")):
            return


def count_phases(url: str, key: str) -> dict[str, int]:
    return dict(collections.Counter(inst.get("status", {}).get("phase", "?") for inst in list_instances(url, key)))


def through_cis(cis: CisProcess, key: str, count: int, label: str) -> float:
    """Seconds until `count` instances run. While waiting, notes when each one is first
    seen Running, and prints how long after its container started that was (the status
    lag: how late the API tells a user what the backing cluster already knows)."""
    spec = {"containers": [{"name": "main", "image": "nginx:1.27", "resources": {"cpu": 0.25, "memoryGiB": 0.5}}],
            "labels": {"bench": label}}

    def create_all() -> None:
        made = 0
        while made < count:
            n = min(1000, count - made)
            call(cis.url, key, "POST", "/v1/instances/batch", {"template": spec, "count": n})
            made += n
        print(f"  batch create returned after {time.monotonic() - t0:.1f}s", file=sys.stderr)

    t0 = time.monotonic()
    lags: dict[str, float] = {}  # instance id -> seconds from container start to first seen Running
    shown = 0.0
    with ThreadPoolExecutor(1) as pool:  # poll while the batch requests are still running
        creating = pool.submit(create_all)
        while True:
            polled = time.time()
            phases: collections.Counter[str] = collections.Counter()
            for inst in list_instances(cis.url, key, f"&labels=bench%3D{label}"):
                status = inst.get("status", {})
                phases[status.get("phase", "?")] += 1
                started = parse_optional(status.get("startedAt"))
                if status.get("phase") == "Running" and started is not None and inst["id"] not in lags:
                    lags[inst["id"]] = polled - started.timestamp()
            if creating.done() and phases["Running"] >= count:
                break
            if time.monotonic() - shown >= 5:
                shown = time.monotonic()
                print(f"  {shown - t0:6.1f}s {dict(phases)}", file=sys.stderr)
            time.sleep(0.5)
        creating.result()
    took = time.monotonic() - t0
    ordered = sorted(lags.values())
    print(f"status lag, container started -> API says Running (polled every 0.5 s): median "
          f"{statistics.median(ordered):.1f} s, p90 {ordered[int(len(ordered) * 0.9)]:.1f} s, "
          f"max {ordered[-1]:.1f} s")
    return took


def kube_requests(url: str) -> dict[tuple[str, str], float]:
    """CIS's requests to Kubernetes so far, by (cluster, HTTP method), from /metrics."""
    pattern = re.compile(r'^cis_kube_requests_total\{cluster="([^"]*)",method="([^"]*)"\} (\S+)$')
    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    return {(m[1], m[2]): float(m[3]) for line in text.splitlines() if (m := pattern.match(line))}


def print_requests_per_instance(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float],
                                count: int) -> None:
    rows = sorted((k, v - before.get(k, 0.0)) for k, v in after.items())
    per = ", ".join(f"{cluster} {method} {n / count:.2f}" for (cluster, method), n in rows if n)
    print(f"CIS apiserver requests per instance: {per}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuCounters:
    by_process: dict[str, float]  # CPU seconds so far, by process name
    steal: float  # CPU seconds the host gave to other guests (all cores)


def stack_pids(stack: Stack, cis: CisProcess | None = None) -> dict[str, int]:
    """Every process of the stack (and CIS) by name, and this benchmark itself."""
    procs = stack.processes + ([cis.process] if cis is not None else [])
    return {p.name: p.popen.pid for p in procs if p.popen is not None} | {"bench": os.getpid()}


def stack_cpu(stack: Stack, cis: CisProcess | None = None) -> CpuCounters:
    """CPU seconds used so far by each process of the stack (and CIS), by name, and by
    this benchmark itself ("bench": its creating and polling compete for the same cores)."""
    return CpuCounters({name: cpu_seconds(pid) for name, pid in stack_pids(stack, cis).items()}, steal_seconds())


def steal_seconds() -> float:
    """CPU time the hypervisor gave to other guests while this one wanted it (all cores)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def print_cpu(label: str, before: CpuCounters, after: CpuCounters, took: float) -> float:
    """Print what each process used between two counters; return the total CPU seconds."""
    used = sorted(((t - before.by_process.get(k, 0.0), k) for k, t in after.by_process.items()), reverse=True)
    total = sum(u for u, _ in used)
    top = ", ".join(f"{k} {u:.1f}" for u, k in used if u >= 0.5)
    steal = after.steal - before.steal
    print(f"{label} CPU seconds: {total:.1f} in {took:.1f}s wall ({total / took:.2f} cores; "
          f"stolen by the host: {steal:.1f}): {top}")
    return total


@dataclass(frozen=True)
class PhaseCounts:
    """What the CPU counted for each process over one phase, in billions."""
    instructions: dict[str, float]
    cycles: dict[str, float]


class PerfCounters:
    """Instructions and cycles each process spends from now until `stop`, counted by the
    CPU (`perf stat`). Instructions hardly depend on what else the host runs, so their
    ratio is the steady measure of how much more work one phase is than the other; cycles
    also count how well that work ran (instructions per cycle fall when more processes
    share the caches), and the throughput ratio follows them. When not enabled, or where
    perf or the hardware counters are missing, `stop` answers None."""

    EVENTS = ("instructions", "cycles")

    def __init__(self, pids: dict[str, int], enabled: bool) -> None:
        self._out = Path(tempfile.mkdtemp(prefix="cis-perf-"))
        self._perf: dict[str, subprocess.Popen[bytes]] = {}
        if not enabled or shutil.which("perf") is None:
            return
        for name, pid in pids.items():
            self._perf[name] = subprocess.Popen(
                ["perf", "stat", "-x", ",", "-e", ",".join(self.EVENTS), "-p", str(pid), "-o", str(self._out / name)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)  # perf attaches

    def stop(self) -> PhaseCounts | None:
        for proc in self._perf.values():
            proc.send_signal(signal.SIGINT)
        counts: dict[str, dict[str, float]] = {event: {} for event in self.EVENTS}
        for name, proc in self._perf.items():
            proc.wait()
            out = self._out / name
            for line in out.read_text().splitlines() if out.exists() else ():
                fields = line.split(",")
                event = fields[2].split(":")[0] if len(fields) > 2 else ""
                if event in counts:
                    # "<not counted>": the process did not run at all meanwhile
                    counts[event][name] = int(fields[0]) / 1e9 if fields[0].isdigit() else 0.0
        shutil.rmtree(self._out, ignore_errors=True)
        if not self._perf or any(len(c) != len(self._perf) for c in counts.values()):
            return None
        return PhaseCounts(counts["instructions"], counts["cycles"])


def print_counts(label: str, counts: PhaseCounts | None) -> tuple[float, float] | None:
    """Print instructions by process and the phase's cycles; return both totals."""
    if counts is None:
        return None
    total = sum(counts.instructions.values())
    cycles = sum(counts.cycles.values())
    top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(counts.instructions.items(), key=lambda kv: -kv[1]) if v >= 0.5)
    print(f"{label} instructions (billions): {total:.1f}: {top}")
    busiest = sorted(counts.cycles.items(), key=lambda kv: -kv[1])
    ipc = ", ".join(f"{k} {counts.instructions[k] / c:.2f}" for k, c in busiest if c >= 2.0)
    print(f"{label} cycles (billions): {cycles:.1f}, {total / cycles:.2f} instructions per cycle: {ipc}")
    return total, cycles


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def delete_all(cis: CisProcess, key: str, label: str) -> None:
    """Delete a round's instances through the API and wait until they and their pods are gone."""
    ids = [inst["id"] for inst in list_instances(cis.url, key, f"&labels=bench%3D{label}")]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: call(cis.url, key, "DELETE", f"/v1/instances/{i}"), ids))
    while call(cis.url, key, "GET", f"/v1/instances?limit=1&labels=bench%3D{label}")["items"]:
        time.sleep(1)


def cis_round(stack: Stack, cis: CisProcess, key: str, count: int, label: str,
              count_cpu_events: bool) -> tuple[float, float, tuple[float, float] | None]:
    """Seconds until `count` instances run, and the CPU seconds and instructions the stack
    and CIS used."""
    assert cis.process.popen is not None
    before, cpu_before = kube_requests(cis.url), cpu_seconds(cis.process.popen.pid)
    cpu0 = stack_cpu(stack, cis)
    perf = PerfCounters(stack_pids(stack, cis), enabled=count_cpu_events)
    took = through_cis(cis, key, count, label)
    used = print_cpu("CIS", cpu0, stack_cpu(stack, cis), took)
    work = print_counts("CIS", perf.stop())
    print_requests_per_instance(before, kube_requests(cis.url), count)
    cpu = cpu_seconds(cis.process.popen.pid) - cpu_before
    print(f"CIS process CPU: {cpu:.1f}s = {1000 * cpu / count:.1f} ms per instance "
          f"({cpu / took:.0%} of one core over the run)")
    return took, used, work


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5, help="baseline/CIS pairs; the median ratio is the result")
    ap.add_argument("--perf", action="store_true",
                    help="count instructions and cycles per process with perf stat (slows both phases)")
    ap.add_argument("--rss-instances", type=int, default=10000)
    ap.add_argument("--run-dir", type=Path, default=Path("/var/tmp/cis/bench-instances"))
    args = ap.parse_args()
    shutil.rmtree(args.run_dir, ignore_errors=True)
    # Room for `count` small pods (0.25 vCPU + 0.25 Kata overhead each) with slack.
    stack = Stack(StackSettings(run_dir=args.run_dir, net=40, kwok_nodes=2, node_cpu="2000",
                                node_memory="8000Gi", node_pods=str(args.count), with_filebeat=False))
    stack.start()
    cis: CisProcess | None = None
    finished = False
    try:
        cpu0 = stack_cpu(stack)
        time.sleep(IDLE_SECONDS)  # what the stack burns doing nothing, for comparison
        print_cpu("idle stack", cpu0, stack_cpu(stack), IDLE_SECONDS)
        register_backing_clusters(stack, max_pending=500)
        key = ""
        ratios: list[float] = []
        work_ratios: list[float] = []
        cycle_ratios: list[float] = []
        # Rounds alternate the two phases, so a slow minute of this shared machine hits
        # one pair rather than deciding the result. CIS is stopped while the baseline
        # runs: it watches every pod of the backing clusters and would tax the baseline.
        for n in range(1, args.rounds + 1):
            print(f"round {n}/{args.rounds}")
            cpu0 = stack_cpu(stack)
            base, cpu1, base_counts = asyncio.run(baseline(stack, args.count, args.perf))
            base_cpu = print_cpu("baseline", cpu0, cpu1, base)
            base_work = print_counts("baseline", base_counts)
            cis = start_cis(stack, workers=32)
            if not key:
                key = create_tenant(cis, "bench", createBurst=100000, createRatePerSecond=100000,
                                    quota={"maxInstances": 100000, "maxVcpu": 100000, "maxMemoryGiB": 400000})
            took, cis_cpu, cis_work = cis_round(stack, cis, key, args.count, f"speed-{n}", args.perf)
            rate_base, rate_cis = args.count / base, args.count / took
            ratios.append(rate_cis / rate_base)
            print(f"baseline bare pods : {args.count} Running in {base:6.1f}s = {rate_base:6.1f} pods/s")
            print(f"CIS batch create   : {args.count} Running in {took:6.1f}s = {rate_cis:6.1f} instances/s")
            print(f"ratio CIS/baseline : {ratios[-1]:.2f}")
            # Both phases keep the cores busy, so the ratio follows the CPU each one needs.
            print(f"CPU used, baseline/CIS: {base_cpu / cis_cpu:.2f}")
            if base_work and cis_work:  # the same, counted by the CPU: not skewed by the host
                work_ratios.append(base_work[0] / cis_work[0])
                cycle_ratios.append(base_work[1] / cis_work[1])
                print(f"instructions, baseline/CIS: {work_ratios[-1]:.2f}; cycles: {cycle_ratios[-1]:.2f}")
            if n < args.rounds:
                delete_all(cis, key, f"speed-{n}")
                cis.process.stop()
        print(f"ratio CIS/baseline, median of {len(ratios)} rounds: {statistics.median(ratios):.2f} "
              f"({', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.7)")
        if work_ratios:
            print(f"instructions baseline/CIS, median of {len(work_ratios)} rounds: "
                  f"{statistics.median(work_ratios):.2f} ({', '.join(f'{r:.2f}' for r in work_ratios)}); "
                  f"cycles {statistics.median(cycle_ratios):.2f} ({', '.join(f'{r:.2f}' for r in cycle_ratios)})")
        assert cis is not None and cis.process.popen is not None
        extra = args.rss_instances - args.count
        spec = {"containers": [{"name": "main", "image": "nginx:1.27"}], "labels": {"bench": "rss"}}
        while extra > 0:
            n = min(1000, extra)
            call(cis.url, key, "POST", "/v1/instances/batch", {"template": spec, "count": n})
            extra -= n
        time.sleep(10)
        phases = count_phases(cis.url, key)
        print(f"controller RSS with {sum(phases.values())} instances {phases}: "
              f"{rss_mib(cis.process.popen.pid):.0f} MiB")
        finished = True
    finally:
        if cis is not None:
            cis.process.stop()
        stack.stop()
        if finished:
            shutil.rmtree(args.run_dir, ignore_errors=True)
        else:
            print(f"failed; logs kept in {args.run_dir / 'logs'}", file=sys.stderr)


if __name__ == "__main__":
    main()
