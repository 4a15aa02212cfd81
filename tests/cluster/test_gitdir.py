"""Git workdirs (styx.cluster.gitdir): URL validation, what ls-remote's answers mean, the
token kept out of every argv, and the node script run for real on this machine (file:// and
a loopback HTTP server behind a token)."""

from __future__ import annotations

import base64
import stat
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from tests.testworld.gitserver import GitHTTPServer, git, make_repos

from styx.cluster import gitdir
from styx.cluster.runner import LocalRunner, RunResult
from styx.errors import SpecError, StyxError
from styx.spec.mounts import GitWorkdir, git_url_problem
from styx.spec.task import Task

TOKEN = "tok-Zq81-unit"
B64 = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()


# --- URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/repo.git",
        "http://198.18.0.1:8080/repo",
        "ssh://git@host:2222/org/repo.git",
        "git://198.18.0.1:9418/repo.git",
        "file:///srv/repo.git",
        "git@github.com:org/repo.git",
        "host.example:repo.git",
        "https://user@github.com/org/repo.git",
    ],
)
def test_good_git_urls(url: str) -> None:
    assert git_url_problem(url) is None
    assert Task.from_yaml_str(f"workdir: {{url: '{url}'}}\n").workdir == GitWorkdir(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://host/repo.git",
        "s3://bucket/repo",
        "/srv/repo.git",
        "repo.git",
        "https://",
        "-uhack",
        "https://host/a b",
        "https://user:secret-pw@github.com/org/repo.git",
    ],
)
def test_bad_git_urls_fail_at_parse_time(url: str) -> None:
    assert git_url_problem(url)
    with pytest.raises(SpecError) as info:
        Task.from_yaml_str(f"workdir: {{url: '{url}'}}\n")
    assert info.value.code == "invalid-git-url"
    assert "secret-pw" not in str(info.value)


def test_a_url_with_a_variable_is_checked_once_filled() -> None:
    t = Task.from_yaml_str("envs: {REPO: 'ftp://x/y'}\nworkdir: {url: $REPO}\n")
    with pytest.raises(SpecError) as info:
        t.substitute_env_vars()
    assert info.value.code == "invalid-git-url"


def test_a_ref_that_looks_like_an_option_is_refused() -> None:
    with pytest.raises(SpecError):
        Task.from_yaml_str("workdir: {url: 'https://h/r.git', ref: --upload-pack=x}\n")


# --- what ls-remote says --------------------------------------------------------------------

SHA1, SHA2, SHA3, TAGOBJ = "1" * 40, "2" * 40, "3" * 40, "4" * 40
LISTING = (
    f"ref: refs/heads/main\tHEAD\n{SHA1}\tHEAD\n{SHA1}\trefs/heads/main\n"
    f"{SHA2}\trefs/heads/feature/x\n{SHA3}\trefs/heads/deadbeef\n"
    f"{TAGOBJ}\trefs/tags/v1\n{SHA2}\trefs/tags/v1^{{}}\n{SHA3}\trefs/tags/light\n"
)


@pytest.mark.parametrize(
    ("ref", "target"),
    [
        (None, gitdir.Target("branch", "main", SHA1)),
        ("main", gitdir.Target("branch", "main", SHA1)),
        ("refs/heads/feature/x", gitdir.Target("branch", "feature/x", SHA2)),
        ("feature/x", gitdir.Target("branch", "feature/x", SHA2)),
        ("v1", gitdir.Target("tag", "v1", SHA2)),  # annotated: the commit, not the tag object
        ("light", gitdir.Target("tag", "light", SHA3)),
        ("deadbeef", gitdir.Target("branch", "deadbeef", SHA3)),  # a listed name wins over hex
        ("abc1234", gitdir.Target("commit", "abc1234", "")),
        (
            "ABCDEF0" + "1" * 33,
            gitdir.Target("commit", ("abcdef0" + "1" * 33), "abcdef0" + "1" * 33),
        ),
    ],
)
def test_refs_resolve(ref: str | None, target: gitdir.Target) -> None:
    assert gitdir.resolve(LISTING, ref, "u") == target


@pytest.mark.parametrize("ref", ["nope", "abc12", "g" * 40, "a" * 41])
def test_unknown_refs_are_not_found(ref: str) -> None:
    with pytest.raises(StyxError) as info:
        gitdir.resolve(LISTING, ref, "u")
    assert info.value.code == "git-ref-not-found" and info.value.exit_code == 3
    assert "main" in info.value.message  # the branches there are named


def test_default_branch_without_a_symref_and_an_empty_repo() -> None:
    assert gitdir.resolve(f"{SHA1}\tHEAD\n", None, "u") == gitdir.Target("head", "", SHA1)
    with pytest.raises(StyxError) as info:
        gitdir.resolve("", None, "u")
    assert info.value.code == "git-ref-not-found"


