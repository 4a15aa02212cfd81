"""``styx show-gpus`` and ``styx check`` as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from styx.cli.main import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_show_gpus_summary(catalog_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["show-gpus"], capsys)
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("A100 "))
    assert "1, 2, 4, 8, 16" in line and "gcp" in line and "azure" in line and "lambda" in line
    assert "TPU" in out and "tpu-v5p-8" in out
    code, out, _ = run(["show-gpus", "--infra", "lambda"], capsys)
    assert "gcp" not in out and "tpu" not in out


def test_show_gpus_for_one_accelerator(
    catalog_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["show-gpus", "a100:8"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["GPU", "QTY", "INFRA", "INSTANCE_TYPE"]
    assert [line.split()[2] for line in lines[1:]] == ["lambda", "gcp", "azure"]  # cheapest first
    assert "a2-highgpu-8g" in out and "$ 19.422" in out and "$ 12.494" in out
    code, out, _ = run(["show-gpus", "H100", "--infra", "gcp", "--all-regions"], capsys)
    regions = {line.split()[-1] for line in out.splitlines()[1:]}
    assert code == 0 and len(regions) > 5
    code, out, _ = run(["show-gpus", "T4", "--infra", "gcp/us-central1"], capsys)
    assert all(line.endswith("us-central1") for line in out.splitlines()[1:])


def test_show_gpus_all_and_errors(catalog_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["show-gpus", "--all", "--infra", "azure"], capsys)
    assert code == 0 and {"A100", "MI300X", "T4"} <= {
        line.split()[0] for line in out.splitlines()[1:]
    }
    code, _, err = run(["show-gpus", "A10O"], capsys)
    assert code == 2 and "unknown-accelerator" in err and "A100" in err
    code, _, err = run(["show-gpus", "--infra", "nowhere"], capsys)
    assert code == 2 and "has no catalog" in err


def test_check_lists_reasons_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("STYX_HOME", str(tmp_path / "styx"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "GOOGLE_APPLICATION_CREDENTIALS", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    (tmp_path / ".lambda_cloud").mkdir()
    (tmp_path / ".lambda_cloud" / "lambda_keys").write_text("api_key = k\n")
    code, out, _ = run(["check"], capsys)
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if line.strip()}
    assert code == 0 and rows["local"] == "yes" and rows["lambda"] == "yes" and rows["gcp"] == "no"
    assert "Launches may use: local." in out
    assert "Enabled, but Styx cannot launch there yet: lambda" in out
    assert (tmp_path / "styx" / "enabled_infra.json").is_file()
    code, _, err = run(["check", "nimbus"], capsys)
    assert code == 2 and "Unknown infra" in err
