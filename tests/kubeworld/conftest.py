"""Fixtures of the Kubernetes stand-in (it stands in for a real cluster: see world.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testworld.testbed import usable


@pytest.fixture(scope="session")
def kube_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if why := usable():
        pytest.skip(f"no test hosts: {why}")
    pytest.importorskip("kubernetes")
    from kubeworld.world import KubeWorld

    world = KubeWorld(tmp_path_factory.mktemp("kubeworld"))
    try:
        yield world
    finally:
        world.close()


@pytest.fixture
def kube(kube_world: object, tmp_path: Path) -> Iterator[object]:
    """The stand-in reset: namespace default, two 8-CPU nodes, a kubeconfig with the contexts
    ``styx-test`` (current) and ``styx-unreachable``; after the test, nothing may be left."""
    from kubeworld.world import KubeWorld

    assert isinstance(kube_world, KubeWorld)
    kube_world.reset(tmp_path / "kube-home")
    yield kube_world
    deadline = time.monotonic() + 10  # a deleted pod's host goes when the kubelet sees it
    while (left := kube_world.leftovers()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for ns, name in list(kube_world.kubelet.hosts):
        kube_world.kubelet._kill(ns, name)
    assert not left, f"left in the Kubernetes stand-in: {left}"
