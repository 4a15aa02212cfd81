"""Autostop from inside a GCP cluster: the head node stops or deletes its own cluster.

``python -m styx.providers.gcp.selfstop stop|down PROJECT ZONE CLUSTER_ID HEAD [--rule NAME]...
[--api URL] [--metadata HOST]`` runs on the head (the agent runs it once the cluster has been
idle long enough) with the instance's service account: an access token from the metadata
server, as every GCE instance has. It finds the cluster's instances by their
``styx-cluster-id`` label, stops (or deletes) the workers, then the head. ``down`` deletes
the cluster's firewall rules (``--rule``) first, since nothing is left to do it afterwards;
the disks go with their instances (auto-delete).

``--api`` is the Compute API base the client used (gcloud's
``CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE``), ``--metadata`` the metadata server
(google-auth's ``GCE_METADATA_HOST``). Standard library only: the runtime needs no Google
client for this. Every call has a deadline; a failure exits non-zero, and the agent tries again
after another idle period.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

API = "https://compute.googleapis.com/compute/v1/"
METADATA = "metadata.google.internal"
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
TIMEOUT = 30.0


class Api:
    def __init__(self, base: str, metadata: str) -> None:
        self.base = base if base.endswith("/") else base + "/"
        self.token = _token(metadata)

    def call(self, method: str, path: str, query: dict[str, str] | None = None) -> Any:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = b"{}" if method == "POST" else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as err:
            if err.code == 404:  # gone already: what was asked for is done
                return {}
            raise


def _token(metadata: str) -> str:
    host = metadata if "://" in metadata else f"http://{metadata}"
    request = urllib.request.Request(host.rstrip("/") + TOKEN_PATH)
    request.add_header("Metadata-Flavor", "Google")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
        return str(json.loads(answer.read())["access_token"])


def run(args: argparse.Namespace) -> int:
    api = Api(args.api, args.metadata)
    zone = f"projects/{urllib.parse.quote(args.project)}/zones/{urllib.parse.quote(args.zone)}"
    found = api.call(
        "GET", f"{zone}/instances", {"filter": f'labels.styx-cluster-id = "{args.cluster_id}"'}
    )
    names = sorted(str(i["name"]) for i in found.get("items", []))
    if args.head in names:  # the head last: it is where this runs
        names = [n for n in names if n != args.head] + [args.head]
    if args.action == "down":
        for rule in args.rule:
            api.call("DELETE", f"projects/{urllib.parse.quote(args.project)}/global/firewalls/"
                     f"{urllib.parse.quote(rule)}")  # fmt: skip
    for name in names:
        where = f"{zone}/instances/{urllib.parse.quote(name)}"
        if args.action == "down":
            api.call("DELETE", where)
        else:
            api.call("POST", f"{where}/stop")
        print(f"{args.action}: {name}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="selfstop")
    parser.add_argument("action", choices=("stop", "down"))
    parser.add_argument("project")
    parser.add_argument("zone")
    parser.add_argument("cluster_id")
    parser.add_argument("head")
    parser.add_argument("--rule", action="append", default=[])
    parser.add_argument("--api", default=API)
    parser.add_argument("--metadata", default=METADATA)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (OSError, ValueError, KeyError) as err:  # urllib's errors are OSErrors
        sys.stderr.write(f"selfstop {args.action} failed: {err}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
