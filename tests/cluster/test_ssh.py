"""The SSH runner against real hosts: real sshd, real rsync, real faults (tests/testworld)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from styx.agent import bootstrap
from styx.agent.client import AgentClient
from styx.agent.protocol import AgentConfig, NodeInfo
from styx.cluster.runner import RunResult
from styx.cluster.ssh import (
    AUTH_FAILED,
    SSHHost,
    SSHRunner,
    raise_for_failures,
    remote_command,
    run_parallel,
)
from styx.cluster.sync import rsync_filter_args
from styx.errors import HostUnreachable, RemoteError
from testworld.testbed import Testbed, TestHost

TESTS = Path(__file__).resolve().parents[1]
MakeRunner = Callable[..., SSHRunner]


def ssh_host(h: TestHost, **kw: Any) -> SSHHost:
    return SSHHost(h.name, hostname=h.ip, user=h.user, port=h.port, identity_file=str(h.key), **kw)


@pytest.fixture
def control_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="styx-ssh-", dir="/tmp")  # short: socket paths < 100 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_runner(testbed: Testbed, control_dir: str, tmp_path: Path) -> Iterator[MakeRunner]:
    """Runners with their own masters and known_hosts; every master is closed afterwards."""
    made: list[SSHRunner] = []

    def make(host: int | SSHHost, **kw: Any) -> SSHRunner:
        target = ssh_host(testbed.host(host)) if isinstance(host, int) else host
        kw.setdefault("known_hosts_file", tmp_path / "known_hosts")
        runner = SSHRunner(target, control_dir=control_dir, **kw)
        made.append(runner)
        return runner

    yield make
    for runner in made:
        runner.close()
        if runner.jump is not None:
            runner.jump.close()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.monotonic()
    try:
        out = fn()
    except Exception as e:
        out = e
    return out, time.monotonic() - t0


# --- commands -------------------------------------------------------------------------------


def test_remote_command_quotes_every_part() -> None:
    line = remote_command(["printf", "%s\n", "a b", "$HOME"], {"K": "v w"}, "~/my dir")
    assert line == "cd ~/'my dir' && exec env 'K=v w' printf '%s\n' 'a b' '$HOME'"
    with pytest.raises(ValueError):
        remote_command(["true"], {"BAD-NAME": "x"})


def test_run_with_env_cwd_stdin_and_exit_codes(make_runner: MakeRunner) -> None:
    r = make_runner(1)
    res = r.run(
        ["sh", "-c", 'echo "$GREETING"; pwd; cat; echo oops >&2; exit 3'],
        env={"GREETING": "hi 'there' $USER"},
        cwd="/tmp",
        input_text="from stdin\n",
    )
    assert res == RunResult(3, "hi 'there' $USER\n/tmp\nfrom stdin\n", "oops\n")
    assert r.run(["pwd"], cwd="~").stdout == "/root\n"
    # Hostile arguments arrive as they were sent, one argv element each.
    odd = ["a b", "it's", "$(reboot)", "; rm -rf /", "new\nline", "*", ""]
    out = r.run(["printf", "[%s]", *odd]).stdout
    assert out == "".join(f"[{a}]" for a in odd)
    assert r.run(["no-such-command"]).returncode == 127
    assert r.run(["true"], cwd="/no/such/dir").returncode != 0


def test_command_exiting_255_is_its_own_exit_code(make_runner: MakeRunner) -> None:
    assert make_runner(1).run(["sh", "-c", "exit 255"]).returncode == 255


def test_timeout_names_the_node(make_runner: MakeRunner) -> None:
    with pytest.raises(HostUnreachable, match=r"h1.*did not finish"):
        make_runner(1).run(["sleep", "5"], timeout=0.5)


def test_control_master_makes_later_commands_fast(make_runner: MakeRunner) -> None:
    r = make_runner(2)
    assert not r.master_alive()
    _, first = timed(lambda: r.run(["true"]).check("true"))
    later = sorted(timed(lambda: r.run(["true"]).check("true"))[1] for _ in range(5))[2]
    assert r.master_alive()
    assert later < first / 3 and later < 0.1, (first, later)
    r.close()
    assert not r.master_alive()


# --- files ----------------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _remote_files(r: SSHRunner, path: str) -> set[str]:
    out = r.run(["find", path, "-type", "f", "-printf", "%P\n"]).check("find").stdout
    return set(out.split())


@pytest.mark.parametrize(
    ("ignore_file", "kept", "left_out"),
    [
        (".gitignore", {"main.py", "sub/keep.txt", ".gitignore"}, {"run.log", "sub/data.bin"}),
        (".styxignore", {"main.py", "run.log", "sub/data.bin", ".styxignore"}, {"sub/keep.txt"}),
        (".skyignore", {"main.py", "run.log", "sub/data.bin", ".skyignore"}, {"sub/keep.txt"}),
    ],
)
def test_rsync_honours_ignore_files_and_is_incremental(
    make_runner: MakeRunner, tmp_path: Path, ignore_file: str, kept: set[str], left_out: set[str]
) -> None:
    src = _tree(
        tmp_path / "proj",
        {"main.py": "print(1)\n", "run.log": "log\n", "sub/keep.txt": "k", "sub/data.bin": "d"},
    )
    (src / "sub" / ".gitignore").write_text("data.bin\n")
    (src / ".gitignore").write_text("*.log\n")
    if ignore_file != ".gitignore":  # it alone decides: .gitignore files no longer count
        (src / ".gitignore").unlink()
        (src / "sub" / ".gitignore").unlink()
        (src / ignore_file).write_text("sub/keep.txt\n")
    else:
        kept = kept | {"sub/.gitignore"}
    r = make_runner(3)
    dst = f"~/sky_workdir/{ignore_file}"  # parent folders do not exist yet
    r.rsync_up(str(src), dst, filter_args=rsync_filter_args(str(src)), delete=True)
    remote = f"/root/sky_workdir/{ignore_file}"
    assert _remote_files(r, remote) == kept
    assert not left_out & _remote_files(r, remote)

    # Incremental: only the changed file is rewritten, and deletions propagate.
    def inode(rel: str) -> str:
        return r.run(["stat", "-c", "%i", f"{remote}/{rel}"]).check("stat").stdout

    before = inode("sub/keep.txt") if "sub/keep.txt" in kept else inode("run.log")
    (src / "main.py").write_text("print(22)\n")  # a new size: mtimes may tie
    (src / "extra.txt").write_text("new")
    r.rsync_up(str(src), dst, filter_args=rsync_filter_args(str(src)), delete=True)
    after = inode("sub/keep.txt") if "sub/keep.txt" in kept else inode("run.log")
    assert before == after
    assert r.run(["cat", f"{remote}/main.py"]).stdout == "print(22)\n"
    (src / "extra.txt").unlink()
    r.rsync_up(str(src), dst, filter_args=rsync_filter_args(str(src)), delete=True)
    assert _remote_files(r, remote) == kept


def test_rsync_of_a_single_file(make_runner: MakeRunner, tmp_path: Path) -> None:
    f = tmp_path / "setup.sh"
    f.write_text("echo ok\n")
    r = make_runner(3)
    r.rsync_up(str(f), "/tmp/deep/er/setup.sh")
    assert r.run(["sh", "/tmp/deep/er/setup.sh"]).stdout == "ok\n"


# --- many hosts, jumps, configs -------------------------------------------------------------


def test_parallel_fan_out_names_every_failed_host(
    testbed: Testbed, make_runner: MakeRunner
) -> None:
    runners = [make_runner(i) for i in (1, 2, 3, 4)]
    run_parallel(runners, lambda r: r.run(["true"]))  # masters up
    out, took = timed(lambda: run_parallel(runners, lambda r: r.run(["sleep", "1"]).returncode))
    assert out == [0, 0, 0, 0] and took < 1.8, took  # at once, not one after another
    testbed.crash(2)
    testbed.crash(4)
    results = run_parallel(runners, lambda r: r.run(["hostname"]).stdout.strip())
    assert results[0] == "h1" and results[2] == "h3"
    assert isinstance(results[1], HostUnreachable) and isinstance(results[3], HostUnreachable)
    with pytest.raises(HostUnreachable) as err:
        raise_for_failures([r.node_name for r in runners], results, "Checking the nodes")
    assert "2 of 4" in err.value.message and "h2" in err.value.message
    assert err.value.details["failed_nodes"] == ["h2", "h4"]


def test_proxy_jump_reaches_a_host_only_the_jump_host_can_reach(
    testbed: Testbed, make_runner: MakeRunner
) -> None:
    h1, h2 = testbed.host(1), testbed.host(2)
    testbed.firewall_drop(2, port=22, source=testbed.bridge_ip)
    alone = make_runner(2, connect_timeout=1, connect_retries=0, probe_timeout=0.5)
    direct, _ = timed(lambda: alone.run(["true"]))
    assert isinstance(direct, HostUnreachable), direct
    via = make_runner(ssh_host(h2, proxy_jump=ssh_host(h1)))
    assert via.run(["hostname"]).stdout == "h2\n"
    assert via.jump is not None and via.jump.master_alive()
    by_spec = make_runner(ssh_host(h2, proxy_jump=f"root@{h1.ip}:22"))
    assert by_spec.run(["hostname"]).stdout == "h2\n"
    # Through the master, rsync also goes through the jump host.
    via.run(["mkdir", "-p", "/tmp/j"]).check("mkdir")
    via.rsync_up(str(TESTS / "testworld" / "names.sh"), "/tmp/j/names.sh")
    assert via.run(["test", "-s", "/tmp/j/names.sh"]).returncode == 0


def test_unreachable_jump_host_is_named(testbed: Testbed, make_runner: MakeRunner) -> None:
    testbed.crash(1)
    r = make_runner(ssh_host(testbed.host(2), proxy_jump=ssh_host(testbed.host(1))))
    with pytest.raises(HostUnreachable, match="through jump host h1") as err:
        r.run(["true"])
    assert err.value.details["jump"] == "h1"


def test_host_alias_from_an_ssh_config_file(
    testbed: Testbed, make_runner: MakeRunner, tmp_path: Path
) -> None:
    h = testbed.host(4)
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host lab-box\n  HostName {h.ip}\n  User root\n  IdentityFile {h.key}\n"
        "  IdentitiesOnly yes\n"
    )
    r = make_runner(SSHHost("lab-box", ssh_config_file=str(config)))
    assert r.run(["hostname"]).stdout == "h4\n"


def test_users_own_ssh_config_is_honoured_without_dash_f(
    testbed: Testbed, control_dir: str, tmp_path: Path
) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    h = testbed.host(3)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "config").write_text(
        f"Host my-alias\n  HostName {h.ip}\n  User root\n  IdentityFile {h.key}\n"
    )
    # ssh finds ~/.ssh/config through the passwd entry: give root this home, privately.
    passwd = tmp_path / "passwd"
    lines = Path("/etc/passwd").read_text().splitlines()
    passwd.write_text(
        "".join(
            (f"root:x:0:0:root:{home}:/bin/bash" if ln.startswith("root:") else ln) + "\n"
            for ln in lines
        )
    )
    argv = [sys.executable, "-m", "testworld.ssh_cli", "my-alias", control_dir]
    argv += [str(tmp_path / "kh"), "hostname"]
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount --bind "$0" /etc/passwd && exec "$@"', str(passwd), *argv],
        cwd=TESTS,
        env={**os.environ, "PYTHONPATH": str(TESTS), "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out.get("stdout") == "h3\n", out
    assert "-F" not in out["argv"]


# --- failures -------------------------------------------------------------------------------


def test_crashed_host_is_unreachable_at_once(testbed: Testbed, make_runner: MakeRunner) -> None:
    testbed.crash(2)
    err, took = timed(lambda: make_runner(2).run(["true"]))
    assert isinstance(err, HostUnreachable), err
    assert "h2" in err.message and "refused" in err.message
    assert took < 1.0, took


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["cut_link", "freeze", "firewall_drop"])
def test_silent_host_is_unreachable_within_the_bound(
    testbed: Testbed, make_runner: MakeRunner, fault: str
) -> None:
    connect, probe, retries, backoff = 1.0, 0.5, 2, 0.25
    r = make_runner(
        4,
        connect_timeout=connect,
        probe_timeout=probe,
        connect_retries=retries,
        retry_backoff=backoff,
    )
    getattr(testbed, fault)(4)
    err, took = timed(lambda: r.run(["true"]))
    assert isinstance(err, HostUnreachable), err
    assert "h4" in err.message and "3 attempts" in err.message
    bound = (retries + 1) * (connect + probe) + backoff * (2**retries - 1)
    assert took < bound + 1.5, (took, bound)
    if fault == "freeze":  # TCP is accepted by the kernel, but sshd sends no banner
        assert "no SSH banner" in err.message


def test_wrong_key_is_an_auth_failure_not_unreachable(
    testbed: Testbed, make_runner: MakeRunner, tmp_path: Path
) -> None:
    key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    h = testbed.host(1)
    r = make_runner(SSHHost(h.name, h.ip, "root", 22, str(key)))
    err, took = timed(lambda: r.run(["true"]))
    assert isinstance(err, RemoteError) and not isinstance(err, HostUnreachable), err
    assert err.code == AUTH_FAILED and "h1" in err.message
    assert took < 2.0  # no retries: the server answered


def test_open_session_ends_promptly_when_the_host_crashes(
    testbed: Testbed, make_runner: MakeRunner
) -> None:
    r = make_runner(3, server_alive_interval=1, server_alive_count_max=2)
    r.run(["true"])
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(out=timed(lambda: r.run(["sleep", "60"]))))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    testbed.crash(3)
    t.join(30)
    err, _ = box["out"]
    assert isinstance(err, HostUnreachable) and "while running 'sleep'" in err.message, err
    assert time.monotonic() - t0 < 2.0


def test_open_session_ends_after_server_alive_when_the_link_is_cut(
    testbed: Testbed, make_runner: MakeRunner
) -> None:
    r = make_runner(3, server_alive_interval=1, server_alive_count_max=2, probe_timeout=1)
    r.run(["true"])
    box: dict[str, Any] = {}
    t = threading.Thread(target=lambda: box.update(out=timed(lambda: r.run(["sleep", "60"]))))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    testbed.cut_link(3)
    t.join(30)
    err, _ = box["out"]
    assert isinstance(err, HostUnreachable), err
    assert time.monotonic() - t0 < 1 * 3 + 1 + 2  # ServerAlive 1 s x 2 (+1), probe, slack


# --- sockets --------------------------------------------------------------------------------


def test_forwarded_socket_reaches_the_agent_on_the_head_node(
    testbed: Testbed, make_runner: MakeRunner, control_dir: str
) -> None:
    h = testbed.host(1)
    r = make_runner(1)
    root = "/root/.styx/agent"
    config = AgentConfig(
        cluster_name="fwd-test",
        styx_version="test",
        ray_address=f"{h.ip}:6390",  # no Ray there: the agent answers ping without it
        nodes=[NodeInfo(ip=h.ip, name="head", cpus=1, memory_gb=1)],
    )
    r.run(["mkdir", "-p", root]).check("mkdir")
    r.run(["tee", f"{root}/agent.json"], input_text=config.to_json()).check("agent.json")
    try:
        r.run(bootstrap.agent_ensure_argv(root, sys.executable), timeout=120).check("agent")
        local = f"{control_dir}/agent.sock"
        assert r.forward_unix_socket(local, "~/.styx/agent/agent.sock") == local
        assert r.forward_unix_socket(local, "~/.styx/agent/agent.sock") == local  # idempotent
        with AgentClient(local, timeout=10) as client:
            info = client.ping()
        assert info.cluster_name == "fwd-test"
        r.cancel_forward(local)
        assert not os.path.exists(local)
        # The master went away (closed, or killed leaving its sockets behind): forwarding
        # again starts a new master and a new forward.
        for end in ("close", "kill"):
            r.forward_unix_socket(local, "~/.styx/agent/agent.sock")
            if end == "close":
                r.close()
            else:
                check = r._control("check").stderr  # "Master running (pid=N)"
                os.kill(int(re.search(r"pid=(\d+)", check)[1]), signal.SIGKILL)  # type: ignore[index]
                time.sleep(0.1)
                assert os.path.exists(local) and not r.master_alive()
            r.forward_unix_socket(local, "~/.styx/agent/agent.sock")
            with AgentClient(local, timeout=10) as client:
                assert client.ping().cluster_name == "fwd-test"
        # Other processes share the master but not the runner: one removes the socket (as
        # `styx down` does), with or without knowing the remote path; a third forwards again
        # and must get a working socket, not the master's stale forward with no file.
        for knows_remote in (True, False):
            other = make_runner(1)
            if knows_remote:
                other.cancel_forward(local, "~/.styx/agent/agent.sock")
            else:
                os.unlink(local)
            assert not os.path.exists(local)
            make_runner(1).forward_unix_socket(local, "~/.styx/agent/agent.sock")
            with AgentClient(local, timeout=10) as client:
                assert client.ping().cluster_name == "fwd-test"
    finally:
        testbed.reboot(1)  # the quickest way to stop the agent and all it started
