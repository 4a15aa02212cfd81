"""The test kubelet of the Kubernetes stand-in: it schedules pods onto fake nodes (by requests,
nodeSelector and required node affinity), boots a real test host (network namespace,
:class:`testworld.nshost.NsHost`) at a pod IP for each scheduled pod, runs the container's
command there, serves exec inside that host, and kills the host when the pod is deleted. It
stands in for a real cluster's scheduler and kubelets.

Images: ``styx-test/nopython:bookworm`` (when scripts/testimages.sh built it) runs chrooted in
a per-pod copy of a Debian minbase root without Python; any other image sees the host's files
as NsHost gives them (private /root, /tmp, /run), the Python 3.11 of this machine included.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from testworld.nshost import Bridge, NsHost

from .apiserver import ApiServer, WsChannels
from .selectors import match_expression

IMAGE_CACHE = Path(os.environ.get("STYX_TESTWORLD_CACHE", "/var/cache/styx-testworld"))
IMAGES = {"styx-test/nopython:bookworm": IMAGE_CACHE / "nopython-bookworm"}
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")


def quantity(raw: Any) -> float:
    s = str(raw)
    for unit, f in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40), ("m", 1e-3)):
        if s.endswith(unit):
            return float(s[: -len(unit)]) * f
    return float(s or 0)


def image_ready(image: str) -> bool:
    root = IMAGES.get(image)
    return root is not None and Path(str(root) + ".complete").exists()


class PodHost:
    def __init__(self, host: NsHost, rootfs: Path | None) -> None:
        self.host = host
        self.rootfs = rootfs
        self.child: int | None = None
        self.started = time.monotonic()


class Kubelet:
    def __init__(self, api: ApiServer, slot: Any, bridge: Bridge, root: Path) -> None:
        self.api, self.slot, self.bridge, self.root = api, slot, bridge, root
        self.hosts: dict[tuple[str, str], PodHost] = {}
        self.free_octets = list(range(10, 250))
        self.lock = threading.RLock()
        self.work: queue.Queue[tuple[str, str, str]] = queue.Queue()
        self.start_seconds: dict[str, float] = {}
        self.stopping = False
        api.store.on_change.append(self._changed)
        api.exec_handler = self.exec
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    # --- events --------------------------------------------------------------------------------

    def _changed(self, plural: str, obj: dict[str, Any]) -> None:
        if plural == "pods":
            meta = obj["metadata"]
            what = "gone" if obj.get("deleted") else "pod"
            self.work.put((what, meta.get("namespace", ""), meta["name"]))
        elif plural == "nodes":
            self.work.put(("rescan", "", ""))

    def _loop(self) -> None:
        while not self.stopping:
            try:
                what, ns, name = self.work.get(timeout=0.5)
            except queue.Empty:
                what, ns, name = "rescan", "", ""
            try:
                if what == "gone":
                    threading.Thread(target=self._kill, args=(ns, name), daemon=True).start()
                    self.work.put(("rescan", "", ""))
                elif what == "pod":
                    self._schedule(ns, name)
                else:
                    for pod in self.api.store.items("pods"):
                        if not pod["spec"].get("nodeName") and not pod.get("deleted"):
                            self._schedule(pod["metadata"]["namespace"], pod["metadata"]["name"])
            except Exception as exc:  # keep the kubelet alive; the test sees the pod state
                print(f"kubelet: {what} {ns}/{name}: {exc!r}")

    # --- scheduling ----------------------------------------------------------------------------

    def _requests(self, pod: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in pod["spec"].get("containers") or []:
            for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
                out[k] = out.get(k, 0.0) + quantity(v)
        return out

    def _fits(
        self, pod: dict[str, Any], node: dict[str, Any], used: dict[str, float]
    ) -> str | None:
        labels = node["metadata"].get("labels") or {}
        for k, v in (pod["spec"].get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return "node(s) didn't match Pod's node affinity/selector"
        affinity = ((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        if affinity:
            terms = affinity.get("nodeSelectorTerms") or []
            if not any(
                all(match_expression(labels, e) for e in t.get("matchExpressions") or [])
                for t in terms
            ):
                return "node(s) didn't match Pod's node affinity/selector"
        alloc = node["status"]["allocatable"]
        for res, amount in self._requests(pod).items():
            if amount > quantity(alloc.get(res, 0)) - used.get(res, 0.0) + 1e-9:
                return f"Insufficient {res}"
        return None

    def _schedule(self, ns: str, name: str) -> None:
        store = self.api.store
        with store.lock:
            pod = store.get("pods", ns, name)
            if pod is None or pod["spec"].get("nodeName"):
                return
            nodes = store.items("nodes")
            reasons = []
            for node in nodes:
                used: dict[str, float] = {}
                for other in store.items("pods"):
                    if other["spec"].get("nodeName") == node["metadata"]["name"] and (
                        other.get("status") or {}
                    ).get("phase") not in ("Succeeded", "Failed"):
                        for k, v in self._requests(other).items():
                            used[k] = used.get(k, 0.0) + v
                why = self._fits(pod, node, used)
                if why is None:
                    pod["spec"]["nodeName"] = node["metadata"]["name"]
                    pod["status"] = {
                        "phase": "Pending",
                        "conditions": [{"type": "PodScheduled", "status": "True"}],
                    }
                    store.put("pods", ns, pod)
                    threading.Thread(target=self._start, args=(ns, name), daemon=True).start()
                    return
                reasons.append(why)
            message = (
                f"0/{len(nodes)} nodes are available: "
                + ", ".join(sorted(set(reasons)) or ["no nodes"])
                + "."
            )
            conds = (pod.get("status") or {}).get("conditions") or []
            if conds and conds[0].get("message") == message:
                return
            pod["status"] = {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                    }
                ],
            }
            store.put("pods", ns, pod)
            store.put("events", ns, {
                "metadata": {"name": f"{name}.{secrets.token_hex(4)}"},
                "involvedObject": {"kind": "Pod", "name": name, "namespace": ns},
                "reason": "FailedScheduling", "message": message, "type": "Warning",
            })  # fmt: skip

    # --- pods ----------------------------------------------------------------------------------

    def _start(self, ns: str, name: str) -> None:
        try:
            self._start_pod(ns, name)
        except Exception as exc:  # the pod fails, as a container that cannot start does
            pod = self.api.store.get("pods", ns, name)
            if pod is not None:
                pod["status"] = {"phase": "Failed", "reason": "StartError", "message": repr(exc)}
                self.api.store.put("pods", ns, pod)

    def _start_pod(self, ns: str, name: str) -> None:
        store = self.api.store
        pod = store.get("pods", ns, name)
        if pod is None:
            return
        t0 = time.monotonic()
        with self.lock:
            octet = self.free_octets.pop(0)
        ip = self.slot.pod_ip(octet)
        image = pod["spec"]["containers"][0].get("image", "")
        hdir = self.root / f"{ns}-{name}-{octet}"
        host = NsHost(dir=hdir, address=f"{ip}/24", netns=self.slot.netns(octet),
                      veth=self.slot.veth(octet), bridge=self.bridge.name, hostname=name[:63])  # fmt: skip
        rootfs = None
        if image_ready(image):
            rootfs = hdir / "rootfs"
            hdir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["cp", "-a", "--reflink=auto", str(IMAGES[image]), str(rootfs)], check=True
            )
        ph = PodHost(host, rootfs)
        ph.octet = octet  # type: ignore[attr-defined]
        with self.lock:
            self.hosts[(ns, name)] = ph
        host.prepare([])
        host.plug()
        pid = host.boot()
        deadline = time.monotonic() + 10
        while ph.child is None and time.monotonic() < deadline:
            try:
                kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                ph.child = int(kids[0]) if kids else None
            except OSError:
                pass
            if ph.child is None:
                time.sleep(0.01)
        while time.monotonic() < deadline and not host.ready():
            time.sleep(0.01)  # sshd up: the host's mounts are done
        if rootfs is not None:
            self._enter(
                ph,
                [
                    "sh",
                    "-c",
                    f"mount --rbind /dev {rootfs}/dev && mount --rbind /sys {rootfs}/sys && mount -t proc proc {rootfs}/proc && mkdir -p {rootfs}/root {rootfs}/tmp",
                ],
                chroot=False,
            )
        sa = pod["spec"].get("serviceAccountName")
        if sa:
            token = secrets.token_hex(16)
            store.tokens[token] = f"system:serviceaccount:{ns}:{sa}"
            base = (f"{rootfs}" if rootfs else "") + "/run/secrets/kubernetes.io/serviceaccount"
            ca = self.api.tls_ca.decode()
            script = f'mkdir -p {base} && printf %s "$1" > {base}/token && printf %s "$2" > {base}/ca.crt && printf %s "$3" > {base}/namespace'
            self._enter(ph, ["sh", "-c", script, "sh", token, ca, ns], chroot=False)
        c = pod["spec"]["containers"][0]
        argv = list(c.get("command") or []) + list(c.get("args") or [])
        log = hdir / "main.log"
        with open(log, "wb") as out:  # the child keeps its own copy of the file
            main = subprocess.Popen(self._argv(ph, ns, pod, argv or ["sleep", "infinity"]),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
        threading.Thread(target=self._watch_main, args=(ns, name, main, log), daemon=True).start()
        time.sleep(0.05)
        pod = store.get("pods", ns, name)
        if pod is None or main.poll() is not None:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        pod["status"] = {
            "phase": "Running", "podIP": ip, "hostIP": self.slot.gateway, "startTime": now,
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": c["name"], "image": image, "ready": True, "restartCount": 0,
                                   "imageID": image, "state": {"running": {"startedAt": now}}}],
        }  # fmt: skip
        store.put("pods", ns, pod)
        self.start_seconds[name] = time.monotonic() - t0

    def _watch_main(self, ns: str, name: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        code = proc.wait()
        store = self.api.store
        pod = store.get("pods", ns, name)
        if pod is None or self.stopping:
            return
        pod["_log"] = log.read_bytes() if log.exists() else b""
        c = pod["spec"]["containers"][0]
        pod["status"] = {
            "phase": "Succeeded" if code == 0 else "Failed", "podIP": (pod.get("status") or {}).get("podIP"),
            "containerStatuses": [{"name": c["name"], "image": c.get("image"), "ready": False, "restartCount": 0,
                                   "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}}],
        }  # fmt: skip
        store.put("pods", ns, pod)

    def _env(self, ns: str, pod: dict[str, Any]) -> list[str]:
        env = {"PATH": PATH, "HOME": "/root", "HOSTNAME": pod["metadata"]["name"],
               "KUBERNETES_SERVICE_HOST": self.api.host, "KUBERNETES_SERVICE_PORT": str(self.api.port)}  # fmt: skip
        for e in pod["spec"]["containers"][0].get("env") or []:
            env[e["name"]] = str(e.get("value", ""))
        return [f"{k}={v}" for k, v in env.items()]

    def _enter(self, ph: PodHost, argv: list[str], *, chroot: bool = True) -> None:
        base = ["nsenter", "-t", str(ph.child), "-n", "-m", "-p", "-u", "--wd=/"]
        if chroot and ph.rootfs is not None:
            base += ["chroot", str(ph.rootfs)]
        subprocess.run(base + argv, check=True, capture_output=True, timeout=30)

    def _argv(self, ph: PodHost, ns: str, pod: dict[str, Any], argv: list[str]) -> list[str]:
        base = ["nsenter", "-t", str(ph.child), "-n", "-m", "-p", "-u", "--wd=/"]
        if ph.rootfs is not None:
            base += ["chroot", str(ph.rootfs)]
        return [*base, "env", "-i", *self._env(ns, pod), *argv]

    def _kill(self, ns: str, name: str) -> None:
        with self.lock:
            ph = self.hosts.pop((ns, name), None)
        if ph is None:
            return
        ph.host.kill()
        ph.host.unplug()
        if ph.rootfs is not None:
            for sub in ("dev", "sys"):
                subprocess.run(["umount", "-R", "-l", str(ph.rootfs / sub)], capture_output=True)
        if os.environ.get("KUBEWORLD_KEEP_PODS"):  # debugging: keep a deleted pod's files
            shutil.move(str(ph.host.dir), str(ph.host.dir) + f".{int(time.time())}")
        else:
            shutil.rmtree(ph.host.dir, ignore_errors=True)
        with self.lock:
            self.free_octets.append(ph.octet)  # type: ignore[attr-defined]

    def kill_all(self) -> None:
        self.stopping = True
        for ns, name in list(self.hosts):
            self._kill(ns, name)

    def host_of(self, ns: str, name: str) -> PodHost | None:
        return self.hosts.get((ns, name))

    # --- exec ----------------------------------------------------------------------------------

    def exec(self, ns: str, name: str, argv: list[str], ws: WsChannels) -> None:
        pod = self.api.store.get("pods", ns, name)
        ph = self.hosts.get((ns, name))
        if pod is None or ph is None or ph.child is None:
            ws.send(3, json.dumps({"status": "Failure", "message": "pod has no host"}).encode())
            ws.close()
            return
        proc = subprocess.Popen(self._argv(ph, ns, pod, argv), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        assert proc.stdin and proc.stdout and proc.stderr

        def pipe(fd: int, channel: int) -> None:
            while data := os.read(fd, 65536):
                ws.send(channel, data)

        outs = [threading.Thread(target=pipe, args=(p.fileno(), ch), daemon=True)
                for p, ch in ((proc.stdout, 1), (proc.stderr, 2))]  # fmt: skip
        for t in outs:
            t.start()

        def reader() -> None:
            while (frame := ws.recv()) is not None:
                op, data = frame
                if op == 0x8:
                    break
                if not data:
                    continue
                if data[0] == 0 and proc.stdin and not proc.stdin.closed:
                    try:
                        proc.stdin.write(data[1:])
                        proc.stdin.flush()
                    except OSError:
                        pass
                elif data[0] == 255 and data[1:2] == b"\x00" and proc.stdin:
                    proc.stdin.close()
            if proc.poll() is None and frame is None:
                proc.kill()  # the client went away

        threading.Thread(target=reader, daemon=True).start()
        code = proc.wait()
        for t in outs:
            t.join(timeout=30)
        if code == 0:
            status: dict[str, Any] = {"metadata": {}, "status": "Success"}
        else:
            status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                      "message": f"command terminated with non-zero exit code: {code}",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code if code > 0 else 128 - code)}]}}  # fmt: skip
        ws.send(3, json.dumps(status).encode())
        ws.close()
