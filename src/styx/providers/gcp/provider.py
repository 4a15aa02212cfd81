"""The GCP provider: clusters of Compute Engine instances reached over SSH (``infra: gcp``).

A launch finds the VPC and the region's subnetwork, makes the cluster's firewall rules, then
inserts every node in one zone, trying the region's zones in order: a stockout in a zone
(:class:`~styx.errors.NoCapacity`, scope ``ZONE``) deletes what that zone got and moves on;
once every zone failed the error's scope is ``REGION`` and the optimizer is asked again. A
quota blocks the region, refused credentials the cloud (see :mod:`.errors`). The instances are
waited for until RUNNING, then SSH on each.

Spot instances are SPOT with ``instanceTerminationAction: DELETE``: a preempted node is gone
(:meth:`gone_nodes`), which managed jobs see as a preemption. ``stop`` and ``start`` keep the
internal IPs (GCE keeps an instance's address while it is stopped). ``down`` deletes the
instances found by label (so also those of a killed launch), their disks (auto-delete) and the
cluster's firewall rules.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from styx.cluster.dests import NodeFolders
from styx.cluster.local_socket import accepts
from styx.cluster.runner import Runner
from styx.cluster.ssh import SSHRunner, run_parallel
from styx.errors import (
    ClusterNotUp,
    ConflictError,
    FailoverScope,
    NoCapacity,
    RemoteError,
    StyxError,
    UsageError,
)
from styx.providers import vm_ssh
from styx.providers.base import ClusterHandle, ProvisionRequest, remote_node_folders
from styx.providers.gcp import client, handles, instances, network
from styx.providers.gcp.errors import operation_error, translated
from styx.providers.gcp.settings import GCPSettings

#: Statuses of a node that is gone for good (GCE's ``TERMINATED`` is a stopped instance).
GONE = ("missing",)
POLL_S = 0.5


class GCPProvider:
    """Clusters of GCE instances. ``settings`` (default: the ``gcp:`` section of the config),
    ``wait_ssh`` and the time limits are the test hooks."""

    name = "gcp"
    creates_machines = True

    def __init__(
        self,
        *,
        settings: GCPSettings | None = None,
        wait_ssh: bool = True,
        ssh_timeout: float = 300.0,
        state_timeout: float = 600.0,
    ) -> None:
        self._settings = settings
        self.wait_ssh = wait_ssh
        self.ssh_timeout = ssh_timeout
        self.state_timeout = state_timeout

    @property
    def settings(self) -> GCPSettings:
        if self._settings is None:
            self._settings = GCPSettings.load()
        return self._settings

    def _project(self, handle: ClusterHandle | None = None) -> str:
        if handle is not None and handle.extra.get("project"):
            return str(handle.extra["project"])
        return client.project(self.settings.project_id)

    # --- lookups --------------------------------------------------------------------------------

    def cluster_instances(self, project: str, region: str, cluster: str) -> list[Any]:
        """The cluster's instances in any zone of ``region``, found by label, by node index."""
        found = []
        with translated(region, action="listing the cluster's instances"):
            from google.cloud import compute_v1  # type: ignore[import-untyped,import-not-found,unused-ignore]

            query = compute_v1.AggregatedListInstancesRequest(
                project=project, filter=instances.cluster_filter(cluster)
            )
            pages = client.client("InstancesClient").aggregated_list(
                request=query, timeout=client.TIMEOUT_S
            )
            for scope, listed in pages:
                if not str(scope).startswith(f"zones/{region}-"):
                    continue
                found += list(listed.instances or ())
        return sorted(found, key=instances.node_index)

    def _get(self, project: str, zone: str, name: str) -> Any | None:
        from google.api_core.exceptions import NotFound  # type: ignore[import-untyped,import-not-found,unused-ignore]

        with translated(zone.rsplit("-", 1)[0], zone, action="reading an instance"):
            try:
                return client.client("InstancesClient").get(
                    project=project, zone=zone, instance=name, timeout=client.TIMEOUT_S
                )
            except NotFound:
                return None

    def _node_states(self, handle: ClusterHandle) -> dict[str, str]:
        project, zone = self._project(handle), str(handle.extra.get("zone") or "")
        out = {}
        for node in handle.nodes:
            inst = self._get(project, zone, str(node.instance_id)) if zone else None
            out[node.name] = instances.status_of(inst) if inst is not None else "missing"
        return out

    def query(self, handle: ClusterHandle) -> dict[str, str]:
        """Each node's GCE status by node name (``RUNNING``, ``TERMINATED``, ``missing``...)."""
        if not handle.nodes:
            region = str(handle.extra.get("region") or "")
            if not region:
                return {}
            found = self.cluster_instances(self._project(handle), region, handle.cluster_name)
            return {str(i.name): instances.status_of(i) for i in found}
        return self._node_states(handle)

    # --- making and breaking --------------------------------------------------------------------

    def provision(self, request: ProvisionRequest) -> ClusterHandle:
        """Launch the cluster, or reuse its instances when they all exist (started if
        stopped). A failed launch deletes what it made before the error is raised."""
        machine_type = request.instance_type or (
            instances.DEFAULT_N1 if request.accelerators else None
        )
        if not machine_type:
            raise UsageError(
                "A GCP launch needs a machine type, and none was chosen.",
                "Set `instance_type` (or cpus/accelerators) in the task's resources.",
            )
        if not request.region:
            raise UsageError(
                "A GCP launch needs a region, and none was chosen.",
                "Set `infra: gcp/REGION` (or let the optimizer choose one).",
            )
        project, region = self._project(), request.region
        existing = self.cluster_instances(project, region, request.cluster_name)
        if existing:
            reused = self._reuse(project, region, request, existing)
            if reused is not None:
                return reused
        settings = self.settings
        net = network.find(project, region, settings.vpc_name, settings.subnet_names)
        zones = [request.zone] if request.zone else self._zones(project, region)
        key_path, public = vm_ssh.ensure_local_key()
        image = _image(request.image_id, bool(request.accelerators))
        accel = instances.guest_accelerators(machine_type, request.accelerators)
        extra: dict[str, Any] = {
            "project": project,
            "network": net.network,
            "subnetwork": net.subnetwork,
            "key_file": str(key_path),
            "machine_type": machine_type,
            "image": image,
            "use_spot": request.use_spot,
        }
        made: list[tuple[str, str]] = []  # (zone, name)
        try:
            extra["firewall_rules"] = network.ensure_firewall(
                project, region, net, request.cluster_name, request.ports
            )
            labels = {
                **settings.labels,
                **dict(request.labels),
                instances.CLUSTER_LABEL: instances.label_value(request.cluster_name),
                instances.ID_LABEL: instances.cluster_id(request.cluster_name),
            }
            failures: list[StyxError] = []
            for zone in zones:
                attempt = secrets.token_hex(2)
                names = [
                    instances.instance_name(request.cluster_name, i, attempt)
                    for i in range(request.num_nodes)
                ]
                try:
                    made += self._insert_all(
                        project, region, zone, names, machine_type, image, request, net,
                        labels, public, accel,
                    )  # fmt: skip
                except NoCapacity as err:
                    failures.append(err)
                    self._delete_and_wait(project, region, [(zone, n) for n in names])
                    if request.zone:
                        raise
                    continue
                running = self._wait_running(project, zone, names)
                mt = self._machine_type(project, zone, machine_type)
                info = handles.machine_info(mt, request.accelerators)
                handle = handles.build(request.cluster_name, region, running, info, settings, extra)
                return self._reach(handle)
            raise NoCapacity(
                f"No zone of {region} had capacity for {request.num_nodes}x {machine_type} "
                f"({'; '.join(f.message for f in failures)}).",
                scope=FailoverScope.REGION,
                details={"cloud": "gcp", "region": region, "zones": zones},
            )
        except BaseException as exc:
            self._clean_failed_launch(project, region, request.cluster_name, made, exc)
            raise

    def _insert_all(
        self, project: str, region: str, zone: str, names: list[str], machine_type: str,
        image: str, request: ProvisionRequest, net: network.Network, labels: dict[str, str],
        public_key: str, accel: list[tuple[str, int]],
    ) -> list[tuple[str, str]]:  # fmt: skip
        """Insert every node in ``zone`` at once, then wait for all; the first error raised."""
        api = client.client("InstancesClient")
        ops, made = [], []
        settings = self.settings
        for index, name in enumerate(names):
            body = instances.insert_body(
                name=name, project=project, zone=zone, machine_type=machine_type, image=image,
                disk_size=request.disk_size or 256, disk_tier=request.disk_tier,
                network=net.network, subnetwork=net.subnetwork,
                external_ip=settings.external_ips,
                labels={**labels, instances.NODE_LABEL: str(index)},
                tag=instances.network_tag(request.cluster_name),
                ssh_keys=instances.ssh_keys_item(settings.ssh_user, public_key),
                use_spot=request.use_spot, accelerators=accel,
            )  # fmt: skip
            with translated(region, zone, action=f"creating {name}"):
                ops.append(
                    api.insert_unary(
                        project=project, zone=zone, instance_resource=body, timeout=client.TIMEOUT_S
                    )
                )
            made.append((zone, name))
        first: StyxError | None = None
        for op in ops:
            done = client.wait(op, project_id=project, zone=zone, timeout=self.state_timeout,
                               action="creating instances")  # fmt: skip
            failed = operation_error(done, region=region, zone=zone, action="creating instances")
            if failed is not None and first is None:
                first = failed
        if first is not None:
            raise first
        return made

    def _zones(self, project: str, region: str) -> list[str]:
        with translated(region, action="listing zones"):
            found = client.client("ZonesClient").list(project=project, timeout=client.TIMEOUT_S)
            zones = sorted(
                str(z.name)
                for z in found
                if str(z.name).startswith(f"{region}-") and client.enum_name(z.status) == "UP"
            )
        if not zones:
            raise NoCapacity(
                f"GCP lists no zone that is up in {region}.",
                scope=FailoverScope.REGION,
                details={"cloud": "gcp", "region": region},
            )
        return zones

    def _machine_type(self, project: str, zone: str, machine_type: str) -> Any:
        with translated(zone.rsplit("-", 1)[0], zone, action=f"reading {machine_type}"):
            return client.client("MachineTypesClient").get(
                project=project, zone=zone, machine_type=machine_type, timeout=client.TIMEOUT_S
            )

    def _wait_running(self, project: str, zone: str, names: list[str]) -> list[Any]:
        """Every named instance once RUNNING; RemoteError if one is gone or stays down."""
        deadline = time.monotonic() + self.state_timeout
        while True:
            found = [self._get(project, zone, n) for n in names]
            states = [instances.status_of(i) if i is not None else "missing" for i in found]
            if all(s == "RUNNING" for s in states):
                return [i for i in found if i is not None]
            bad = [n for n, s in zip(names, states, strict=True) if s in ("missing", "TERMINATED")]
            if bad or time.monotonic() > deadline:
                raise RemoteError(
                    f"Instances did not start in {zone}: "
                    + ", ".join(f"{n} {s}" for n, s in zip(names, states, strict=True)) + ".",
                    "Check the instances in the console (a preemption or a stockout), then retry.",
                    code="instances-not-running",
                    details={"cloud": "gcp", "zone": zone},
                )  # fmt: skip
            time.sleep(POLL_S)

    def _delete_and_wait(self, project: str, region: str, items: list[tuple[str, str]]) -> None:
        """Delete the instances and wait until GCE no longer has them."""
        from google.api_core.exceptions import NotFound  # type: ignore[import-untyped,import-not-found,unused-ignore]

        api = client.client("InstancesClient")
        ops = []
        for zone, name in items:
            with translated(region, zone, action=f"deleting {name}"):
                try:
                    ops.append((zone, api.delete_unary(project=project, zone=zone, instance=name,
                                                       timeout=client.TIMEOUT_S)))  # fmt: skip
                except NotFound:
                    continue
        for zone, op in ops:
            client.wait(op, project_id=project, zone=zone, timeout=self.state_timeout,
                        action="deleting instances")  # fmt: skip
        deadline = time.monotonic() + self.state_timeout
        while any(self._get(project, z, n) is not None for z, n in items):
            if time.monotonic() > deadline:
                raise RemoteError(
                    f"Instances of {region} were not deleted in {self.state_timeout:.0f} s.",
                    "Delete them in the console (they carry the styx-cluster label).",
                    code="cloud-api-timeout",
                )
            time.sleep(POLL_S)
        for _zone, name in items:
            vm_ssh.known_hosts_file(name).unlink(missing_ok=True)

    def _clean_failed_launch(
        self, project: str, region: str, cluster: str, made: list[tuple[str, str]],
        exc: BaseException,
    ) -> None:  # fmt: skip
        try:
            found = self.cluster_instances(project, region, cluster)
            items = set(made) | {(_zone_of(i), str(i.name)) for i in found}
            self._delete_and_wait(project, region, sorted(items))
            network.delete_firewall(project, region, cluster)
        except StyxError as failed:
            if isinstance(exc, StyxError):
                exc.details["cleanup_error"] = failed.message
            else:
                exc.add_note(f"Cleaning up the failed launch failed too: {failed.message}")

    def _reuse(
        self, project: str, region: str, request: ProvisionRequest, found: list[Any]
    ) -> ClusterHandle | None:
        """A handle on the cluster's existing instances when they form a whole cluster of at
        least ``num_nodes`` (started if stopped); None after deleting an incomplete one."""
        indexes = [instances.node_index(i) for i in found]
        zones = {_zone_of(i) for i in found}
        states = {instances.status_of(i) for i in found}
        whole = indexes == list(range(len(found))) and len(zones) == 1
        if not whole or len(found) < request.num_nodes or states & {"STOPPING", "SUSPENDING"}:
            self._delete_and_wait(project, region, [(_zone_of(i), str(i.name)) for i in found])
            return None
        types = {str(i.machine_type).rstrip("/").rsplit("/", 1)[-1] for i in found}
        if request.instance_type and types != {request.instance_type}:
            raise ConflictError(
                f"Cluster '{request.cluster_name}' already has {', '.join(sorted(types))} "
                f"instances in {region}; the task asks for {request.instance_type}.",
                f"Tear it down first (`styx down {request.cluster_name}`), or use another name.",
            )
        zone = zones.pop()
        names = [str(i.name) for i in found]
        if states != {"RUNNING"}:
            self._start_names(project, zone, names)
        running = self._wait_running(project, zone, names)
        key_path, _ = vm_ssh.ensure_local_key()
        machine_type = types.pop()
        extra = {
            "project": project,
            "network": str(running[0].network_interfaces[0].network),
            "subnetwork": str(running[0].network_interfaces[0].subnetwork) or None,
            "key_file": str(key_path),
            "machine_type": machine_type,
            "image": None,
            "use_spot": instances.is_spot(running[0]),
            "firewall_rules": list(network.rule_names(request.cluster_name).values()),
        }
        info = handles.machine_info(
            self._machine_type(project, zone, machine_type), request.accelerators
        )
        return self._reach(
            handles.build(request.cluster_name, region, running, info, self.settings, extra)
        )

    def _start_names(self, project: str, zone: str, names: list[str]) -> None:
        api = client.client("InstancesClient")
        region = zone.rsplit("-", 1)[0]
        deadline = time.monotonic() + self.state_timeout
        for name in names:  # GCE refuses to start an instance that is still stopping
            while (inst := self._get(project, zone, name)) is not None and instances.status_of(
                inst
            ) == "STOPPING":
                if time.monotonic() > deadline:
                    break
                time.sleep(POLL_S)
        ops = []
        with translated(region, zone, action="starting instances"):
            for name in names:
                inst = self._get(project, zone, name)
                if inst is not None and instances.status_of(inst) in ("TERMINATED", "SUSPENDED"):
                    ops.append(api.start_unary(project=project, zone=zone, instance=name,
                                               timeout=client.TIMEOUT_S))  # fmt: skip
        for op in ops:
            done = client.wait(op, project_id=project, zone=zone, timeout=self.state_timeout,
                               action="starting instances")  # fmt: skip
            failed = operation_error(done, region=region, zone=zone, action="starting instances")
            if failed is not None:
                raise failed

    def stop(self, handle: ClusterHandle) -> None:
        """Stop the instances (disks and internal IPs are kept) and wait until TERMINATED."""
        project, zone = self._project(handle), str(handle.extra["zone"])
        region = zone.rsplit("-", 1)[0]
        names = handles.names_of(handle)
        self._forget_connections(handle)
        api = client.client("InstancesClient")
        ops = []
        with translated(region, zone, action="stopping instances"):
            for name in names:
                ops.append(api.stop_unary(project=project, zone=zone, instance=name,
                                          timeout=client.TIMEOUT_S))  # fmt: skip
        for op in ops:
            client.wait(op, project_id=project, zone=zone, timeout=self.state_timeout,
                        action="stopping instances")  # fmt: skip
        deadline = time.monotonic() + self.state_timeout
        while True:
            found = [self._get(project, zone, n) for n in names]
            if all(i is None or instances.status_of(i) == "TERMINATED" for i in found):
                return
            if time.monotonic() > deadline:
                raise RemoteError(
                    f"Cluster '{handle.cluster_name}' did not stop in {self.state_timeout:.0f} s.",
                    "Check its instances in the console, then retry `styx stop`.",
                    code="cloud-api-timeout",
                )
            time.sleep(POLL_S)

    def start(self, handle: ClusterHandle) -> ClusterHandle:
        """Start stopped instances, wait for them and for SSH; the handle, same IPs."""
        project, zone = self._project(handle), str(handle.extra["zone"])
        region = zone.rsplit("-", 1)[0]
        names = handles.names_of(handle)
        if not names or all(self._get(project, zone, n) is None for n in names):
            raise ClusterNotUp(
                f"Cluster '{handle.cluster_name}' has no instances left in {zone}.",
                f"Launch it again (`styx launch -c {handle.cluster_name}`), after `styx down`.",
            )
        self._start_names(project, zone, names)
        running = self._wait_running(project, zone, names)
        keep = {k: v for k, v in handle.extra.items() if k not in ("ssh", "instance_names", "zone")}
        keep.setdefault("key_file", str(vm_ssh.private_key_path()))
        info = handles.MachineInfo(handle.head.cpus, handle.head.memory_gb,
                                   handle.head.accelerator, handle.head.gpus)  # fmt: skip
        fresh = handles.build(handle.cluster_name, region, running, info, self.settings, keep)
        return self._reach(fresh)

    def terminate(self, handle: ClusterHandle) -> None:
        """Delete the cluster's instances (the handle's and any found by label), wait until
        they are gone, then delete the cluster's firewall rules."""
        project = self._project(handle)
        region = str(handle.extra.get("region") or "")
        if not region:
            return  # a launch recorded before it chose a region made nothing
        self._forget_connections(handle)
        zone = str(handle.extra.get("zone") or "")
        items = {(zone, n) for n in handles.names_of(handle)} if zone else set()
        found = self.cluster_instances(project, region, handle.cluster_name)
        items |= {(_zone_of(i), str(i.name)) for i in found}
        self._delete_and_wait(project, region, sorted(items))
        network.delete_firewall(project, region, handle.cluster_name)

    def is_up(self, handle: ClusterHandle) -> bool:
        return bool(handle.nodes) and set(self._node_states(handle).values()) == {"RUNNING"}

    def unreachable_nodes(self, handle: ClusterHandle) -> list[str]:
        """Nodes that are gone; when some run, also those that do not; and running nodes that
        do not answer over SSH (unless ``wait_ssh`` is off)."""
        states = self._node_states(handle)
        some_run = "RUNNING" in states.values()
        lost = [n for n, s in states.items() if s in GONE or (some_run and s != "RUNNING")]
        if self.wait_ssh:
            alive = [i for i, n in enumerate(handle.nodes) if states[n.name] == "RUNNING"]
            runners = [self._ssh_runner(handle, i) for i in alive]
            ok = run_parallel(runners, lambda r: r.run(["true"], timeout=30))
            lost += [handle.nodes[i].name for i, r in zip(alive, ok, strict=True)
                     if isinstance(r, Exception)]  # fmt: skip
        return sorted(set(lost), key=[n.name for n in handle.nodes].index)

    def gone_nodes(self, handle: ClusterHandle) -> list[str]:
        """Nodes GCE no longer has (deleted, or preempted: spot nodes are deleted then)."""
        return [n for n, s in self._node_states(handle).items() if s in GONE]

    # --- reaching the nodes ---------------------------------------------------------------------

    def runner(self, handle: ClusterHandle, node_index: int = 0) -> Runner:
        return self._ssh_runner(handle, node_index)

    @staticmethod
    def _ssh_runner(handle: ClusterHandle, node_index: int) -> SSHRunner:
        node = handle.nodes[node_index]
        return vm_ssh.runner_for(handle.extra["ssh"][node_index], node.name, node.instance_id)

    def agent_socket(self, handle: ClusterHandle) -> str:
        local = vm_ssh.socket_path("gcp", handle.cluster_name, handle.head.ip)
        if accepts(local):
            return local
        return self._ssh_runner(handle, 0).forward_unix_socket(
            local, f"{handle.agent_root}/agent.sock"
        )

    def autostop_commands(self, handle: ClusterHandle) -> tuple[list[str], list[str]]:
        """Stop and down from the head, through its service account (:mod:`.selfstop`): the
        Compute API and metadata server this client is pointed at go with them."""
        base = [handle.python, "-m", "styx.providers.gcp.selfstop"]
        where = [
            self._project(handle),
            str(handle.extra["zone"]),
            instances.cluster_id(handle.cluster_name),
            str(handle.nodes[0].instance_id),
        ]
        for flag, env in (("--api", client.ENDPOINT_ENV), ("--metadata", "GCE_METADATA_HOST")):
            if os.environ.get(env):
                where += [flag, os.environ[env]]
        rules = handle.extra.get("firewall_rules") or list(
            network.rule_names(handle.cluster_name).values()
        )
        down = [*base, "down", *where, *(a for r in rules for a in ("--rule", str(r)))]
        return [*base, "stop", *where], down

    def node_folders(self, cluster_name: str, handle: ClusterHandle | None) -> NodeFolders:
        return remote_node_folders(handle)

    def _reach(self, handle: ClusterHandle) -> ClusterHandle:
        """Wait for SSH on every node, then put the real home folder in the handle."""
        if not self.wait_ssh:
            return handle
        runners = [self._ssh_runner(handle, i) for i in range(len(handle.nodes))]
        ids = [n.instance_id for n in handle.nodes]
        vm_ssh.wait_for_ssh(list(zip(runners, ids, strict=True)), self.ssh_timeout)
        return vm_ssh.with_home(handle, runners[0].remote_home())

    def _forget_connections(self, handle: ClusterHandle) -> None:
        if not handle.nodes or "ssh" not in handle.extra:
            return
        local = vm_ssh.socket_path("gcp", handle.cluster_name, handle.head.ip)
        vm_ssh.close_runners([self._ssh_runner(handle, i) for i in range(len(handle.nodes))])
        Path(local).unlink(missing_ok=True)


def _zone_of(instance: Any) -> str:
    return str(instance.zone).rstrip("/").rsplit("/", 1)[-1]


def _image(image_id: str | None, gpus: bool) -> str:
    """The boot image: a full image path or family as given, GCE's short forms completed; the
    default (Debian 12, or a CUDA image for GPUs) for none or ``docker:<image>``."""
    if not image_id or image_id.startswith("docker:"):
        return instances.GPU_IMAGE if gpus else instances.CPU_IMAGE
    if image_id.startswith(("projects/", "https://", "global/")):
        return image_id
    if "/" in image_id:  # PROJECT/FAMILY, as gcloud's --image-project + --image-family
        project, family = image_id.split("/", 1)
        return f"projects/{project}/global/images/family/{family}"
    return f"global/images/{image_id}"
