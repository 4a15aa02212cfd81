"""A fault-injecting HTTP proxy in front of an AWS emulator (moto's server), and its client.

Everything is forwarded to the upstream unchanged, except requests that match an injected
*rule*: those get an AWS-style error, a delay, or a dropped connection instead. Every request
is also logged (action, region, parameters, status, when and how long the upstream took) so
that tests can see what the code under test called, and benchmarks can subtract the emulator's
time (:func:`busy_seconds`). The upstream must be on loopback.

Run it as ``python faultproxy.py --port 0 --upstream 127.0.0.1:5000`` (it prints
``faultproxy listening on 127.0.0.1:PORT``), or ``python faultproxy.py PORT HOST UPPORT``
like the test world's original; in-process with :class:`FaultProxy`. Listens on loopback only.

Control endpoints (JSON)::

    POST   /__fault__        add a rule, answer the rule with its "id"
    GET    /__fault__        the rules, each with "hits"
    DELETE /__fault__        remove every rule
    GET    /__fault__/log    the request log (?action=RunInstances&region=us-east-1&since=N:
                             entries are numbered "n" from 1 for the proxy's life)
    DELETE /__fault__/log    empty the log

A rule (every key optional)::

    {"action": "RunInstances",            # or "*", or a list of actions
     "service": "ec2",                    # from the request's signature
     "region": "us-east-1",               # from the signature; a list or fnmatch pattern too
     "match": {"Placement.AvailabilityZone": "us-east-1a"},  # or a list of such dicts: any one
     "code": "InsufficientInstanceCapacity", "message": "...", "status": 500,
     "delay": 0.0,                        # seconds, before the fault (or before forwarding)
     "drop": false,                       # close the connection without an answer
     "skip": 0,                           # let this many matching requests through first
     "count": 1}                          # how many times it fires; -1: for ever

``match`` compares request parameters (query protocol, ``Action=...&Key.1=...``). A key
matches a parameter named exactly so, or ending in ``.KEY`` ("SubnetId" matches
"NetworkInterface.1.SubnetId"); keys and values are fnmatch patterns; a value may be a list
(any one). Every key of one dict must match. Rules are tried in the order they were added;
the first that matches and still has a count fires. Without ``code`` (and without ``drop``)
a matching request is only delayed, then forwarded.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import http.client
import ipaddress
import itertools
import json
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTROL = "/__fault__"
LOG_LIMIT = 20_000
_SCOPE = re.compile(r"Credential=[^/]+/\d+/([^/]+)/([^/]+)/aws4_request")
_EC2_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
    "<Message>{message}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
)
_QUERY_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>{kind}</Type>'
    "<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{rid}</RequestId>"
    "</ErrorResponse>"
)


# --- the rules ----------------------------------------------------------------------------------


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _matches_any(value: str | None, patterns: Any) -> bool:
    """Whether ``value`` matches one of ``patterns`` (None or "*" match everything)."""
    pats = _as_list(patterns)
    if not pats or "*" in pats:
        return True
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in pats)


def _params_match(params: Mapping[str, list[str]], match: Mapping[str, Any]) -> bool:
    for key, want in match.items():
        names = [
            n for n in params if fnmatch.fnmatchcase(n, key) or fnmatch.fnmatchcase(n, "*." + key)
        ]
        values = [v for n in names for v in params[n]]
        if not any(_matches_any(v, want) for v in values):
            return False
    return True


def rule_matches(rule: Mapping[str, Any], request: Mapping[str, Any]) -> bool:
    """Whether ``rule`` (see the module docstring) applies to ``request`` (a log entry)."""
    if not _matches_any(request.get("action"), rule.get("action", "*")):
        return False
    if not _matches_any(request.get("service"), rule.get("service")):
        return False
    if not _matches_any(request.get("region"), rule.get("region")):
        return False
    match = rule.get("match")
    if not match:
        return True
    alternatives = [match] if isinstance(match, Mapping) else list(match)
    return any(_params_match(request["params"], alt) for alt in alternatives)


def error_body(request: Mapping[str, Any], code: str, message: str, rid: str) -> tuple[str, str]:
    """(content type, body) of an error as ``request``'s protocol spells it."""
    if request.get("protocol") == "json":
        return "application/x-amz-json-1.1", json.dumps({"__type": code, "message": message})
    esc = {"code": _xml(code), "message": _xml(message), "rid": rid}
    if request.get("service") in (None, "ec2"):
        return "text/xml", _EC2_ERROR.format(**esc)
    kind = "Receiver" if code.startswith(("Internal", "ServiceUnavailable")) else "Sender"
    return "text/xml", _QUERY_ERROR.format(kind=kind, **esc)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the server ---------------------------------------------------------------------------------


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: list[dict[str, Any]] = []
        self.log: list[dict[str, Any]] = []
        self.ids = itertools.count(1)
        self.requests = itertools.count(1)

    def add(self, rule: dict[str, Any]) -> dict[str, Any]:
        rule = dict(rule)
        rule.setdefault("count", 1)
        rule["id"] = next(self.ids)
        rule["hits"] = 0
        rule["seen"] = 0
        with self.lock:
            self.rules.append(rule)
            return dict(rule)

    def pick(self, request: Mapping[str, Any]) -> dict[str, Any] | None:
        """The rule that fires for ``request``, its counters updated (a copy)."""
        with self.lock:
            for rule in self.rules:
                if rule.get("count", 1) == 0 or not rule_matches(rule, request):
                    continue
                rule["seen"] += 1
                if rule["seen"] <= int(rule.get("skip", 0)):
                    continue
                if rule.get("count", 1) > 0:
                    rule["count"] -= 1
                rule["hits"] += 1
                return dict(rule)
        return None