@pytest.mark.parametrize(
    ("stderr", "code"),
    [
        (
            "fatal: could not read Username for 'https://h': terminal prompts disabled",
            "git-auth-failed",
        ),
        (
            "remote: Invalid username or password.\nfatal: Authentication failed for 'https://h/r'",
            "git-auth-failed",
        ),
        (
            "fatal: unable to access 'https://h/r/': The requested URL returned error: 403",
            "git-auth-failed",
        ),
        (
            "git@h: Permission denied (publickey).\nfatal: Could not read from remote repository.",
            "git-auth-failed",
        ),
        (
            "fatal: unable to access 'https://h/r/': Could not resolve host: h",
            "git-repo-unreachable",
        ),
        ("fatal: remote error: no such repository: /nope.git", "git-repo-unreachable"),
        ("fatal: '/x' does not appear to be a git repository", "git-repo-unreachable"),
        (
            "fatal: unable to connect to h:\nh[0: 198.18.0.1]: errno=Connection refused",
            "git-repo-unreachable",
        ),
        ("", "git-repo-unreachable"),
    ],
)
def test_ls_remote_failures_map_to_codes(stderr: str, code: str) -> None:
    err = gitdir.failure(stderr, "https://h/r")
    assert err.code == code
    assert err.exit_code == (2 if code == "git-auth-failed" else 7)
    assert err.hint


# --- credentials ----------------------------------------------------------------------------


def test_token_lookup_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_TOKEN", "from-env")
    t = Task.from_yaml_str("workdir: {url: 'https://h/r'}\n")
    assert gitdir.auth_for(t).token == "from-env"
    t = Task.from_yaml_str("envs: {GIT_TOKEN: from-envs}\nworkdir: {url: 'https://h/r'}\n")
    assert gitdir.auth_for(t).token == "from-envs"
    t = Task.from_yaml_str(
        "envs: {GIT_TOKEN: from-envs}\nsecrets: {GIT_TOKEN: from-secrets}\n"
        "workdir: {url: 'https://h/r'}\n"
    )
    auth = gitdir.auth_for(t)
    assert auth.token == "from-secrets" and "from-secrets" not in repr(auth)


def test_token_goes_in_the_environment_never_in_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake_run(argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
        seen["argv"], seen["env"] = list(argv), kw["env"]
        return subprocess.CompletedProcess(argv, 0, f"{SHA1}\trefs/heads/main\n", "")

    monkeypatch.setattr(gitdir.subprocess, "run", fake_run)
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")  # the user's own entry stays first
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.askPass")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "")
    gitdir.ls_remote("https://h/r.git", "main", gitdir.GitAuth(TOKEN))
    argv, env = seen["argv"], seen["env"]
    assert isinstance(env, Mapping) and isinstance(argv, list)
    assert not any(TOKEN in a or B64 in a for a in argv)
    assert env["GIT_CONFIG_COUNT"] == "2" and env["GIT_CONFIG_KEY_1"] == "http.extraHeader"
    assert env["GIT_CONFIG_VALUE_1"] == f"Authorization: Basic {B64}"
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    # no token for git:// or ssh URLs
    assert "GIT_CONFIG_VALUE_0" not in gitdir.git_env("git://h/r", gitdir.GitAuth(TOKEN), {})


class FakeRunner:
    """Records what a node would be given; answers with ``result``."""

    def __init__(self, name: str, result: RunResult) -> None:
        self.node_name, self.result = name, result
        self.calls: list[tuple[list[str], Mapping[str, str] | None, str | None]] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input_text: str | None = None,
        timeout: float | None = None,
    ) -> RunResult:
        assert timeout is not None  # every node has a deadline
        self.calls.append((list(argv), env, input_text))
        return self.result

    def rsync_up(self, *a: object, **kw: object) -> None:
        raise AssertionError("no rsync for a git workdir")


def test_nodes_get_the_token_on_stdin_only() -> None:
    runners = [FakeRunner(f"n{i}", RunResult(0, f"{SHA1}\n", "")) for i in range(3)]
    work = GitWorkdir("https://h/r.git", "main")
    target = gitdir.Target("branch", "main", SHA1)
    commits = gitdir.sync(
        runners, "~/sky_workdir", work, target, gitdir.GitAuth(TOKEN), key_dest=""
    )  # type: ignore[arg-type]
    assert commits == [SHA1] * 3
    for r in runners:
        ((argv, env, stdin),) = r.calls
        assert argv[:2] == ["sh", "-c"] and "~/sky_workdir" in argv
        assert not any(TOKEN in a or B64 in a for a in argv) and not env
        assert stdin is not None and stdin.splitlines()[0] == f"Authorization: Basic {B64}"


