"""The local provider: detection of this machine's CPUs, memory and NVIDIA GPUs, and fit checks.

There is no GPU on the machines this suite runs on, so GPU detection runs against a stand-in
`nvidia-smi` script on PATH that prints what the real one prints for the same query. That is the
one fake here; everything else reads the real machine.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from styx.errors import ResourcesUnavailable
from styx.providers import local
from styx.providers.base import ProvisionRequest


@pytest.mark.parametrize(
    "raw, name",
    [
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA H200", "H200"),
        ("Tesla T4", "T4"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100"),
        ("NVIDIA A10G", "A10G"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("NVIDIA RTX A6000", "RTXA6000"),
        ("NVIDIA A100 80GB PCIe", "A100-80GB"),
    ],
)
def test_canonical_gpu_name(raw: str, name: str) -> None:
    assert local.canonical_gpu_name(raw) == name


def test_parse_nvidia_smi_counts_gpus() -> None:
    assert local.parse_nvidia_smi("NVIDIA H100 80GB HBM3\nNVIDIA H100 80GB HBM3\n") == (2, "H100")
    assert local.parse_nvidia_smi("") == (0, None)


def _fake_nvidia_smi(folder: Path, output: str, rc: int = 0) -> None:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{output}'\nexit {rc}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_detect_gpus_through_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, "Tesla T4\\nTesla T4\\nTesla T4\\nTesla T4\\n")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert local.detect_gpus() == (4, "T4")


def test_failing_nvidia_smi_means_no_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_nvidia_smi(tmp_path, "NVIDIA-SMI has failed\\n", rc=9)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert local.detect_gpus() == (0, None)


def test_detects_this_machine() -> None:
    assert local.detect_cpus() == len(os.sched_getaffinity(0))
    assert local.detect_memory_gb() > 0.5


def test_provision_describes_this_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYX_HOME", str(tmp_path))
    handle = local.LocalProvider().provision(ProvisionRequest("c1", 1, cpus=1))
    assert handle.head.ip == "127.0.0.1" and handle.head.cpus == local.detect_cpus()
    assert Path(handle.agent_root).is_dir() and handle.ray_port != 6379
    assert handle.agent_root.startswith(str(tmp_path))


@pytest.mark.parametrize(
    "request_kw, words",
    [
        ({"num_nodes": 2}, "one machine"),
        ({"cpus": 10_000}, "CPUs"),
        ({"memory_gb": 1e7}, "memory"),
        ({"accelerators": {"H100": 8}}, "H100:8"),
    ],
)
def test_requests_beyond_this_machine_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request_kw: dict, words: str
) -> None:
    monkeypatch.setenv("STYX_HOME", str(tmp_path))
    kw = {"num_nodes": 1, **request_kw}
    with pytest.raises(ResourcesUnavailable) as err:
        local.LocalProvider().provision(ProvisionRequest("c1", **kw))
    assert words in err.value.message and err.value.hint


def test_port_blocks_are_free_and_distinct() -> None:
    a, b = local.free_port_block(220), local.free_port_block(220)
    assert 10000 <= a < 32768 and 10000 <= b < 32768  # below the ephemeral ports