def _describe(handler: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any]:
    """What a request is: service, region, action and parameters (query or JSON protocol)."""
    auth = handler.headers.get("Authorization", "")
    scope = _SCOPE.search(auth)
    region, service = (scope.group(1), scope.group(2)) if scope else (None, None)
    target = handler.headers.get("X-Amz-Target")
    params: dict[str, list[str]] = {}
    if target:
        protocol, action = "json", target.rpartition(".")[2]
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            doc = json.loads(body or b"{}")
            if isinstance(doc, dict):
                params = {
                    k: [json.dumps(v) if not isinstance(v, str) else v] for k, v in doc.items()
                }
    else:
        protocol = "query"
        query = urllib.parse.urlsplit(handler.path).query
        text = body.decode(errors="replace") if body else ""
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items():
            params.setdefault(k, []).extend(v)
        action = (params.get("Action") or [None])[0]
    return {
        "method": handler.command,
        "path": urllib.parse.urlsplit(handler.path).path,
        "service": service,
        "region": region,
        "action": action,
        "protocol": protocol,
        "params": params,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: str | bytes, ctype: str, headers: Iterable = ()) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, doc: Any, status: int = 200) -> None:
        self._reply(status, json.dumps(doc), "application/json")

    def _control(self, body: bytes) -> None:
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        if url.path.rstrip("/") == CONTROL + "/log":
            if self.command == "DELETE":
                with state.lock:
                    state.log.clear()
                return self._json([])
            q = urllib.parse.parse_qs(url.query)
            since = int((q.get("since") or ["0"])[0])
            with state.lock:
                entries = [
                    e
                    for e in state.log
                    if e["n"] > since
                    and _matches_any(e["action"], q.get("action"))
                    and _matches_any(e["region"], q.get("region"))
                    and _matches_any(e["service"], q.get("service"))
                ]
            return self._json(entries)
        if self.command == "POST":
            try:
                rule = json.loads(body)
                if not isinstance(rule, dict):
                    raise ValueError("a rule is a JSON object")
            except ValueError as exc:
                return self._json({"error": str(exc)}, 400)
            return self._json(state.add(rule))
        with state.lock:
            if self.command == "DELETE":
                state.rules.clear()
            return self._json([dict(r) for r in state.rules])

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith(CONTROL):
            return self._control(body)
        state = self.server.state
        request = _describe(self, body)
        entry = {
            "n": next(state.requests),
            "t": time.time(),
            **request,
            "status": None,
            "fault": None,
            "upstream_s": 0.0,
        }
        # Logged before any reply is written (its fields are filled in before the reply goes
        # out): a client that reads the log right after its response must find the request.
        with state.lock:
            state.log.append(entry)
            del state.log[: max(0, len(state.log) - LOG_LIMIT)]
        rule = state.pick(request)
        if rule is not None:
            entry["fault"] = rule["id"]
            time.sleep(float(rule.get("delay", 0)))
        if rule is not None and rule.get("drop"):
            entry["status"] = "dropped"
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        if rule is not None and rule.get("code"):
            code = str(rule["code"])
            ctype, text = error_body(
                request,
                code,
                str(rule.get("message", f"injected {code}")),
                f"fault-{entry['n']}",
            )
            entry["status"] = int(rule.get("status", 500))
            return self._reply(entry["status"], text, ctype)
        self._forward(body, entry)

    def _forward(self, body: bytes, entry: dict[str, Any]) -> None:
        host, port = self.server.upstream
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        headers["Host"] = f"{host}:{port}"
        started = time.monotonic()
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            entry["status"] = 502
            entry["upstream_s"] = time.monotonic() - started
            return self._reply(502, f"upstream {host}:{port}: {exc}", "text/plain")
        finally:
            conn.close()
        entry["upstream_s"] = time.monotonic() - started
        entry["upstream_t"] = time.time() - entry["upstream_s"]
        entry["status"] = resp.status
        skip = ("transfer-encoding", "connection", "content-length", "content-type")
        extra = [(k, v) for k, v in resp.getheaders() if k.lower() not in skip]
        self._reply(resp.status, data, resp.getheader("Content-Type", "text/xml"), extra)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def busy_seconds(entries: Iterable[Mapping[str, Any]]) -> float:
    """Wall-clock seconds during which at least one of the logged requests was with the
    upstream (overlapping calls count once): the emulator's share of a run, for benchmarks."""
    spans = sorted(
        (e["upstream_t"], e["upstream_t"] + e["upstream_s"]) for e in entries if e.get("upstream_t")
    )
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, upstream: tuple[str, int]) -> None:
        if not _loopback(upstream[0]):
            raise ValueError(
                f"the upstream must be on loopback (the network rule), not {upstream[0]}"
            )
        super().__init__(("127.0.0.1", port), _Handler)
        self.upstream = upstream
        self.state = _State()