@pytest.mark.parametrize(
    ("rc", "code"), [(10, "git-missing"), (11, "git-workdir-occupied"), (13, "git-clone-failed")]
)
def test_node_failures_name_the_node_and_hide_the_token(rc: int, code: str) -> None:
    ok = FakeRunner("h1", RunResult(0, SHA1, ""))
    bad = FakeRunner("h2", RunResult(rc, "", f"fatal: header Authorization: Basic {B64} {TOKEN}"))
    with pytest.raises(StyxError) as info:
        gitdir.sync(  # type: ignore[arg-type]
            [ok, bad], "/w", GitWorkdir("https://h/r"), gitdir.Target("head", "", SHA1),
            gitdir.GitAuth(TOKEN), key_dest="",
        )  # fmt: skip
    assert info.value.code == code and "h2" in info.value.message
    assert TOKEN not in str(info.value.to_dict()) and B64 not in str(info.value.to_dict())


# --- the node script, for real ------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A bare repository at tmp/srv/r.git: main (c1, c2), branch side (c3), tag v1 at c1."""
    yield make_repos(tmp_path, ("r",))


def _sync(url: str, ref: str | None, wd: Path, auth: gitdir.GitAuth | None = None) -> str:
    auth = auth or gitdir.GitAuth()
    target = gitdir.ls_remote(url, ref, auth)
    (commit,) = gitdir.sync(
        [LocalRunner()], str(wd), GitWorkdir(url, ref), target, auth, key_dest=""
    )
    return commit


def test_clone_then_update_across_refs(repo: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    srv, shas = repo
    url, wd = f"file://{srv}/r.git", tmp_path / "nodes" / "wd"
    assert _sync(url, None, wd) == shas["c2"] and (wd / "f.txt").read_text() == "two\n"
    assert git("symbolic-ref", "--short", "HEAD", cwd=wd) == "main"
    (wd / "f.txt").write_text("local edit\n")
    (wd / "junk.txt").write_text("untracked\n")
    assert _sync(url, "side", wd) == shas["c3"] and (wd / "f.txt").read_text() == "side\n"
    assert not (wd / "junk.txt").exists() and (wd / gitdir.MARK).exists()
    assert _sync(url, "v1", wd) == shas["c1"]
    assert _sync(url, shas["c2"][:9], wd) == shas["c2"]
    assert git("status", "--porcelain", cwd=wd) == ""  # the mark is excluded, not untracked
    assert sorted(p.name for p in wd.parent.iterdir()) == ["wd"]  # no clone left beside it


def test_a_folder_with_others_files_is_refused(
    repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    srv, _ = repo
    wd = tmp_path / "theirs"
    wd.mkdir()
    (wd / "precious.txt").write_text("mine\n")
    with pytest.raises(StyxError) as info:
        _sync(f"file://{srv}/r.git", None, wd)
    assert info.value.code == "git-workdir-occupied"
    assert [p.name for p in wd.iterdir()] == ["precious.txt"]


def test_a_failed_clone_leaves_no_folder(tmp_path: Path) -> None:
    wd = tmp_path / "wd"
    with pytest.raises(StyxError) as info:
        gitdir.sync(
            [LocalRunner("n1")], str(wd), GitWorkdir(f"file://{tmp_path}/missing.git"),
            gitdir.Target("head", ""), gitdir.GitAuth(), key_dest="",
        )  # fmt: skip
    assert info.value.code == "git-clone-failed" and "n1" in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_ssh_key_is_copied_with_mode_0600(tmp_path: Path) -> None:
    key = tmp_path / "id_test"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n")
    dest, wd = tmp_path / "private" / "git-ssh-key", tmp_path / "wd"
    auth = gitdir.GitAuth(TOKEN, str(key))
    url = "ssh://git@127.0.0.1:1/r.git"  # loopback, nothing listens: the fetch fails fast
    env = gitdir.git_env(url, auth, {})
    assert "IdentitiesOnly=yes" in env["GIT_SSH_COMMAND"] and "GIT_CONFIG_COUNT" not in env
    with pytest.raises(StyxError) as info:
        gitdir.sync([LocalRunner()], str(wd), GitWorkdir(url), gitdir.Target("head", ""), auth,
                    key_dest=str(dest), timeout=60)  # fmt: skip
    assert info.value.code == "git-clone-failed"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600 and dest.read_text() == key.read_text()
    assert not wd.exists()


def test_private_repo_over_http_with_a_token(
    repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    srv, shas = repo
    with GitHTTPServer(srv, "127.0.0.1", TOKEN) as http:
        url = http.url("r.git")
        for auth in (gitdir.GitAuth(), gitdir.GitAuth("wrong")):
            with pytest.raises(StyxError) as info:
                gitdir.ls_remote(url, None, auth)
            assert info.value.code == "git-auth-failed"
        wd = tmp_path / "wd"
        assert _sync(url, "v1", wd, gitdir.GitAuth(TOKEN)) == shas["c1"]
    kept = b"".join(p.read_bytes() for p in (wd / ".git").rglob("*") if p.is_file())
    assert TOKEN.encode() not in kept and B64.encode() not in kept
