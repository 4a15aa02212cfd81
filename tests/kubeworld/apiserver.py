"""A small stateful Kubernetes API over HTTPS, standing in for a real kube-apiserver (none can
be installed here): enough of the core/v1 and rbac/v1 API for the official Python client.

Objects live in one in-memory store (:class:`Store`): namespaced kinds by (plural, namespace,
name), nodes and namespaces cluster-wide. Lists honour ``labelSelector`` and ``fieldSelector``;
deletes cascade to objects whose ``ownerReferences`` name the deleted uid (the garbage
collector); pod ``exec`` is a websocket (``v5.channel.k8s.io``/``v4``) served by the test
kubelet. Tokens: the admin token may do anything; a service-account token only what the Roles
bound to it allow (403 otherwise). Every request is logged (method, path, identity, status).
``stop()`` closes the listening socket while the store stays; ``start()`` listens again.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .selectors import field_matcher, label_matcher

NAMESPACED = {
    "pods": "Pod", "services": "Service", "secrets": "Secret", "serviceaccounts": "ServiceAccount",
    "events": "Event", "configmaps": "ConfigMap", "roles": "Role", "rolebindings": "RoleBinding",
}  # fmt: skip
CLUSTER = {"nodes": "Node", "namespaces": "Namespace"}
RBAC = ("roles", "rolebindings")
ADMIN = "admin"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ExecHandler = Callable[[str, str, list[str], "WsChannels"], None]


def status_obj(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message}  # fmt: skip


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.version = 0
        self.tokens: dict[str, str] = {ADMIN: "admin"}  # token -> identity
        self.log: list[dict[str, Any]] = []
        self.on_change: list[Callable[[str, dict[str, Any]], None]] = []

    def reset(self) -> None:
        with self.lock:
            self.objects.clear()
            self.log.clear()
            self.tokens = {ADMIN: "admin"}
            self.put("namespaces", "", {"metadata": {"name": "default"}})

    def put(self, plural: str, ns: str, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.version += 1
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            meta["resourceVersion"] = str(self.version)
            if ns:
                meta["namespace"] = ns
            obj.setdefault("kind", (NAMESPACED | CLUSTER)[plural])
            obj.setdefault("apiVersion", "rbac.authorization.k8s.io/v1" if plural in RBAC else "v1")
            self.objects[(plural, ns, meta["name"])] = obj
        for hook in self.on_change:
            hook(plural, obj)
        return obj

    def get(self, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            return self.objects.get((plural, ns, name))

    def items(self, plural: str, ns: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                o
                for (p, n, _), o in self.objects.items()
                if p == plural and (ns is None or n == ns)
            ]

    def delete(self, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        with self.lock:
            obj = self.objects.pop((plural, ns, name), None)
            if obj is None:
                return None
            uid = obj["metadata"]["uid"]
            owned = [
                (p, n, o["metadata"]["name"])
                for (p, n, _), o in list(self.objects.items())
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
            ]
        for hook in self.on_change:
            hook(plural, {**obj, "deleted": True})
        for key in owned:  # the garbage collector
            self.delete(*key)
        return obj

    def allowed(self, identity: str, verb: str, plural: str, ns: str) -> bool:
        if identity == "admin":
            return True
        if not identity.startswith("system:serviceaccount:"):
            return False
        _, _, sa_ns, sa = identity.split(":", 3)
        for binding in self.items("rolebindings", ns):
            subjects = binding.get("subjects") or []
            if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa
                       and s.get("namespace", ns) == sa_ns for s in subjects):  # fmt: skip
                continue
            role = self.get("roles", ns, binding.get("roleRef", {}).get("name", ""))
            for rule in (role or {}).get("rules") or []:
                if plural in rule.get("resources", []) and verb in rule.get("verbs", []):
                    return True
        return False


class WsChannels:
    """The server side of an exec websocket: frames in, channel data out. One lock guards the
    TLS socket (OpenSSL must not read and write at once from two threads): reads poll it with a
    short timeout, so writers get their turn."""

    def __init__(self, sock: socket.socket, protocol: str) -> None:
        self.sock = sock
        self.v5 = protocol.startswith("v5")
        self.lock = threading.Lock()
        self.buf = b""
        self.closed = False

    def send(self, channel: int, data: bytes) -> None:
        self._frame(0x2, bytes([channel]) + data)

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack(">H", n)
        else:
            head += bytes([127]) + struct.pack(">Q", n)
        with self.lock:
            try:
                self.sock.settimeout(30)
                self.sock.sendall(head + payload)
            except OSError:
                self.closed = True

    def close(self) -> None:
        self._frame(0x8, struct.pack(">H", 1000))

    def _fill(self) -> bool:
        with self.lock:
            try:
                self.sock.settimeout(0.02)
                chunk = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                return True
            except OSError:
                return False
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _take(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            if self.closed or not self._fill():
                return None
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame; None at end of stream."""
        head = self._take(2)
        if head is None:
            return None
        b1, b2 = head
        n = b2 & 0x7F
        if n == 126:
            ext = self._take(2)
            if ext is None:
                return None
            n = struct.unpack(">H", ext)[0]
        elif n == 127:
            ext = self._take(8)
            if ext is None:
                return None
            n = struct.unpack(">Q", ext)[0]
        mask = self._take(4) if b2 & 0x80 else b""
        data = self._take(n)
        if mask is None or data is None:
            return None
        if mask:
            m = (mask * (n // 4 + 1))[:n]
            data = (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
        return b1 & 0x0F, data


class ApiServer:
    def __init__(self, host: str, port: int, certs: Any) -> None:
        self.host, self.port = host, port
        self.store = Store()
        self.store.reset()
        self.exec_handler: ExecHandler | None = None
        self.tls_ca: bytes = certs.ca_pem
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(str(certs.cert_file), str(certs.key_file))
        self._server: ThreadingHTTPServer | None = None
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def start(self) -> ApiServer:
        api = self

        class Handler(_Handler):
            server_api = api

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def finish_request(self, request: Any, client_address: Any) -> None:
                # The TLS handshake in the connection's own thread, not in the accept loop.
                try:
                    request = api.tls.wrap_socket(request, server_side=True)
                except (OSError, ssl.SSLError):
                    return
                Handler(request, client_address, self)

        server = Server((self.host, self.port), Handler)
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop answering: the listening socket and every open connection close (the store
        stays), as when an API server goes down."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.conn_lock:
            conns, self.connections = list(self.connections), set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server_api: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server_api.conn_lock:
            self.server_api.connections.add(self.connection)

    def finish(self) -> None:
        with self.server_api.conn_lock:
            self.server_api.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        api = self.server_api
        store = api.store
        parts = urlsplit(self.path)
        query = {k: v for k, v in parse_qs(parts.query).items()}
        q1 = {k: v[-1] for k, v in query.items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        identity = store.tokens.get(token)
        segs = [s for s in parts.path.split("/") if s]
        code = 200
        try:
            if identity is None:
                code = 401
                return self._reply(401, status_obj(401, "Unauthorized", "Unauthorized"))
            if segs == ["version"]:
                return self._reply(
                    200,
                    {
                        "major": "1",
                        "minor": "32",
                        "gitVersion": "v1.32.0-styx-standin",
                        "gitCommit": "0",
                        "gitTreeState": "clean",
                        "buildDate": "2026-01-01T00:00:00Z",
                        "goVersion": "go1.23",
                        "compiler": "gc",
                        "platform": "linux/amd64",
                    },
                )
            if segs == ["api"]:
                return self._reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                         "serverAddressByClientCIDRs": []})  # fmt: skip
            if segs == ["apis"]:
                rbac = {"name": "rbac.authorization.k8s.io",
                        "versions": [{"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}],
                        "preferredVersion": {"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}}  # fmt: skip
                return self._reply(
                    200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [rbac]}
                )
            if segs in (["api", "v1"], ["apis", "rbac.authorization.k8s.io", "v1"]):
                rbac_api = segs[0] == "apis"
                names = RBAC if rbac_api else [p for p in (*NAMESPACED, *CLUSTER) if p not in RBAC]
                res = [{"name": p, "singularName": "", "namespaced": p not in CLUSTER,
                        "kind": (NAMESPACED | CLUSTER)[p], "verbs": ["create", "delete", "get", "list", "patch"]}
                       for p in names]  # fmt: skip
                if not rbac_api:
                    res += [{"name": "pods/exec", "singularName": "", "namespaced": True, "kind": "PodExecOptions", "verbs": ["create", "get"]},
                            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]}]  # fmt: skip
                gv = "rbac.authorization.k8s.io/v1" if rbac_api else "v1"
                return self._reply(
                    200,
                    {
                        "kind": "APIResourceList",
                        "apiVersion": "v1",
                        "groupVersion": gv,
                        "resources": res,
                    },
                )
            if segs[:2] == ["api", "v1"]:
                rest = segs[2:]
            elif segs[:3] == ["apis", "rbac.authorization.k8s.io", "v1"]:
                rest = segs[3:]
            else:
                code = 404
                return self._reply(404, status_obj(404, "NotFound", f"no route {parts.path}"))
            ns = ""
            if rest[:1] == ["namespaces"] and len(rest) >= 3:
                ns, rest = rest[1], rest[2:]
            plural = rest[0] if rest else ""
            name = rest[1] if len(rest) > 1 else ""
            sub = rest[2] if len(rest) > 2 else ""
            verb = {"GET": "get" if name else "list", "POST": "create", "DELETE": "delete",
                    "PATCH": "patch", "PUT": "update"}[method]  # fmt: skip
            if sub == "exec":
                verb = "create"
            if not store.allowed(identity, verb, plural, ns):
                code = 403
                return self._reply(
                    403, status_obj(403, "Forbidden", f"{identity} cannot {verb} {plural} in {ns}")
                )
            if sub == "exec":
                code = 101
                return self._exec(ns, name, query)
            if sub == "log":
                pod = store.get("pods", ns, name)
                if pod is None:
                    code = 404
                    return self._reply(404, status_obj(404, "NotFound", f'pods "{name}" not found'))
                data = pod.get("_log", b"")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            code, answer = self._crud(method, plural, ns, name, q1, body)
            return self._reply(code, answer)
        finally:
            store.log.append({"method": method, "path": parts.path, "identity": identity or "-",
                              "status": code, "time": time.time()})  # fmt: skip

    def _crud(
        self, method: str, plural: str, ns: str, name: str, q: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        store = self.server_api.store
        kind = (NAMESPACED | CLUSTER).get(plural)
        if kind is None:
            return 404, status_obj(404, "NotFound", f"the server could not find {plural}")
        if method == "GET" and not name:
            items = store.items(plural, ns or None)
            labels, fields = (
                label_matcher(q.get("labelSelector")),
                field_matcher(q.get("fieldSelector")),
            )
            items = [
                _public(o) for o in items if labels(o["metadata"].get("labels") or {}) and fields(o)
            ]
            return 200, {
                "kind": kind + "List",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(store.version)},
                "items": items,
            }
        if method == "POST":
            name = body.get("metadata", {}).get("name", "")
            if store.get(plural, ns, name) is not None:
                return 409, status_obj(409, "AlreadyExists", f'{plural} "{name}" already exists')
            if plural == "pods":
                body.setdefault("status", {"phase": "Pending"})
            return 201, _public(store.put(plural, ns, copy.deepcopy(body)))
        if method == "DELETE" and not name:
            labels = label_matcher(q.get("labelSelector"))
            for o in store.items(plural, ns or None):
                if labels(o["metadata"].get("labels") or {}):
                    store.delete(plural, ns, o["metadata"]["name"])
            return 200, {"kind": "Status", "status": "Success"}
        obj = store.get(plural, ns, name)
        if obj is None:
            return 404, status_obj(404, "NotFound", f'{plural} "{name}" not found')
        if method == "GET":
            return 200, _public(obj)
        if method == "DELETE":
            store.delete(plural, ns, name)
            return 200, _public(obj)
        if method in ("PATCH", "PUT"):
            merged = _merge(copy.deepcopy(obj), body) if method == "PATCH" else body
            return 200, _public(store.put(plural, ns, merged))
        return 405, status_obj(405, "MethodNotAllowed", method)

    def _exec(self, ns: str, name: str, query: dict[str, list[str]]) -> None:
        api = self.server_api
        pod = api.store.get("pods", ns, name)
        if (
            pod is None
            or (pod.get("status") or {}).get("phase") != "Running"
            or api.exec_handler is None
        ):
            why = "not found" if pod is None else "is not running"
            return self._reply(
                400 if pod else 404,
                status_obj(400 if pod else 404, "BadRequest", f"pod {name} {why}"),
            )
        offered = [p.strip() for p in (self.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        protocol = next(
            (p for p in ("v5.channel.k8s.io", "v4.channel.k8s.io") if p in offered),
            "v4.channel.k8s.io",
        )
        accept = base64.b64encode(
            hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest()
        ).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        api.exec_handler(ns, name, query.get("command", []), WsChannels(self.connection, protocol))
        return None


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        for k, v in patch.items():
            if v is None:
                base.pop(k, None)
            else:
                base[k] = _merge(base.get(k), v)
        return base
    return copy.deepcopy(patch)
