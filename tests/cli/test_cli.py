"""The CLI's face: help, errors without tracebacks, exit codes, validate, and launch --dryrun.

Every command runs as a real subprocess, as a user would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def styx(
    *args: str, home: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STYX_HOME": str(home), **(extra_env or {})}
    env.pop("STYX_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "styx.cli.main", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr + r.stdout


def test_help_lists_commands(tmp_path: Path) -> None:
    r = styx("--help", home=tmp_path)
    assert r.returncode == 0
    for cmd in (
        "launch",
        "exec",
        "status",
        "queue",
        "logs",
        "cancel",
        "stop",
        "start",
        "down",
        "autostop",
        "validate",
    ):
        assert cmd in r.stdout


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    code = (
        "import sys; from styx.cli.main import main; main(['--help']); "
        "heavy = [m for m in ('sqlalchemy', 'rich', 'ray', 'yaml', 'styx.spec') if m in sys.modules]; "
        "sys.exit(1 if heavy else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_unknown_command_suggests(tmp_path: Path) -> None:
    r = styx("lanch", "x.yaml", home=tmp_path)
    assert r.returncode == 2
    assert "unknown-command" in r.stderr and "launch" in r.stderr
    no_traceback(r)


def test_validate_all_examples(tmp_path: Path) -> None:
    assert len(EXAMPLES) >= 15
    r = styx("validate", *map(str, EXAMPLES), home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("ok") == len(EXAMPLES)


def test_validate_reports_code_line_and_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nresources:\n  cpus: 2\n  acelerators: A100:8\nrun: echo\n")
    r = styx("validate", str(bad), home=tmp_path)
    assert r.returncode == 2
    assert "unknown-key" in r.stderr and ":4" in r.stderr and "resources.acelerators" in r.stderr
    assert "accelerators" in r.stderr  # did you mean
    no_traceback(r)


def test_yaml_syntax_error_points_at_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrun: [unclosed\n")
    r = styx("launch", str(bad), "--dryrun", home=tmp_path)
    assert r.returncode == 2 and "yaml-syntax" in r.stderr
    no_traceback(r)


def test_debug_adds_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_nodes: zero\n")
    plain = styx("launch", str(bad), "--dryrun", home=tmp_path)
    debug = styx("--debug", "launch", str(bad), "--dryrun", home=tmp_path)
    assert plain.returncode == debug.returncode == 2
    no_traceback(plain)
    assert "Traceback" in debug.stderr


def test_missing_file(tmp_path: Path) -> None:
    r = styx("launch", str(tmp_path / "nope.yaml"), "--dryrun", home=tmp_path)
    assert r.returncode == 2
    no_traceback(r)


def test_dryrun_prints_plan_and_redacts_secrets(tmp_path: Path) -> None:
    r = styx(
        "launch",
        "examples/envs_secrets.yaml",
        "--dryrun",
        "--env",
        "RUN_ID=7",
        "--secret",
        "HF_TOKEN=hf_supersecret",
        "--cpus",
        "2+",
        home=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "hf_supersecret" not in r.stdout + r.stderr
    assert "my-wandb-key" not in r.stdout + r.stderr
    assert "RUN_ID: '7'" in r.stdout
    assert "HF_TOKEN: <redacted>" in r.stdout
    assert "2+" in r.stdout
    assert not (tmp_path / "state.db").exists()  # a dry run changes nothing


SHARED_CATALOG = REPO.parent / "shared" / "catalog"


@pytest.mark.skipif(not SHARED_CATALOG.is_dir(), reason="no ../shared/catalog beside the repo")
def test_dryrun_never_chooses_infra_styx_cannot_launch_on(tmp_path: Path) -> None:
    # GCP counts as enabled when its credentials file exists; the catalog is the shared one.
    # GCP is launchable and enabled: the plan chooses its cheapest H100:8 (spot, as asked).
    creds = tmp_path / "gcp.json"
    creds.write_text("{}")
    env = {"STYX_CATALOG_DIR": str(SHARED_CATALOG), "GOOGLE_APPLICATION_CREDENTIALS": str(creds)}
    r = styx("launch", "examples/any_of.yaml", "--dryrun", home=tmp_path, extra_env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "gcp/us-central1" in out and "a3-highgpu-8g" in out and "✔" in out, out
    no_traceback(r)
    # A TPU task is refused as a launch would be: GCP does not support TPU VMs yet.
    r = styx("launch", "examples/tpu.yaml", "--dryrun", home=tmp_path, extra_env=env)
    assert r.returncode == 6, r.stderr
    assert "does not support TPU VMs yet" in r.stderr
    no_traceback(r)


def test_dryrun_of_an_infeasible_request_says_why(tmp_path: Path) -> None:
    r = styx("launch", "examples/any_of.yaml", "--dryrun", home=tmp_path)
    assert r.returncode == 6, r.stderr
    assert "resources-unavailable" in r.stderr and "not enabled" in r.stderr


def test_unsupported_fields_are_refused_not_ignored(tmp_path: Path) -> None:
    task = tmp_path / "volumes.yaml"
    task.write_text("volumes: {/data: my-volume}\nrun: ls /data\n")
    r = styx("launch", str(task), "-c", "vol", home=tmp_path)
    assert r.returncode == 4 and "not-supported" in r.stderr and "volumes" in r.stderr
    no_traceback(r)


def test_a_service_file_is_planned_as_a_plain_task(tmp_path: Path) -> None:
    r = styx("launch", "examples/service.yaml", "--dryrun", home=tmp_path)
    assert r.returncode == 6 and "resources-unavailable" in r.stderr  # GPUs, no cloud here
    assert "not-supported" not in r.stderr
    r = styx("serve", "up", "examples/service.yaml", "-n", "llm", "-y", home=tmp_path)
    assert r.returncode == 6 and "service-infeasible" in r.stderr
    no_traceback(r)


def test_missing_env_value_is_reported(tmp_path: Path) -> None:
    r = styx("launch", "examples/envs_secrets.yaml", "-c", "x", home=tmp_path)
    assert r.returncode == 2 and "RUN_ID" in r.stderr
    no_traceback(r)


@pytest.mark.parametrize(
    "args, code",
    [
        (("logs", "nope"), 3),
        (("queue", "nope"), 3),
        (("cancel", "nope", "1"), 3),
        (("stop", "nope"), 3),
        (("launch", "examples/hello.yaml", "-c", "1bad name"), 2),
        (("launch", "examples/hello.yaml", "--num-nodes", "two", "--dryrun"), 2),
        (("launch", "examples/hello.yaml", "--gpus", "A100:x", "--dryrun"), 2),
        (("launch", "examples/hello.yaml", "--env-file", "/nonexistent.env", "--dryrun"), 2),
        (("cancel", "c"), 2),
    ],
)
def test_bad_input_gets_code_and_hint(tmp_path: Path, args: tuple[str, ...], code: int) -> None:
    r = styx(*args, home=tmp_path)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert "rror" in r.stderr and ("Hint" in r.stderr or "hint" in r.stderr)
    no_traceback(r)


def test_invalid_config_is_reported(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("db: 5\nalowed_clouds: [aws]\n")
    r = styx("status", home=tmp_path)
    assert r.returncode == 2 and "invalid-config" in r.stderr and "config.yaml:1" in r.stderr
    no_traceback(r)


def test_status_empty(tmp_path: Path) -> None:
    r = styx("status", home=tmp_path)
    assert r.returncode == 0 and "No clusters" in r.stdout


@pytest.mark.parametrize(
    "example, code, words",
    [
        ("examples/file_mounts.yaml", 2, "does not exist"),
        ("examples/service.yaml", 6, "resources-unavailable"),
        ("examples/envs_secrets.yaml", 2, "RUN_ID"),
    ],
)
def test_a_dry_run_refuses_what_a_launch_refuses(
    tmp_path: Path, example: str, code: int, words: str
) -> None:
    """Exit 0 from --dryrun means the launch would start: every check a launch runs before
    provisioning runs first, with the launch's code, and no plan header precedes the error."""
    dry = styx("launch", example, "--dryrun", home=tmp_path)
    real = styx("launch", example, "-c", "dry", "-y", home=tmp_path)
    assert dry.returncode == real.returncode == code, dry.stderr
    assert words in dry.stderr and words in real.stderr
    assert "Plan" not in dry.stdout
    no_traceback(dry)


