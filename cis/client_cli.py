"""`cis run|get|list|delete`: the REST API from a terminal.

Reads CIS_URL and CIS_API_KEY (written by `make run` into the run directory's cis.env).
Long operations (batches, --wait) draw a progress bar on stderr.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

BATCH = 1000


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        field = f" (field {err['field']})" if err.get("field") else ""
        super().__init__(f"HTTP {status}: {err.get('message', body)}{field}")
        self.status = status


class RestClient:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            raise ApiError(err.code, parsed) from None


def progress(label: str, done: int, total: int, detail: str = "") -> None:
    width = 30
    filled = int(width * done / total) if total else width
    line = f"{label} [{'#' * filled}{' ' * (width - filled)}] {done}/{total}" + (f"  {detail}" if detail else "")
    sys.stderr.write(f"\r{line}\x1b[K")  # ESC[K: clear what a longer previous line left
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    container: dict[str, Any] = {"name": args.name, "image": args.image,
                                 "resources": {"cpu": args.cpu, "memoryGiB": args.memory}}
    if args.command:
        container["command"] = args.command
    if args.env:
        container["env"] = [{"name": k, "value": v} for k, _, v in (e.partition("=") for e in args.env)]
    spec: dict[str, Any] = {"containers": [container], "restartPolicy": args.restart}
    if args.region:
        spec["region"] = args.region
    if args.label:
        spec["labels"] = dict(lbl.split("=", 1) for lbl in args.label)
    return spec


def run(args: argparse.Namespace, client: RestClient) -> int:
    spec = spec_from_args(args)
    ids: list[str] = []
    if args.count == 1:
        ids.append(client.call("POST", "/v1/instances", spec)["id"])
    else:
        while len(ids) < args.count:
            n = min(BATCH, args.count - len(ids))
            got = client.call("POST", "/v1/instances/batch", {"template": spec, "count": n})
            ids += [i["id"] for i in got["items"]]
            progress("created", len(ids), args.count)
    if not args.wait:
        print("\n".join(ids))
        return 0
    return wait_running(client, ids)


def waiting_summary(states: dict[str, str]) -> str:
    """'2 Queued (InsufficientCapacity), 1 Scheduled': why instances are not running yet."""
    counts = collections.Counter(states.values())
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def wait_running(client: RestClient, ids: list[str]) -> int:
    """Poll by listing (one request per 500 instances), not one GET per instance."""
    pending = set(ids)
    failed = 0
    while pending:
        cont = ""
        waiting: dict[str, str] = {}
        while True:
            page = client.call("GET", "/v1/instances?limit=500" + (f"&continue={cont}" if cont else ""))
            for inst in page["items"]:
                if inst["id"] not in pending:
                    continue
                status = inst.get("status", {})
                phase = status.get("phase")
                if phase in ("Running", "Succeeded", "Failed"):
                    pending.discard(inst["id"])
                    failed += phase == "Failed"
                else:
                    reason = f" ({status['reason']})" if status.get("reason") else ""
                    waiting[inst["id"]] = f"{phase or 'Queued'}{reason}"
            cont = page.get("continue", "")
            if not cont:
                break
        progress("running", len(ids) - len(pending), len(ids), waiting_summary(waiting))
        if pending:
            time.sleep(0.5)
    print("\n".join(ids))
    return 1 if failed else 0


def add_client_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="create an instance (or --count of them)")
    p.add_argument("image")
    p.add_argument("--name", default="main", help="container name")
    p.add_argument("--cpu", type=float, default=0.25)
    p.add_argument("--memory", type=float, default=0.5, help="GiB")
    p.add_argument("--command", nargs="+")
    p.add_argument("--env", action="append", metavar="NAME=VALUE")
    p.add_argument("--label", action="append", metavar="KEY=VALUE")
    p.add_argument("--region")
    p.add_argument("--restart", default="Always", choices=["Always", "OnFailure", "Never"])
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--wait", action="store_true", help="wait until Running")
    p.set_defaults(func=with_client(run))
    g = sub.add_parser("get", help="show an instance as JSON")
    g.add_argument("id")
    g.set_defaults(func=with_client(lambda a, c: _print(c.call("GET", f"/v1/instances/{a.id}"))))
    ls = sub.add_parser("list", help="list instances")
    ls.add_argument("--phase")
    ls.add_argument("--selector", help="label selector")
    ls.set_defaults(func=with_client(list_instances))
    d = sub.add_parser("delete", help="delete instances")
    d.add_argument("ids", nargs="+")
    d.set_defaults(func=with_client(delete))


def _print(obj: Any) -> int:
    print(json.dumps(obj, indent=2))
    return 0


def list_instances(args: argparse.Namespace, client: RestClient) -> int:
    query = "limit=500" + (f"&phase={args.phase}" if args.phase else "") + (
        f"&labels={urllib.parse.quote(args.selector)}" if args.selector else "")
    cont = ""
    print(f"{'ID':26} {'PHASE':10} {'REGION':10} {'CPU':>5} {'MEM':>5}")
    while True:
        page = client.call("GET", f"/v1/instances?{query}" + (f"&continue={cont}" if cont else ""))
        for i in page["items"]:
            st = i.get("status", {})
            print(f"{i['id']:26} {st.get('phase', ''):10} {st.get('region') or '-':10} "
                  f"{i['size']['cpu']:>5} {i['size']['memoryGiB']:>5}")
        cont = page.get("continue", "")
        if not cont:
            return 0


def delete(args: argparse.Namespace, client: RestClient) -> int:
    for n, iid in enumerate(args.ids, 1):
        client.call("DELETE", f"/v1/instances/{iid}")
        if len(args.ids) > 1:
            progress("deleted", n, len(args.ids))
    return 0


def with_client(fn: Any) -> Any:
    def call(args: argparse.Namespace) -> int:
        url, key = os.environ.get("CIS_URL"), os.environ.get("CIS_API_KEY")
        if not url or not key:
            print("set CIS_URL and CIS_API_KEY (make run writes them to <run dir>/cis.env)", file=sys.stderr)
            return 2
        try:
            return int(fn(args, RestClient(url, key)))
        except ApiError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return call
