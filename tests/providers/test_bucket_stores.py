"""The GCS and Azure Blob stores against their real stand-ins on 127.0.0.1 (fake-gcs-server and
Azurite, tests/testworld), driven by the official SDKs, and real rclone through the remotes the
stores write for the nodes.

Every test runs with a private HOME and none of the stores' variables but the ones it sets.
Denial comes from a small proxy in front of a stand-in that answers with the stand-in's own
``denied()`` (the real services' 403); unreachable is a closed port on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from styx.cluster.bucket_mounts import config_text
from styx.errors import ConflictError, NotFoundError, StyxError
from styx.providers import stores
from styx.providers.stores import Store, StoreError
from styx.spec.buckets import BucketURL, parse_bucket_url

STORE_NAMES = ("gcs", "azure")
_VARS = ("GOOGLE_", "CLOUDSDK_", "STORAGE_EMULATOR_HOST", "AZURE_", "AWS_CA_BUNDLE")
#: A deadline well above the stores' retry budgets and well below the SDKs' defaults (minutes).
UNREACHABLE_S = 15.0

Answer = tuple[int, dict[str, str], bytes]


# --- the stand-ins --------------------------------------------------------------------------------


def _sdk_missing(store: str) -> str | None:
    module = "google.cloud.storage" if store == "gcs" else "azure.storage.blob"
    try:
        __import__(module)
    except ImportError:
        return f"{module} is not installed (pip install -e '.[test]')"
    return None


def _start(store: str, root: Path) -> Any:
    why = _sdk_missing(store)
    if why:
        pytest.skip(why)
    if store == "gcs":
        from tests.testworld.gcs import FakeGCS as cls
    else:
        from tests.testworld.azurite import Azurite as cls  # type: ignore[assignment]
    server = cls("127.0.0.1", root)
    try:
        server.__enter__()
    except FileNotFoundError as e:
        pytest.skip(f"no {store} stand-in here: {e}")
    return server


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The stand-ins that can run here, started once for the module (lazily, per store)."""
    started: dict[str, Any] = {}
    yield started
    for server in started.values():
        server.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME, none of the stores' variables, and freshly made stores."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in list(os.environ):
        if key.startswith(_VARS):
            monkeypatch.delenv(key)
    stores.reset()
    return home


@dataclass
class World:
    """One store, its stand-in (reached directly), and the client environment set for it."""

    name: str
    server: Any
    store: Store

    def url(self, bucket: str, prefix: str = "") -> BucketURL:
        return parse_bucket_url(self.server.url(bucket, prefix))