@pytest.mark.parametrize(
    "url, code, exit_code",
    [("ftp://198.18.0.1/repo.git", "invalid-git-url", 2), ("file:///nonexistent/r.git", "git-repo-unreachable", 7)],
)  # fmt: skip
def test_a_bad_git_workdir_is_refused_by_dry_run_and_launch(
    tmp_path: Path, url: str, code: str, exit_code: int
) -> None:
    """The git workdir is checked (git ls-remote) before anything is provisioned; offline
    URLs only (examples/git_workdir.yaml names a public host, never contacted by tests)."""
    task = tmp_path / "git.yaml"
    task.write_text(f"workdir:\n  url: {url}\n  ref: v1\nrun: make test\n")
    dry = styx("launch", str(task), "--dryrun", home=tmp_path)
    real = styx("launch", str(task), "-c", "dry", "-y", home=tmp_path)
    assert dry.returncode == real.returncode == exit_code, dry.stderr
    assert f"[{code}]" in dry.stderr and f"[{code}]" in real.stderr
    assert "Plan" not in dry.stdout
    no_traceback(dry)
    assert "No clusters" in styx("status", home=tmp_path).stdout


def test_a_dry_run_with_the_missing_values_given_plans(tmp_path: Path) -> None:
    r = styx(
        "launch", "examples/envs_secrets.yaml", "--dryrun", "--env", "RUN_ID=1",
        "--secret", "HF_TOKEN=x", home=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Plan (dry run) for cluster styx-")


def test_a_bare_launch_of_the_same_task_names_the_same_cluster(tmp_path: Path) -> None:
    """Rerunning the quickstart reuses its cluster: the default name comes from the task."""
    names = set()
    for _ in range(2):
        r = styx("launch", "examples/hello.yaml", "--dryrun", home=tmp_path)
        assert r.returncode == 0, r.stderr
        names.add(r.stdout.splitlines()[0].rsplit(" ", 1)[1])
    renamed = tmp_path / "t.yaml"
    renamed.write_text((REPO / "examples" / "hello.yaml").read_text().replace("hello", "other"))
    other = styx("launch", str(renamed), "--dryrun", home=tmp_path)
    assert other.returncode == 0, other.stderr
    assert len(names) == 1 and other.stdout.splitlines()[0].rsplit(" ", 1)[1] not in names


def test_idle_minutes_rule_out_infra_that_cannot_stop_itself(tmp_path: Path) -> None:
    """`-i` is part of the plan: an SSH pool has no autostop, so the launch is refused before
    any host is touched (it used to provision first, then refuse)."""
    (tmp_path / "ssh_node_pools.yaml").write_text("lab:\n  hosts: [198.18.9.1]\n")
    task = tmp_path / "t.yaml"
    task.write_text("resources: {infra: ssh/lab}\nrun: echo hi\n")
    assert styx("launch", str(task), "--dryrun", home=tmp_path).returncode == 0
    r = styx("launch", str(task), "--dryrun", "-i", "5", home=tmp_path)
    assert r.returncode == 6, r.stderr
    assert "ssh/lab: it has no autostop (-i/--idle-minutes or resources.autostop)" in r.stderr
    no_traceback(r)


def test_task_config_that_the_chosen_infra_does_not_apply_is_named(tmp_path: Path) -> None:
    task = tmp_path / "t.yaml"
    task.write_text("config:\n  docker: {run_options: [--ipc=host]}\nrun: echo hi\n")
    (tmp_path / "config.yaml").write_text("future_feature: {enabled: true}\n")
    r = styx("launch", str(task), "--dryrun", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (
        "Task config 'docker.run_options' has no effect on this machine; it is ignored." in r.stdout
    )
    assert "Config key 'future_feature'" in r.stdout


def test_status_of_an_unknown_cluster_says_it_does_not_exist(tmp_path: Path) -> None:
    r = styx("status", "nope", home=tmp_path)
    assert r.returncode == 3 and "cluster-not-found" in r.stderr
    assert "Cluster 'nope' does not exist." in r.stderr and "No clusters" not in r.stdout
    r = styx("status", "nope", "gone", "--json", home=tmp_path)
    assert r.returncode == 3 and "Clusters 'nope', 'gone' do not exist." in r.stderr
    no_traceback(r)


@pytest.mark.parametrize("name", ["a\nb", "ünï", "a-"])
def test_cluster_names_follow_one_rule(tmp_path: Path, name: str) -> None:
    r = styx("launch", "examples/hello.yaml", "-c", name, "--dryrun", home=tmp_path)
    assert r.returncode == 2 and "invalid-cluster-name" in r.stderr, r.stderr
    no_traceback(r)


def test_check_lists_the_bucket_stores_each_with_its_reason(tmp_path: Path) -> None:
    """Local checks only (SDK present, credentials found): no store is contacted."""
    user = tmp_path / "user"
    user.mkdir()
    clean = {k: "" for k in os.environ if k.startswith(("AWS_", "AZURE_", "GOOGLE_", "STORAGE_"))}
    none = styx("check", home=tmp_path, extra_env={**clean, "HOME": str(user)})
    assert none.returncode == 0, none.stderr
    assert "Bucket mounts may use: no store." in none.stdout
    for store in ("s3", "gcs", "azure", "r2"):
        assert f"\n{store} " in none.stdout
    some = styx(
        "check", home=tmp_path,
        extra_env={**clean, "HOME": str(user), "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                   "AWS_SECRET_ACCESS_KEY": "not-a-secret", "STORAGE_EMULATOR_HOST": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert "Bucket mounts may use: s3, gcs." in some.stdout, some.stdout
    assert "not-a-secret" not in some.stdout + some.stderr
    no_traceback(some)
