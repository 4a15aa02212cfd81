"""Git workdirs end to end on a 2-node SSH cluster of real sshd hosts: ``workdir: {url, ref}``
cloned on every node at a branch, a tag and a commit from ``git daemon``, and a private
repository behind a token-checking ``git http-backend``, both served on the test bed's bridge.

After every test: no cluster and no Styx process; the token is nowhere Styx keeps things
(the state database, the hosts' Styx folders, the clone's git config) and in no output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests import leaks
from tests.ops.conftest import Styx, assert_no_leaks, wheelhouse
from tests.testworld.gitserver import GitHTTPServer, git_daemon, make_repos
from tests.testworld.testbed import Testbed

pytestmark = [pytest.mark.ray, pytest.mark.slow]
TOKEN = "ghp-styx-e2e-9f3Kq2"


@pytest.fixture(scope="module")
def bed(testbed: Testbed) -> Testbed:
    """The suite's shared hosts (tests/conftest.py)."""
    if wheelhouse() is None:
        pytest.skip("no wheelhouse with Ray (scripts/test.sh builds .wheelhouse before the tests)")
    return testbed


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Bare repositories pub.git and priv.git: main (c1, c2), branch side (c3), tag v1 at c1."""
    return make_repos(tmp_path_factory.mktemp("git"), ("pub", "priv"))


@pytest.fixture(scope="module")
def servers(
    bed: Testbed, repos: tuple[Path, dict[str, str]]
) -> Iterator[tuple[str, GitHTTPServer]]:
    srv, _ = repos
    with git_daemon(srv, bed.bridge_ip) as public, GitHTTPServer(srv, bed.bridge_ip, TOKEN) as http:
        yield public, http


@pytest.fixture
def styx(bed: Testbed, tmp_path: Path) -> Iterator[Styx]:
    before = leaks.snapshot()
    home = tmp_path / "styx-home"
    home.mkdir()
    hosts = "\n".join(f"    - {h.ip}" for h in bed.hosts)
    (home / "ssh_node_pools.yaml").write_text(
        f"lab:\n  user: root\n  identity_file: {bed.key}\n  hosts:\n{hosts}\n"
    )
    runner = Styx(home, extra_env={"STYX_WHEELHOUSE": str(wheelhouse())})
    yield runner
    runner("down", "--all", "-y", timeout=300)
    assert_no_leaks(before, home)


def task(tmp_path: Path, url: str, ref: str | None) -> str:
    path = tmp_path / f"git-{ref}.yaml"
    ref_line = f"\n  ref: {ref}" if ref else ""
    path.write_text(
        f"resources: {{infra: ssh/lab}}\nnum_nodes: 2\nworkdir:\n  url: {url}{ref_line}\n"
        'run: echo "node $SKYPILOT_NODE_RANK $(cat f.txt) $(git rev-parse HEAD)"\n'
    )
    return str(path)


def test_branch_tag_and_commit_on_every_node(
    styx: Styx, servers: tuple[str, GitHTTPServer], repos: tuple[Path, dict[str, str]],
    tmp_path: Path,
) -> None:  # fmt: skip
    public, _ = servers
    _, shas = repos
    url = f"{public}/pub.git"
    r = styx("launch", task(tmp_path, url, "side"), "-c", "g", "-y", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for rank in (0, 1):
        assert f"node {rank} side {shas['c3']}" in r.stdout, r.stdout
    for ref, text, sha in (("v1", "one", shas["c1"]), (shas["c2"][:10], "two", shas["c2"])):
        r = styx("exec", "g", task(tmp_path, url, ref), timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout + r.stderr
        for rank in (0, 1):
            assert f"node {rank} {text} {sha}" in out, out
    # A ref the repository lacks is refused before anything runs, with the branches it has.
    r = styx("exec", "g", task(tmp_path, url, "nope"))
    assert r.returncode == 3 and "[git-ref-not-found]" in r.stderr, r.stderr
    assert "main" in r.stderr


def test_a_private_repository_needs_its_token(
    styx: Styx, bed: Testbed, servers: tuple[str, GitHTTPServer],
    repos: tuple[Path, dict[str, str]], tmp_path: Path,
) -> None:  # fmt: skip
    _, http = servers
    _, shas = repos
    url = http.url("priv.git")
    yaml = task(tmp_path, url, "main")
    r = styx("launch", yaml, "-c", "p", "-y", timeout=120)
    assert r.returncode == 2 and "[git-auth-failed]" in r.stderr, r.stdout + r.stderr
    assert "GIT_TOKEN" in r.stderr  # the hint says what to set
    assert json.loads(styx("status", "--json", check=True).stdout) == []  # nothing provisioned
    r = styx("launch", yaml, "-c", "p", "-y", "--secret", f"GIT_TOKEN={TOKEN}", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for rank in (0, 1):
        assert f"node {rank} two {shas['c2']}" in r.stdout, r.stdout
    assert TOKEN not in r.stdout + r.stderr
    assert any(status == 200 for _m, _p, status in http.requests)
    # Not kept anywhere: the state database, the hosts' Styx folders, the clone's config.
    for db in styx.home.rglob("*.db"):
        assert TOKEN.encode() not in db.read_bytes(), db
    for h in bed.hosts:
        found = bed.ssh(
            h.index, "sh", "-c", f"grep -rl {TOKEN} ~/.styx* ~/sky_workdir/.git 2>/dev/null || true"
        )
        assert found.stdout.strip() == "", found.stdout