def _world(
    name: str,
    servers: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    if name not in servers:
        servers[name] = _start(name, tmp_path_factory.mktemp(f"standin-{name}"))
    for key, value in servers[name].env().items():
        monkeypatch.setenv(key, value)
    stores.reset()
    return World(name, servers[name], stores.store(name))


@pytest.fixture(params=STORE_NAMES)
def world(
    request: pytest.FixtureRequest,
    servers: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    """Each store in turn, with its stand-in's environment."""
    return _world(str(request.param), servers, tmp_path_factory, monkeypatch)


@pytest.fixture
def gcs(
    servers: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    return _world("gcs", servers, tmp_path_factory, monkeypatch)


@pytest.fixture
def azure(
    servers: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    return _world("azure", servers, tmp_path_factory, monkeypatch)


def _bucket() -> str:
    return f"styx-t-{uuid.uuid4().hex[:12]}"


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- a tiny proxy that fakes the service's refusals -------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = self.server.answer(self.command, self.path)
        if answer is None:
            answer = self._forward(body)
        status, headers, text = answer
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(text)

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _forward(self, body: bytes) -> Answer:
        up = http.client.HTTPConnection(*self.server.upstream, timeout=30)
        # Host stays the proxy's: fake-gcs-server builds mediaLink (rclone's downloads) from it.
        skip = {"connection", "transfer-encoding", "content-length"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        try:
            up.request(self.command, self.path, body=body or None, headers=headers)
            resp = up.getresponse()
            drop = {"connection", "transfer-encoding", "content-length"}
            out = {k: v for k, v in resp.getheaders() if k.lower() not in drop}
            return resp.status, out, resp.read()
        finally:
            up.close()


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, upstream: tuple[str, int], answer: Callable[[str, str], Answer | None]
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream, self.answer = upstream, answer


@contextlib.contextmanager
def proxy(world: World, answer: Callable[[str, str], Answer | None]) -> Iterator[None]:
    """The store's client variables pointed at a proxy before the stand-in: ``answer(method,
    path)`` replies for it, or None to forward the request."""
    server = world.server
    front = _ProxyServer((server.host, server.port), answer)
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    real, mine = f"{server.host}:{server.port}", f"127.0.0.1:{front.server_address[1]}"
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update({k: v.replace(real, mine) for k, v in server.env().items()})
    stores.reset()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stores.reset()
        front.shutdown()
        front.server_close()


def deny(world: World, bucket: str) -> Callable[[str, str], Answer | None]:
    def answer(method: str, path: str) -> Answer | None:
        return world.server.denied(bucket) if world.server.bucket_of(path) == bucket else None

    return answer


# --- rclone ---------------------------------------------------------------------------------------


def rclone(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("rclone")
    if exe is None:
        pytest.skip("rclone is not installed (apt-get install rclone)")
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    argv = [exe, "--config", str(conf), "--contimeout", "5s", "--timeout", "20s",
            "--retries", "1", "--low-level-retries", "2", *args]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def write_conf(world: World, url: BucketURL, folder: Path) -> tuple[Path, str]:
    """The rclone config the nodes would get, and the remote path of ``url``."""
    conf = folder / "rclone.conf"
    conf.write_text(config_text({"styxb": world.store.rclone_remote(url)}))
    conf.chmod(0o600)
    return conf, f"styxb:{world.store.rclone_path(url)}"


def _tree(root: Path) -> dict[str, bytes]:
    files = {"a.txt": b"alpha", "sub/b.bin": os.urandom(3000), "sub/deep/c.txt": b"gamma"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


# --- credentials ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STORE_NAMES)
def test_no_credentials_is_a_problem(name: str) -> None:
    problem = stores.store(name).credentials_problem()
    assert problem and isinstance(problem, str)


def test_credentials_with_the_stand_ins_env(world: World) -> None:
    assert world.store.credentials_problem() is None


def test_gcs_credential_files(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from styx.providers.gcp.gcsstore import GCSStore

    gcs = GCSStore()
    adc = home / ".config" / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    adc.write_text(json.dumps(_user_creds()))
    assert gcs.credentials_problem() is None
    adc.write_text('{"type": "external_account"}')
    assert "neither" in (gcs.credentials_problem() or "")
    adc.write_text("not json")
    assert "JSON" in (gcs.credentials_problem() or "")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(home / "missing.json"))
    assert "missing file" in (gcs.credentials_problem() or "")
    key = home / "sa.json"
    key.write_text(json.dumps(_service_account()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    assert gcs.credentials_problem() is None


def test_azure_credential_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from styx.providers.azure.blobstore import BlobStore, account

    blob = BlobStore()
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "acct1")
    assert "AZURE_STORAGE_KEY" in (blob.credentials_problem() or "")
    monkeypatch.setenv("AZURE_STORAGE_KEY", "a2V5")
    assert blob.credentials_problem() is None
    found = account()[0]
    assert found is not None and found.endpoint == "https://acct1.blob.core.windows.net"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=acct2;EndpointSuffix=x")
    assert "AccountKey" in (blob.credentials_problem() or "")
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=https;AccountName=acct2;AccountKey=k2==;EndpointSuffix=core.cn",
    )
    found = account()[0]
    assert found is not None and (found.name, found.key) == ("acct2", "k2==")
    assert found.endpoint == "https://acct2.blob.core.cn"
    assert "k2==" not in repr(found)


def test_azure_url_of_another_account_is_refused(azure: World) -> None:
    world = azure
    url = parse_bucket_url(f"https://otheracct.blob.core.windows.net/{_bucket()}")
    with pytest.raises(StoreError) as e:
        world.store.bucket_exists(url)
    assert e.value.code == "bucket-access-denied"
    assert "otheracct" in e.value.message and "devstoreaccount1" in e.value.message


# --- buckets --------------------------------------------------------------------------------------


def test_exists_and_create(world: World) -> None:
    name = _bucket()
    url = world.url(name)
    assert world.store.bucket_exists(url) is False
    world.store.create_bucket(url, None)
    assert world.store.bucket_exists(url) is True
    assert world.server.exists(name)
    world.store.create_bucket(url, None)  # our own already: fine
    made = _bucket()
    world.server.create(made)
    assert world.store.bucket_exists(world.url(made, "some/prefix")) is True
    world.store.delete_bucket(url)
    world.store.delete_bucket(world.url(made))


def test_upload_tree_and_file_to_a_prefix(world: World, tmp_path: Path) -> None:
    name = _bucket()
    url = world.url(name, "data/run1")
    world.store.create_bucket(url, None)
    files = _tree(tmp_path / "tree")
    single = tmp_path / "one.cfg"
    single.write_bytes(b"x" * 10)
    seen: list[tuple[int, int]] = []
    world.store.upload([str(tmp_path / "tree"), str(single)], url, lambda d, t: seen.append((d, t)))
    total = sum(len(v) for v in files.values()) + 10
    assert seen and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    want = sorted([f"data/run1/{k}" for k in files] + ["data/run1/one.cfg"])
    assert world.server.keys(name) == want
    assert world.server.get(name, "data/run1/sub/b.bin") == files["sub/b.bin"]
    world.store.upload([str(single)], world.url(name), None)  # no prefix: by its name
    assert "one.cfg" in world.server.keys(name)
    world.store.delete_bucket(url)


def test_delete_bucket_with_objects(world: World) -> None:
    name = _bucket()
    world.server.create(name)
    for i in range(12):
        world.server.put(name, f"k/{i}.txt", b"%d" % i)
    world.store.delete_bucket(world.url(name))
    assert not world.server.exists(name)
    assert world.store.bucket_exists(world.url(name)) is False
    world.store.delete_bucket(world.url(name))  # missing: fine


def test_missing_bucket_is_bucket_not_found(world: World, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(NotFoundError) as e:
        world.store.upload([str(tmp_path / "f.txt")], world.url(_bucket(), "p"), None)
    assert e.value.code == "bucket-not-found"


def test_access_denied(world: World) -> None:
    name = _bucket()
    world.server.create(name)
    with proxy(world, deny(world, name)):
        store = stores.store(world.name)
        with pytest.raises(StoreError) as e:
            store.bucket_exists(world.url(name))
        assert e.value.code == "bucket-access-denied"
        assert store.bucket_exists(world.url(_bucket())) is False  # others pass through
    world.store.delete_bucket(world.url(name))


def test_azure_wrong_key_is_access_denied(azure: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key the account does not have (GCS's emulator takes any credentials: the proxy test
    covers its denial)."""
    world = azure
    from tests.testworld.azurite import KEY

    wrong = os.environ["AZURE_STORAGE_CONNECTION_STRING"].replace(KEY, "A" * 86 + "==")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    stores.reset()
    store = stores.store("azure")
    name = _bucket()
    world.server.create(name)
    for call in (
        lambda: store.bucket_exists(world.url(name)),
        lambda: store.create_bucket(world.url(_bucket()), None),
    ):
        with pytest.raises(StoreError) as e:
            call()
        assert e.value.code == "bucket-access-denied"
    world.server._service().delete_container(name)


def test_gcs_name_taken_by_another_project(gcs: World) -> None:
    """409 on create and no access to the bucket: someone else's (Azure container names are
    per account, so there a 409 is always our own)."""
    world = gcs
    name = _bucket()
    world.server.create(name)

    def answer(method: str, path: str) -> Answer | None:
        if world.server.bucket_of(path) == name:  # someone else's: we may not read it
            return world.server.denied(name)
        if method == "POST" and path.startswith("/storage/v1/b?"):
            body = {"error": {"code": 409, "message": "taken", "errors": [{"reason": "conflict"}]}}
            return 409, {"Content-Type": "application/json"}, json.dumps(body).encode()
        return None

    with proxy(world, answer), pytest.raises(ConflictError) as e:
        stores.store("gcs").create_bucket(world.url(name), None)
    assert e.value.code == "bucket-name-taken"
    world.store.delete_bucket(world.url(name))


def test_unreachable_store(world: World) -> None:
    server = world.server
    closed = f"127.0.0.1:{_free_port()}"
    for key, value in server.env().items():
        os.environ[key] = value.replace(f"{server.host}:{server.port}", closed)
    stores.reset()
    store = stores.store(world.name)
    for call in (
        lambda: store.bucket_exists(world.url(_bucket())),
        lambda: store.create_bucket(world.url(_bucket()), None),
    ):
        started = time.monotonic()
        with pytest.raises(StoreError) as e:
            call()
        assert e.value.code == "store-unreachable"
        assert time.monotonic() - started < UNREACHABLE_S


# --- the nodes' view: rclone ------------------------------------------------------------------------


def test_rclone_round_trip(world: World, tmp_path: Path) -> None:
    """The remote the nodes get reaches the bucket: list what Styx uploaded, copy it down,
    and write into the prefix, as COPY and MOUNT do."""
    name = _bucket()
    url = world.url(name, "inputs")
    world.store.create_bucket(url, None)
    files = _tree(tmp_path / "tree")
    world.store.upload([str(tmp_path / "tree")], url, None)
    conf, path = write_conf(world, url, tmp_path)
    assert path.endswith(f"{name}/inputs")

    stat = rclone(conf, "lsjson", "--stat", path)
    assert stat.returncode == 0, stat.stderr
    listed = rclone(conf, "lsjson", "-R", "--files-only", path)
    assert listed.returncode == 0, listed.stderr
    assert sorted(o["Path"] for o in json.loads(listed.stdout)) == sorted(files)

    down = tmp_path / "down"
    got = rclone(conf, "copy", path, str(down))
    assert got.returncode == 0, got.stderr
    assert {str(p.relative_to(down)): p.read_bytes() for p in down.rglob("*") if p.is_file()} == (
        files
    )

    (tmp_path / "out.txt").write_bytes(b"written by a node")
    put = rclone(conf, "copyto", str(tmp_path / "out.txt"), f"{path}/results/out.txt")
    assert put.returncode == 0, put.stderr
    assert world.server.get(name, "inputs/results/out.txt") == b"written by a node"
    whole = write_conf(world, world.url(name), tmp_path)[1]
    assert whole == f"styxb:{name}"
    listed = rclone(conf, "lsjson", "-R", "--files-only", whole)
    assert "inputs/results/out.txt" in {o["Path"] for o in json.loads(listed.stdout)}
    world.store.delete_bucket(url)


def test_rclone_remote_shapes(world: World) -> None:
    remote = world.store.rclone_remote(world.url("styx-shape", "p"))
    if world.name == "gcs":
        base = os.environ["STORAGE_EMULATOR_HOST"]
        assert remote == {
            "type": "google cloud storage", "bucket_policy_only": "true", "anonymous": "true",
            "endpoint": f"{base}/storage/v1/", "project_number": "styx-test",
        }  # fmt: skip
    else:
        assert remote["type"] == "azureblob" and set(remote) == {"type", "sas_url"}
        sas = remote["sas_url"]
        assert sas.startswith(f"{world.server.endpoint}/styx-shape?")
        assert "sr=c" in sas and "sig=" in sas and "sp=racwdl" in sas


def test_gcs_remote_from_credential_files(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline: the identity the nodes get from each kind of credentials file."""
    from styx.providers.gcp.gcsstore import GCSStore

    if _sdk_missing("gcs"):
        pytest.skip(str(_sdk_missing("gcs")))
    url = parse_bucket_url("gs://styx-files/x")
    key = home / "sa.json"
    sa = _service_account()
    key.write_text(json.dumps(sa, indent=2))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    remote = GCSStore().rclone_remote(url)
    assert "\n" not in remote["service_account_credentials"]
    assert json.loads(remote["service_account_credentials"]) == sa
    assert remote["project_number"] == "styx-proj" and "anonymous" not in remote
    assert GCSStore()._client(url).project == "styx-proj"  # loads the key; no network

    user = home / "adc.json"
    user.write_text(json.dumps(_user_creds()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(user))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj-from-env")
    remote = GCSStore().rclone_remote(url)
    token = json.loads(remote["token"])
    assert token["refresh_token"] == "1//refresh-secret" and token["token_type"] == "Bearer"
    assert remote["client_id"] == "cid.apps.googleusercontent.com"
    assert remote["client_secret"] == "client-secret-value"
    assert remote["project_number"] == "proj-from-env"

    user.write_text(json.dumps({**_user_creds(), "client_secret": ""}))
    with pytest.raises(StoreError) as e:
        GCSStore().rclone_remote(url)
    assert e.value.code == "store-credentials-missing"
    assert "refresh-secret" not in json.dumps(e.value.to_dict())


class _TokenHandler(BaseHTTPRequestHandler):
    """Google's OAuth token endpoint, as rclone calls it: any grant gets a fresh token."""

    server: _TokenServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.server.grants.append(body.split("grant_type=", 1)[-1].split("&", 1)[0])
        out = json.dumps({"access_token": "ya29.local", "token_type": "Bearer", "expires_in": 3600})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out.encode())


class _TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _TokenHandler)
        self.grants: list[str] = []


def test_rclone_takes_the_credential_files(
    gcs: World, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclone 1.60 accepts both identities the store writes: it signs a JWT with the
    service-account key, and refreshes the user's token with its client id and secret. The
    token endpoint is a local one (the key file's token_uri, rclone's token_url) and the
    emulator stands in for the API, so nothing leaves this machine."""
    from styx.providers.gcp.gcsstore import GCSStore

    name = _bucket()
    gcs.server.create(name)
    gcs.server.put(name, "k.txt", b"k")
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    tokens = _TokenServer()
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    token_url = f"http://127.0.0.1:{tokens.server_address[1]}/token"
    url = parse_bucket_url(f"gs://{name}")
    key, user = home / "sa.json", home / "user.json"
    key.write_text(json.dumps({**_service_account(), "token_uri": token_url}))
    user.write_text(json.dumps(_user_creds()))
    try:
        for creds, grant in ((key, "urn"), (user, "refresh_token")):
            monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(creds))
            remote = GCSStore().rclone_remote(url)
            remote["endpoint"] = f"{gcs.server.endpoint}/storage/v1/"
            if "token" in remote:
                remote["token_url"] = token_url
            conf = tmp_path / f"{creds.stem}.conf"
            conf.write_text(config_text({"g": remote}))
            got = rclone(conf, "lsjson", "--files-only", f"g:{name}")
            assert got.returncode == 0, got.stderr
            assert [o["Path"] for o in json.loads(got.stdout)] == ["k.txt"]
            assert tokens.grants and tokens.grants[-1].startswith(grant)
    finally:
        tokens.shutdown()
        tokens.server_close()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.server.endpoint)
    gcs.store.delete_bucket(url)


def test_gcs_downloads_go_through_a_proxy_in_front(gcs: World, tmp_path: Path) -> None:
    """rclone reads objects from their mediaLink, which fake-gcs-server builds from the
    request's Host: through a proxy that keeps Host, reads pass the proxy too (so a fault
    proxy can deny or slow them)."""
    name = _bucket()
    gcs.server.create(name)
    gcs.server.put(name, "d/x.txt", b"x")
    seen: list[str] = []

    def answer(method: str, path: str) -> Answer | None:
        seen.append(path)
        return None

    with proxy(gcs, answer):
        conf, path = write_conf(gcs, gcs.url(name), tmp_path)
        got = rclone(conf, "copy", path, str(tmp_path / "down"))
        assert got.returncode == 0, got.stderr
    assert (tmp_path / "down" / "d" / "x.txt").read_bytes() == b"x"
    assert any(p.startswith("/download/") for p in seen), seen
    gcs.store.delete_bucket(gcs.url(name))


def test_remote_values_never_in_messages(world: World, tmp_path: Path) -> None:
    """Whatever fails, no error carries the remote's credentials (keys, SAS signatures,
    endpoints with them)."""
    name = _bucket()
    world.server.create(name)
    secrets = [v for k, v in world.store.rclone_remote(world.url(name)).items() if k != "type"]
    secrets = [v for v in secrets if len(v) >= 8]
    if world.name == "azure":
        from tests.testworld.azurite import KEY

        secrets.append(KEY)
    assert secrets
    (tmp_path / "f").write_text("x")
    errors: list[StyxError] = []

    def collect(call: Callable[[], object]) -> None:
        with pytest.raises(StyxError) as e:
            call()
        errors.append(e.value)

    collect(lambda: world.store.upload([str(tmp_path / "f")], world.url(_bucket()), None))
    with proxy(world, deny(world, name)):
        collect(lambda: stores.store(world.name).bucket_exists(world.url(name)))
        collect(
            lambda: stores.store(world.name).upload([str(tmp_path / "f")], world.url(name), None)
        )
    if world.name == "azure":
        collect(
            lambda: world.store.rclone_remote(
                parse_bucket_url(f"https://zz9.blob.core.windows.net/{name}")
            )
        )
    world.store.delete_bucket(world.url(name))
    for err in errors:
        text = f"{err} {err.hint} {json.dumps(err.to_dict())} {err!r}"
        for secret in secrets:
            assert secret not in text, (err.code, secret[:12])


# --- credentials files (fake, never sent anywhere) ------------------------------------------------------


def _service_account() -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "type": "service_account",
        "project_id": "styx-proj",
        "private_key_id": "0123abcd",
        "private_key": pem.decode(),
        "client_email": "runner@styx-proj.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


def _user_creds() -> dict[str, str]:
    return {
        "type": "authorized_user",
        "client_id": "cid.apps.googleusercontent.com",
        "client_secret": "client-secret-value",
        "refresh_token": "1//refresh-secret",
    }
