"""Bucket faults, for every store: a connection cut mid-transfer (down and up), a slow link,
and a store that does not answer, through the fault proxy (tests/testworld/buckets.py) in front
of each real stand-in on 127.0.0.1, with the store's official SDK on this side and Styx's node
step (real rclone, through the local runner) on the other.

A cut transfer is retried and ends whole; a store that never answers fails within the deadline
with ``store-unreachable`` or ``bucket-mount-failed``, never a hang or a traceback.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.testworld.buckets import BucketProxy, standin

from styx.cluster import bucket_mounts as bm
from styx.cluster.runner import LocalRunner
from styx.errors import StyxError
from styx.providers import stores
from styx.spec.buckets import parse_bucket_url

pytestmark = pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed")


@pytest.fixture(scope="module", params=("s3", "gcs", "azure"))
def proxy(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BucketProxy]:
    with (
        standin(str(request.param), "127.0.0.1", tmp_path_factory.mktemp("faults")) as server,
        BucketProxy(server) as p,
    ):
        yield p


@pytest.fixture
def env(proxy: BucketProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in list(os.environ):
        if key.startswith(("AWS_", "AZURE_", "GOOGLE_", "STORAGE_EMULATOR", "CLOUDSDK_")):
            monkeypatch.delenv(key)
    for key, value in proxy.env().items():
        monkeypatch.setenv(key, value)
    stores.reset()
    yield
    proxy.reset()
    stores.reset()


def _bucket(proxy: BucketProxy) -> str:
    name = f"t-fault-{os.urandom(4).hex()}"
    proxy.create(name)
    return name


def _node_copy(proxy: BucketProxy, bucket: str, root: Path, dest: Path) -> str:
    url = parse_bucket_url(proxy.url(bucket))
    s = stores.store(proxy.store)
    runner = LocalRunner("n1")
    bm.write_config(runner, str(root), bm.config_text({"m0": s.rclone_remote(url)}))
    mount = bm.NodeMount(
        str(dest), "COPY", f"m0:{s.rclone_path(url)}", bm.flags_for("COPY", (), False)
    )
    return bm.mount_on_node(runner, str(root), mount, timeout=120)


def test_a_download_cut_mid_transfer_is_retried_and_lands_whole(
    proxy: BucketProxy, env: None, tmp_path: Path
) -> None:
    bucket = _bucket(proxy)
    data = os.urandom(6 * 2**20 + 11)
    proxy.put(bucket, "big.bin", data)
    proxy.cut_after = 2 * 2**20  # the first download dies after 2 MiB
    _node_copy(proxy, bucket, tmp_path / "root", tmp_path / "dest")
    assert proxy.cuts == 1
    got = (tmp_path / "dest" / "big.bin").read_bytes()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


def test_an_upload_cut_mid_transfer_is_retried_and_lands_whole(
    proxy: BucketProxy, env: None, tmp_path: Path
) -> None:
    bucket = _bucket(proxy)
    src = tmp_path / "src"
    src.mkdir()
    data = os.urandom(3 * 2**20 + 5)
    (src / "up.bin").write_bytes(data)
    proxy.cut_upload_after = 2**20
    url = parse_bucket_url(proxy.url(bucket, "pre"))
    stores.store(proxy.store).upload([str(src)], url, None)
    assert proxy.cuts == 1
    assert proxy.get(bucket, "pre/up.bin") == data


def test_a_slow_link_still_copies_everything(proxy: BucketProxy, env: None, tmp_path: Path) -> None:
    bucket = _bucket(proxy)
    for i in range(3):
        proxy.put(bucket, f"d/{i}.txt", f"file {i}\n".encode() * 1000)
    proxy.rate = 256 * 1024  # 256 KiB/s each way
    started = time.monotonic()
    _node_copy(proxy, bucket, tmp_path / "root", tmp_path / "dest")
    assert time.monotonic() - started > 0.05
    assert sorted(p.name for p in (tmp_path / "dest" / "d").iterdir()) == [
        "0.txt",
        "1.txt",
        "2.txt",
    ]


def test_a_store_that_never_answers_fails_within_the_deadline(
    proxy: BucketProxy, env: None, tmp_path: Path
) -> None:
    bucket = _bucket(proxy)
    proxy.block("127.0.0.1")  # every connection is closed unanswered
    url = parse_bucket_url(proxy.url(bucket))
    started = time.monotonic()
    with pytest.raises(StyxError) as info:
        stores.store(proxy.store).bucket_exists(url)
    assert info.value.code == "store-unreachable", info.value.to_dict()
    assert time.monotonic() - started < 45
    started = time.monotonic()
    with pytest.raises(StyxError) as info:
        _node_copy(proxy, bucket, tmp_path / "root", tmp_path / "dest")
    assert info.value.code == "bucket-mount-failed" and "n1" in info.value.message
    assert time.monotonic() - started < 45
    said = str(info.value.to_dict())
    assert "sig=" not in said or "sig=<redacted>" in said, said  # an Azure SAS stays secret
    assert not (tmp_path / "dest").exists()
