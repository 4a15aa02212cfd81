"""The AWS provider: clusters of EC2 instances reached over SSH (``infra: aws``).

A launch makes (or reuses) the user's key pair and the cluster's security group, then runs
all nodes in one zone, trying the region's zones in order (see :mod:`.launch`); it waits for
the instances to run and then for SSH on each. Nodes are reached on their private IPs when
``aws.use_internal_ips`` is set or they have no public IP.

Failover is signalled with typed errors whose ``scope`` (a :class:`~styx.errors.FailoverScope`)
says what to block: NoCapacity ``ZONE`` per zone inside a launch and ``REGION`` once every zone
failed, QuotaExceeded ``REGION``, AuthFailed ``CLOUD`` (see :mod:`.errors`).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from styx.cluster.dests import NodeFolders
from styx.cluster.local_socket import accepts
from styx.cluster.runner import Runner
from styx.cluster.ssh import SSHRunner, run_parallel
from styx.errors import ClusterNotUp, ConflictError, NotSupportedError, StyxError, UsageError
from styx.providers import vm_ssh as ssh_access
from styx.providers.aws import client, handles, instances, keys, network
from styx.providers.aws.errors import translated
from styx.providers.aws.launch import LaunchSpec, launch_in_region, terminate_and_wait
from styx.providers.aws.settings import AWSSettings
from styx.providers.base import ClusterHandle, ProvisionRequest, remote_node_folders

#: Instance states that make a node unreachable whatever the rest of the cluster does.
GONE = ("shutting-down", "terminated", "missing")


class AWSProvider:
    """Clusters of EC2 instances.

    ``settings`` (default: the ``aws:`` section of the user's config, read at first use),
    ``wait_ssh`` (tests without hosts pass False: no SSH wait, no SSH probes, the home folder is
    guessed from the user), and the time limits are the test hooks.
    """

    name = "aws"
    #: Instances cost money: ops records the cluster (with its region) before provisioning,
    #: so an interrupted launch is found by tag and cleaned up by ``terminate``.
    creates_machines = True

    def __init__(
        self,
        *,
        settings: AWSSettings | None = None,
        wait_ssh: bool = True,
        ssh_timeout: float = 300.0,
        state_timeout: float = 600.0,
    ) -> None:
        self._settings = settings
        self.wait_ssh = wait_ssh
        self.ssh_timeout = ssh_timeout
        self.state_timeout = state_timeout

    @property
    def settings(self) -> AWSSettings:
        if self._settings is None:
            self._settings = AWSSettings.load()
        return self._settings

    # --- credentials and lookups --------------------------------------------------------------

    def find_cluster_instances(self, region: str, cluster_name: str) -> list[dict[str, Any]]:
        """The cluster's live instances in ``region``, found by tag (so also those of a launch
        that was killed before recording them), in node-index order."""
        return instances.cluster_instances(client.ec2(region), region, cluster_name)

    def query(self, handle: ClusterHandle) -> dict[str, str]:
        """Each node's EC2 state by node name (``pending``, ``running``, ``stopped``, ...,
        or ``missing`` when EC2 no longer knows the instance), for ``styx status -r``. For a
        handle without nodes (a launch recorded before it finished) the cluster's instances
        found by tag, by their ``Name`` tag."""
        if not handle.nodes:
            found = self.find_cluster_instances(handles.region_of(handle), handle.cluster_name)
            return {
                instances.tags_of(i).get("Name") or i["InstanceId"]: instances.state_of(i)
                for i in found
            }
        return self._node_states(handle)

    @staticmethod
    def _node_states(handle: ClusterHandle) -> dict[str, str]:
        region = handles.region_of(handle)
        ids = [n.instance_id or "" for n in handle.nodes]
        found = instances.by_ids(client.ec2(region), region, [i for i in ids if i])
        return {
            n.name: instances.state_of(found[i]) if i in found else "missing"
            for n, i in zip(handle.nodes, ids, strict=True)
        }

    # --- making and breaking ------------------------------------------------------------------

    def provision(self, request: ProvisionRequest) -> ClusterHandle:
        """Launch the cluster, or reuse its instances when they all exist already (started if
        stopped). A failed launch leaves nothing behind: instances it made are terminated and a
        security group it owns is deleted before the error is raised."""
        if not request.instance_type:
            raise UsageError(
                "An AWS launch needs an instance type, and none was chosen.",
                "Set `instance_type` (or cpus/accelerators) in the task's resources.",
            )
        region = request.region or client.default_region()
        ec2 = client.ec2(region)
        existing = instances.cluster_instances(ec2, region, request.cluster_name)
        if existing:
            reused = self._reuse(ec2, region, request, existing)
            if reused is not None:
                return reused
        settings = self.settings
        net = network.find_network(ec2, region, settings)
        zones = self._zones(ec2, region, request, net)
        info = instances.type_info(ec2, region, request.instance_type)
        image_id, root = instances.resolve_image(
            ec2, region, _machine_image(request.image_id), request.instance_type
        )
        key_name, key_path = keys.ensure_key_pair(ec2, region)
        configured = settings.security_group_for(request.cluster_name)
        group_name = configured or f"styx-{request.cluster_name}"
        group_id, _ = network.ensure_security_group(
            ec2,
            region,
            net.vpc_id,
            group_name,
            request.cluster_name,
            request.ports,
            managed=configured is None,
        )
        spec = LaunchSpec(
            cluster_name=request.cluster_name,
            region=region,
            num_nodes=request.num_nodes,
            instance_type=request.instance_type,
            image_id=image_id,
            block_devices=instances.block_devices(
                root, request.disk_size, request.disk_tier, settings.disk_encrypted
            ),
            key_name=key_name,
            security_group_id=group_id,
            use_spot=request.use_spot,
            internal_ips=settings.use_internal_ips,
            labels=(*settings.labels.items(), *request.labels),
            user_data=settings.user_data(),
            terminate_timeout=self.state_timeout,
        )
        extra = {
            "vpc_id": net.vpc_id,
            "security_group_id": group_id,
            "security_group_name": group_name,
            "security_group_managed": configured is None,
            "key_name": key_name,
            "key_file": str(key_path),
            "instance_type": request.instance_type,
            "image_id": image_id,
            "use_spot": request.use_spot,
        }
        made: list[str] = []
        try:
            # A fresh attempt id per call: EC2 keeps a token's answer for a while, and a
            # relaunch after `down` must not get the terminated instances back.
            zone, launched = launch_in_region(
                ec2, spec, net.subnets, zones, secrets.token_hex(4), whole_region=not request.zone
            )
            made = [i["InstanceId"] for i in launched]
            running = self._wait_running(ec2, region, made)
            extra["subnet_id"] = net.subnets[zone]
            handle = handles.build(request.cluster_name, region, running, info, settings, extra)
            return self._reach(handle)
        except BaseException as exc:
            self._clean_failed_launch(ec2, region, request.cluster_name, made, configured, exc)
            raise

    def _clean_failed_launch(
        self,
        ec2: Any,
        region: str,
        cluster: str,
        made: list[str],
        configured_group: str | None,
        exc: BaseException,
    ) -> None:
        """Terminate what a failed launch made and delete the cluster's own security group; a
        cleanup that fails too is noted on the launch's error (``details['cleanup_error']``)."""
        try:
            terminate_and_wait(ec2, region, made, timeout=self.state_timeout)
            if configured_group is None:
                for group in network.find_cluster_groups(ec2, region, cluster):
                    network.delete_security_group(ec2, region, group)
        except StyxError as failed:
            if isinstance(exc, StyxError):
                exc.details["cleanup_error"] = failed.message
            else:
                exc.add_note(f"Cleaning up the failed launch failed too: {failed.message}")

    def _zones(
        self, ec2: Any, region: str, request: ProvisionRequest, net: network.Network
    ) -> list[str]:
        assert request.instance_type is not None
        if request.zone is not None:
            zone = net.zone_name(request.zone)
            if zone not in net.subnets:
                raise handles.no_subnet(request.instance_type, region, request.zone)
            return [zone]
        offered = instances.offered_zones(ec2, region, request.instance_type)
        zones = [z for z in net.subnets if offered is None or z in offered]
        if not zones:
            raise handles.no_subnet(request.instance_type, region, None)
        return zones

    def _reuse(
        self, ec2: Any, region: str, request: ProvisionRequest, found: list[dict[str, Any]]
    ) -> ClusterHandle | None:
        """A handle on the cluster's existing instances when they form a whole cluster of at
        least ``num_nodes`` (indexes 0..n-1, started if stopped); None after terminating the
        remains of an incomplete launch (or of a cluster that lost nodes: it is made anew)."""
        indexes = [instances.node_index(i) for i in found]
        states = {instances.state_of(i) for i in found}
        whole = indexes == list(range(len(found))) and all(
            instances.INDEX_TAG in instances.tags_of(i) for i in found
        )
        complete = whole and len(found) >= request.num_nodes and "shutting-down" not in states
        if not complete:
            terminate_and_wait(
                ec2, region, [i["InstanceId"] for i in found], timeout=self.state_timeout
            )
            return None
        types = {i["InstanceType"] for i in found}
        if types != {request.instance_type}:
            raise ConflictError(
                f"Cluster '{request.cluster_name}' already has {', '.join(sorted(types))} "
                f"instances in {region}; the task asks for {request.instance_type}.",
                f"Tear it down first (`styx down {request.cluster_name}`), or use another name.",
            )
        ids = [i["InstanceId"] for i in found]
        if states != {"running"}:
            self._start_ids(ec2, region, ids)
        running = self._wait_running(ec2, region, ids)
        info = instances.type_info(ec2, region, running[0]["InstanceType"])
        key_name, key_path = keys.ensure_key_pair(ec2, region)
        managed = self.settings.security_group_for(request.cluster_name) is None
        extra = handles.extra_of(running[0], managed_group=managed, key=(key_name, str(key_path)))
        return self._reach(
            handles.build(request.cluster_name, region, running, info, self.settings, extra)
        )

    def stop(self, handle: ClusterHandle) -> None:
        """Stop the instances (their disks and private IPs are kept) and wait until stopped."""
        if handle.extra.get("use_spot"):
            raise NotSupportedError(
                f"Cluster '{handle.cluster_name}' runs on spot instances, which cannot be stopped.",
                f"Tear it down with `styx down {handle.cluster_name}` instead.",
            )
        region = handles.region_of(handle)
        ec2 = client.ec2(region)
        ids = self._ids(ec2, region, handle)
        self._forget_connections(handle)
        if not ids:
            return
        with translated(region, action="stopping instances"):
            ec2.stop_instances(InstanceIds=ids)
        instances.wait_for_state(
            ec2, region, ids, "stopped", timeout=self.state_timeout, give_up=GONE[:2]
        )

    def start(self, handle: ClusterHandle) -> ClusterHandle:
        """Start stopped instances, wait for them and for SSH; the handle with fresh IPs."""
        region = handles.region_of(handle)
        ec2 = client.ec2(region)
        ids = self._ids(ec2, region, handle)
        if not ids:
            raise ClusterNotUp(
                f"Cluster '{handle.cluster_name}' has no instances left in {region}.",
                f"Launch it again (`styx launch -c {handle.cluster_name}`), after `styx down`.",
            )
        self._start_ids(ec2, region, ids)
        running = self._wait_running(ec2, region, ids)
        info = instances.type_info(ec2, region, running[0]["InstanceType"])
        keep = {k: v for k, v in handle.extra.items() if k not in ("ssh", "instance_ids", "zone")}
        keep.setdefault("key_file", str(keys.private_key_path()))
        fresh = handles.build(handle.cluster_name, region, running, info, self.settings, keep)
        return self._reach(fresh)

    def terminate(self, handle: ClusterHandle) -> None:
        """Terminate the cluster's instances, those of the handle and any other found by tag
        (a handle with no nodes works: it only needs ``extra['region']``), wait until
        they are gone, then delete the security groups Styx made for the cluster. The user's
        key pair is kept."""
        region = handles.region_of(handle)
        ec2 = client.ec2(region)
        self._forget_connections(handle)
        ids = set(handle.extra.get("instance_ids") or ())
        found = instances.cluster_instances(ec2, region, handle.cluster_name)
        ids |= {i["InstanceId"] for i in found}
        self._forget_found_connections(handle, region, found)
        terminate_and_wait(ec2, region, sorted(ids), timeout=self.state_timeout)
        # Again once they are gone: a killed launch's connection still being made during the
        # first pass may have become a master since (none can be made to a gone instance).
        self._forget_found_connections(handle, region, found)
        groups = set(network.find_cluster_groups(ec2, region, handle.cluster_name))
        if handle.extra.get("security_group_managed") and handle.extra.get("security_group_id"):
            groups.add(str(handle.extra["security_group_id"]))
        for group in sorted(groups):
            network.delete_security_group(ec2, region, group)
        for instance_id in ids:
            ssh_access.known_hosts_file(instance_id).unlink(missing_ok=True)

    def is_up(self, handle: ClusterHandle) -> bool:
        """Whether EC2 says every node of the handle is running (False without nodes)."""
        return bool(handle.nodes) and set(self._node_states(handle).values()) == {"running"}

    def unreachable_nodes(self, handle: ClusterHandle) -> list[str]:
        """Nodes whose instance is gone; when some nodes run, also those that do not (a cluster
        stopped as a whole is stopped, not degraded); and running nodes that do not answer
        over SSH (unless ``wait_ssh`` is off)."""
        states = self._node_states(handle)
        some_run = "running" in states.values()
        lost = [n for n, s in states.items() if s in GONE or (some_run and s != "running")]
        if self.wait_ssh:
            alive = [i for i, n in enumerate(handle.nodes) if states[n.name] == "running"]
            runners = [self._ssh_runner(handle, i) for i in alive]
            ok = run_parallel(runners, lambda r: r.run(["true"], timeout=30))
            lost += [
                handle.nodes[i].name
                for i, r in zip(alive, ok, strict=True)
                if isinstance(r, Exception)
            ]
        return sorted(set(lost), key=[n.name for n in handle.nodes].index)

    def gone_nodes(self, handle: ClusterHandle) -> list[str]:
        """Nodes whose instance is terminated, shutting down or missing."""
        return [n for n, s in self._node_states(handle).items() if s in GONE]

    # --- reaching the nodes -------------------------------------------------------------------

    def runner(self, handle: ClusterHandle, node_index: int = 0) -> Runner:
        return self._ssh_runner(handle, node_index)

    @staticmethod
    def _ssh_runner(handle: ClusterHandle, node_index: int) -> SSHRunner:
        node = handle.nodes[node_index]
        return ssh_access.runner_for(handle.extra["ssh"][node_index], node.name, node.instance_id)

    def agent_socket(self, handle: ClusterHandle) -> str:
        local = ssh_access.socket_path("aws", handle.cluster_name, handle.head.ip)
        if accepts(local):
            return local
        runner = self._ssh_runner(handle, 0)
        return runner.forward_unix_socket(local, f"{handle.agent_root}/agent.sock")

    def autostop_commands(self, handle: ClusterHandle) -> tuple[list[str], list[str]]:
        return [], []  # no autostop: see INFO's capabilities

    def node_folders(self, cluster_name: str, handle: ClusterHandle | None) -> NodeFolders:
        return remote_node_folders(handle)

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _ids(ec2: Any, region: str, handle: ClusterHandle) -> list[str]:
        """The handle's instance ids, else (a launch recorded before it made any) those found
        by the cluster's tag."""
        ids = handles.ids_of(handle)
        if ids:
            return ids
        found = instances.cluster_instances(ec2, region, handle.cluster_name)
        return [i["InstanceId"] for i in found]

    def _start_ids(self, ec2: Any, region: str, ids: list[str]) -> None:
        found = instances.by_ids(ec2, region, ids)
        stopping = [i for i, inst in found.items() if instances.state_of(inst) == "stopping"]
        if stopping:  # EC2 refuses to start an instance that is still stopping
            instances.wait_for_state(ec2, region, stopping, "stopped", timeout=self.state_timeout)
        with translated(region, action="starting instances"):
            ec2.start_instances(InstanceIds=ids)

    def _wait_running(self, ec2: Any, region: str, ids: list[str]) -> list[dict[str, Any]]:
        return instances.wait_for_state(
            ec2, region, ids, "running", timeout=self.state_timeout, give_up=GONE[:2]
        )

    def _reach(self, handle: ClusterHandle) -> ClusterHandle:
        """Wait for SSH on every node, then put the real home folder in the handle."""
        if not self.wait_ssh:
            return handle
        runners = [self._ssh_runner(handle, i) for i in range(len(handle.nodes))]
        ids = [n.instance_id for n in handle.nodes]
        ssh_access.wait_for_ssh(list(zip(runners, ids, strict=True)), self.ssh_timeout)
        return ssh_access.with_home(handle, runners[0].remote_home())

    def _forget_found_connections(
        self, handle: ClusterHandle, region: str, found: list[dict[str, Any]]
    ) -> None:
        """Stop the SSH masters a launch killed half-way left to instances that its handle
        never recorded (they would linger for ControlPersist seconds): the runner of each such
        instance is made as the launch made it, and closed."""
        known = {n.instance_id for n in handle.nodes}
        key_file = str(handle.extra.get("key_file") or keys.private_key_path())
        proxy = self.settings.proxy_command(region)
        runners = []
        for inst in found:
            if inst["InstanceId"] in known or not inst.get("PrivateIpAddress"):
                continue
            public = inst.get("PublicIpAddress")
            private = str(inst["PrivateIpAddress"])
            address = private if self.settings.use_internal_ips or not public else str(public)
            raw = ssh_access.host_json(address, self.settings.ssh_user, key_file, proxy)
            name = instances.tags_of(inst).get("Name") or inst["InstanceId"]
            runners.append(ssh_access.runner_for(raw, name, inst["InstanceId"]))
        ssh_access.close_runners(runners)

    def _forget_connections(self, handle: ClusterHandle) -> None:
        if not handle.nodes or "ssh" not in handle.extra:
            return
        local = ssh_access.socket_path("aws", handle.cluster_name, handle.head.ip)
        ssh_access.close_runners([self._ssh_runner(handle, i) for i in range(len(handle.nodes))])
        Path(local).unlink(missing_ok=True)


def _machine_image(image_id: str | None) -> str | None:
    """The AMI asked for: none for ``docker:<image>``, which runs in a container on the
    default image (the container stage, :mod:`styx.cluster.container`)."""
    return None if image_id and image_id.startswith("docker:") else image_id