class FaultProxy:
    """The proxy in a thread of this process: ``with FaultProxy(upstream_port) as p: p.url``."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1", port: int = 0):
        self._server = _Server(port, (upstream_host, upstream_port))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the client ---------------------------------------------------------------------------------


class FaultClient:
    """Talks to a proxy's control endpoints."""

    def __init__(self, url: str, timeout: float = 10) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, doc: Any = None) -> Any:
        data = None if doc is None else json.dumps(doc).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.loads(resp.read() or b"null")

    def inject(
        self,
        action: str | Sequence[str] = "*",
        code: str | None = None,
        *,
        status: int | None = None,
        message: str | None = None,
        match: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        region: str | Sequence[str] | None = None,
        service: str | None = None,
        count: int = 1,
        skip: int = 0,
        delay: float = 0.0,
        drop: bool = False,
    ) -> dict[str, Any]:
        """Add a rule (see the module docstring); returns it with its ``id``. ``status``
        defaults to 500 for an error code."""
        rule: dict[str, Any] = {"action": action if isinstance(action, str) else list(action)}
        rule.update(count=count, skip=skip, delay=delay, drop=drop)
        if code is not None:
            rule.update(code=code, status=500 if status is None else status)
        if message is not None:
            rule["message"] = message
        if match is not None:
            rule["match"] = dict(match) if isinstance(match, Mapping) else [dict(m) for m in match]
        if region is not None:
            rule["region"] = region if isinstance(region, str) else list(region)
        if service is not None:
            rule["service"] = service
        return self._call("POST", CONTROL, rule)

    def rules(self) -> list[dict[str, Any]]:
        return self._call("GET", CONTROL)

    def clear(self) -> None:
        """Remove every rule (the log stays)."""
        self._call("DELETE", CONTROL)

    def hits(self, which: int | str | Mapping[str, Any] | None = None) -> int:
        """How often rules fired: all of them, one by id (or the dict ``inject`` returned), or
        those for one action name."""
        rules = self.rules()
        if isinstance(which, Mapping):
            which = int(which["id"])
        if isinstance(which, int):
            rules = [r for r in rules if r["id"] == which]
        elif isinstance(which, str):
            rules = [r for r in rules if which in _as_list(r.get("action", "*"))]
        return sum(int(r.get("hits", 0)) for r in rules)

    def requests(
        self,
        action: str | Sequence[str] | None = None,
        *,
        region: str | None = None,
        service: str | None = None,
        since: int = 0,
    ) -> list[dict[str, Any]]:
        """The logged requests, oldest first, optionally of some actions/region/service, and
        only those numbered above ``since`` (each entry's "n")."""
        q: dict[str, Any] = {"action": action, "region": region, "service": service}
        q = {k: v for k, v in q.items() if v}
        if since:
            q["since"] = since
        suffix = "?" + urllib.parse.urlencode(q, doseq=True) if q else ""
        return self._call("GET", CONTROL + "/log" + suffix)

    def clear_log(self) -> None:
        self._call("DELETE", CONTROL + "/log")

    def reset(self) -> None:
        """No rules and an empty log."""
        self.clear()
        self.clear_log()


# --- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 3 and all(not a.startswith("-") for a in args):  # PORT HOST UPPORT
        args = ["--port", args[0], "--upstream", f"{args[1]}:{args[2]}"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the emulator")
    opts = parser.parse_args(args)
    host, _, port = opts.upstream.rpartition(":")
    server = _Server(opts.port, (host or "127.0.0.1", int(port)))
    print(f"faultproxy listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
