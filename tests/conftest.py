"""Suite-wide fixtures: the testbed of real SSH hosts (tests/testworld)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from testworld.testbed import Testbed, usable

TESTBED_HOSTS = 4


@pytest.fixture(autouse=True, scope="session")
def _private_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test runs with a HOME and a STYX_HOME of the suite's own: nothing reads or
    writes the real user's credentials, config or clusters (tests that need their own set
    them again)."""
    home = tmp_path_factory.mktemp("user-home")
    saved = {k: os.environ.get(k) for k in ("HOME", "STYX_HOME", "STYX_TMP_TAG")}
    os.environ["HOME"] = str(home)
    os.environ["STYX_HOME"] = str(home / ".styx")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # the /tmp folders of this worker's clusters carry its name (tests/leaks.py)
        os.environ["STYX_TMP_TAG"] = f"{worker}-"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testbed]:
    """Four real hosts h1..h4 (sshd, rsync, own /root and /tmp), up for the whole session.
    Skips when this machine cannot make them (not root, no ``ip netns`` or sshd)."""
    why = usable()
    if why:
        pytest.skip(f"no test hosts: {why}")
    bed = Testbed(tmp_path_factory.mktemp("testbed"), TESTBED_HOSTS)
    bed.up()
    try:
        yield bed
    finally:
        bed.down()


@pytest.fixture(autouse=True)
def _undo_testbed_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that uses the testbed, undo the faults it injected (links, firewalls,
    frozen and crashed hosts), so no test sees another's."""
    if "testbed" not in request.fixturenames:
        yield
        return
    bed: Testbed = request.getfixturevalue("testbed")
    yield
    bed.restore()
