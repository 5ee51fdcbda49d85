"""`cis dev up|down|status`: drive the local stack from the command line."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from cis.devstack.platform import create_tenant, register_backing_clusters, start_cis, start_virtual_kubelet
from cis.devstack.stack import (
    INSTALLER,
    Stack,
    StackSettings,
    default_cache_dir,
    stack_status,
    stop_stack,
)

DEFAULT_RUN_DIR = Path(os.environ.get("CIS_RUN_DIR", "/var/tmp/cis/dev"))


def add_dev_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser("dev", help="the local stack of real components")
    dev.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    verbs = dev.add_subparsers(dest="verb", required=True)
    up = verbs.add_parser("up", help="install what is missing and start the stack")
    up.add_argument("--net", type=int, default=10, help="second octet of the 127.x addresses")
    up.add_argument("--kwok-nodes", type=int, default=2, help="fake nodes per backing cluster")
    up.add_argument("--no-install", action="store_true", help="fail instead of building binaries")
    verbs.add_parser("down", help="stop every process of the stack")
    verbs.add_parser("status", help="show which components run")
    dev.set_defaults(func=run_dev)


def run_dev(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if args.verb == "down":
        stopped = stop_stack(run_dir)
        print(f"stopped {len(stopped)} processes" + (f": {', '.join(stopped)}" if stopped else ""))
        return 0
    if args.verb == "status":
        status = stack_status(run_dir)
        if not status:
            print(f"no stack in {run_dir}")
            return 1
        for name, alive in status.items():
            print(f"{'running' if alive else 'STOPPED':8} {name}")
        return 0 if all(status.values()) else 1
    if any(stack_status(run_dir).values()):
        print(f"a stack already runs in {run_dir}; `cis dev down` first", file=sys.stderr)
        return 1
    if not args.no_install:
        subprocess.run(["bash", str(INSTALLER)], check=True, env={**os.environ, "CIS_CACHE": str(default_cache_dir())})
    t0 = time.monotonic()
    print(f"==> starting the local stack in {run_dir} (logs in {run_dir / 'logs'})", flush=True)
    stack = Stack(StackSettings(run_dir=run_dir, net=args.net, kwok_nodes=args.kwok_nodes))
    stack.start()
    print(f"==> stack up in {time.monotonic() - t0:.0f}s; starting CIS", flush=True)
    try:
        register_backing_clusters(stack)
        cis = start_cis(stack)
        key = create_tenant(cis, "demo")
        start_virtual_kubelet(stack, cis, key)
    except BaseException:
        stop_stack(run_dir)
        raise
    env_file = run_dir / "cis.env"
    env_file.write_text(
        f"export CIS_URL={cis.url}\nexport CIS_API_KEY={key}\nexport KUBECONFIG={stack.user.kubeconfig}\n"
    )
    print(usage(stack, cis.url, key, env_file, time.monotonic() - t0))
    return 0


def usage(stack: Stack, url: str, key: str, env_file: Path, seconds: float) -> str:
    kubectl = stack.bins.kubectl
    backing = "\n".join(f"  {kubectl} --kubeconfig {c.kubeconfig} get nodes    # {c.spec.name}" for c in stack.backing)
    return f"""
CIS is running ({seconds:.0f}s). Everything listens on 127.{stack.settings.net}.x.1; logs in {stack.logs}.

  source {env_file}          # CIS_URL, CIS_API_KEY (tenant "demo"), KUBECONFIG (user cluster)

Create an instance (0.5 vCPU, 1 GiB) and watch it run:
  curl -s -H "Authorization: Bearer $CIS_API_KEY" -H 'Content-Type: application/json' \\
       -d '{{"containers":[{{"name":"web","image":"nginx:1.27","resources":{{"cpu":0.5,"memoryGiB":1}}}}]}}' \\
       $CIS_URL/v1/instances
  curl -s -H "Authorization: Bearer $CIS_API_KEY" $CIS_URL/v1/instances
  .venv/bin/cis run nginx:1.27 --cpu 0.5 --memory 1 --wait

kubectl (built v1.36.3) against each cluster:
  {kubectl} --kubeconfig {stack.user.kubeconfig} get containerinstances -A    # user/management
{backing}

The user cluster has a virtual node, cis-virtual-node; its pods run as CIS instances:
  kubectl get nodes
  kubectl create deployment web --image=nginx:1.27 --replicas=3
  kubectl patch deployment web -p '{{"spec":{{"template":{{"spec":{{"nodeSelector":{{"type":"virtual-kubelet"}},
    "tolerations":[{{"key":"virtual-kubelet.io/provider","operator":"Exists","effect":"NoSchedule"}}]}}}}}}}}'
  kubectl get pods -o wide; .venv/bin/cis list

Stop everything: make down
"""
