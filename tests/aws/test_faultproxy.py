"""The fault proxy on its own (tests/testworld/faultproxy.py), in front of a stub upstream."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from testworld.faultproxy import FaultClient, FaultProxy, busy_seconds, rule_matches

SIGNED = "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, X=y"


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(0.05)
        data = b"<ok>" + body + b"</ok>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def proxy() -> Iterator[tuple[FaultProxy, FaultClient]]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    with FaultProxy(upstream.server_address[1]) as p:
        yield p, FaultClient(p.url)
    upstream.shutdown()
    upstream.server_close()


def call(
    url: str, params: dict[str, str], *, region: str = "us-east-1", service: str = "ec2"
) -> tuple[int, str]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {
        "Authorization": SIGNED.format(region=region, service=service),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    conn.request("POST", "/", body=urllib.parse.urlencode(params), headers=headers)
    resp = conn.getresponse()
    out = resp.status, resp.read().decode()
    conn.close()
    return out


def test_parameter_matching() -> None:
    req = {
        "action": "RunInstances",
        "service": "ec2",
        "region": "us-east-1",
        "params": {
            "Action": ["RunInstances"],
            "NetworkInterface.1.SubnetId": ["subnet-a"],
            "InstanceType": ["p4d.24xlarge"],
        },
    }
    assert rule_matches({"action": "RunInstances", "match": {"SubnetId": "subnet-a"}}, req)
    assert rule_matches({"match": {"SubnetId": ["subnet-x", "subnet-a"]}}, req)
    assert rule_matches({"match": {"InstanceType": "p4d.*"}, "region": "us-*"}, req)
    assert not rule_matches({"match": {"SubnetId": "subnet-b"}}, req)
    assert not rule_matches({"match": {"AvailabilityZone": "us-east-1a"}}, req)  # absent
    assert not rule_matches({"action": ["StartInstances", "StopInstances"]}, req)
    assert not rule_matches({"region": "us-west-2"}, req)
    assert not rule_matches({"service": "sts"}, req)
    either = [{"AvailabilityZone": "us-east-1a"}, {"SubnetId": "subnet-a"}]
    assert rule_matches({"match": either}, req)
    both = {"SubnetId": "subnet-a", "InstanceType": "m5.large"}
    assert not rule_matches({"match": both}, req)


def test_count_skip_and_log(proxy: tuple[FaultProxy, FaultClient]) -> None:
    p, faults = proxy
    rule = faults.inject("DescribeVpcs", "RequestLimitExceeded", status=503, skip=1, count=2)
    statuses = [call(p.url, {"Action": "DescribeVpcs"})[0] for _ in range(4)]
    assert statuses == [200, 503, 503, 200]
    assert faults.hits(rule) == 2 and faults.hits("DescribeVpcs") == 2
    status, body = call(p.url, {"Action": "DescribeVpcs"}, region="eu-west-1")
    assert status == 200 and "Action=DescribeVpcs" in body
    log = faults.requests("DescribeVpcs")
    assert [e["status"] for e in log] == [200, 503, 503, 200, 200]
    assert [e["fault"] for e in log] == [None, rule["id"], rule["id"], None, None]
    assert [e["n"] for e in faults.requests(since=log[2]["n"])] == [e["n"] for e in log[3:]]
    assert faults.requests(region="eu-west-1")[0]["n"] == log[-1]["n"]
    assert 0.15 <= busy_seconds(log) < 1  # three forwarded calls of 50 ms, one at a time
    faults.reset()
    assert faults.rules() == [] and faults.requests() == []


def test_error_formats(proxy: tuple[FaultProxy, FaultClient]) -> None:
    p, faults = proxy
    faults.inject("RunInstances", "InsufficientInstanceCapacity", match={"SubnetId": "s-1"})
    status, body = call(p.url, {"Action": "RunInstances", "SubnetId": "s-1"})
    assert status == 500 and "<Response><Errors><Error><Code>InsufficientInstanceCapacity" in body
    faults.inject("GetCallerIdentity", "ExpiredToken", status=403, service="sts")
    status, body = call(p.url, {"Action": "GetCallerIdentity"}, service="sts")
    assert status == 403 and "<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken" in body
    faults.inject("GetProducts", "ThrottlingException", status=400)
    u = urllib.parse.urlsplit(p.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request(
        "POST",
        "/",
        body=b"{}",
        headers={
            "X-Amz-Target": "AWSPriceListService.GetProducts",
            "Authorization": SIGNED.format(region="us-east-1", service="pricing"),
        },
    )
    resp = conn.getresponse()
    assert resp.status == 400 and json.loads(resp.read())["__type"] == "ThrottlingException"
    conn.close()


def test_upstream_must_be_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(5000, upstream_host="198.18.0.1")
