"""scripts/install.sh, the README's first command: it says what it is doing while pip works,
and afterwards `styx` runs in a new shell, or the script says in one line how to make it so.

pip itself is replaced by a stand-in (a `.venv/bin/python` that prints what pip prints), so the
script's own logic is what is tested; the real install is what every CI run does first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/bin/sh
# Stands in for .venv/bin/python: `-m pip install ...` prints as pip does, then fails if asked.
case "$*" in
  *"pip install -q --upgrade pip"*) exit 0 ;;
  *"pip install"*)
    echo "Obtaining file://$PWD"
    echo "Collecting ray[client]<3,>=2.9"
    echo "  Using cached ray-2.60.0.whl (70 MB)"
    echo "Collecting psutil>=5.9"
    echo "Requirement already satisfied: click>=8.1"
    if [ -n "${FAIL_PIP:-}" ]; then echo "ERROR: No matching distribution" >&2; exit 1; fi
    echo "Successfully installed psutil-7 ray-2.60.0 styx-0.1.0"
    exit 0 ;;
esac
exit 0
"""


def checkout(tmp_path: Path) -> Path:
    """A checkout with the real install.sh and a .venv whose python is the stand-in."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "install.sh", root / "scripts" / "install.sh")
    (root / "pyproject.toml").write_text("[project]\nname = 'styx'\n")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    styx = bin_dir / "styx"
    styx.write_text("#!/bin/sh\necho styx-from-venv\n")
    styx.chmod(0o755)
    return root


def run(root: Path, home: Path, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(root / "scripts" / "install.sh")],
        env={"HOME": str(home), "PATH": path, "STYX_PYTHON": "/bin/true", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


BASE_PATH = "/usr/bin:/bin"


def test_the_first_install_says_what_it_does_while_pip_works(tmp_path: Path) -> None:
    root, home = checkout(tmp_path), tmp_path / "home"
    home.mkdir()
    r = run(root, home, BASE_PATH)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Installing Styx (runtime) into .venv: about a minute")
    assert "Collecting ray[client]<3,>=2.9" in lines and "Collecting psutil>=5.9" in lines
    assert not any("Requirement already satisfied" in line for line in lines)
    assert any(line.startswith("Successfully installed") for line in lines)
    # The second run installs nothing and says nothing about pip.
    again = run(root, home, BASE_PATH)
    assert again.returncode == 0 and "Installing" not in again.stdout


def test_a_failed_pip_fails_the_script_and_says_so(tmp_path: Path) -> None:
    root, home = checkout(tmp_path), tmp_path / "home"
    home.mkdir()
    r = run(root, home, BASE_PATH, FAIL_PIP="1")
    assert r.returncode == 1
    assert "No matching distribution" in r.stderr and "Installing Styx failed" in r.stderr
    assert not list((root / ".venv").glob(".styx-installed-*"))  # retried next time


def test_styx_is_linked_where_new_shells_find_it(tmp_path: Path) -> None:
    root, home = checkout(tmp_path), tmp_path / "home"
    home.mkdir()
    path = f"{home}/.local/bin:{BASE_PATH}"
    r = run(root, home, path)
    assert r.returncode == 0, r.stderr
    link = home / ".local" / "bin" / "styx"
    assert os.readlink(link) == str(root / ".venv" / "bin" / "styx")
    shell = subprocess.run(
        ["bash", "-c", "styx"],
        env={"HOME": str(home), "PATH": path},
        capture_output=True,
        text=True,
    )
    assert shell.stdout.strip() == "styx-from-venv"
    assert "export PATH" not in r.stdout


def test_without_local_bin_on_path_it_says_in_one_line_how(tmp_path: Path) -> None:
    root, home = checkout(tmp_path), tmp_path / "home"
    home.mkdir()
    r = run(root, home, BASE_PATH)
    hint = [line for line in r.stdout.splitlines() if "export PATH" in line]
    assert hint == [
        f"To run `styx` in new shells: echo 'export PATH=\"{root}/.venv/bin:$PATH\"' >> ~/.bashrc"
    ]
    assert not (home / ".local" / "bin" / "styx").exists()


def test_another_checkouts_link_is_not_taken_over(tmp_path: Path) -> None:
    root, home = checkout(tmp_path), tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    other = tmp_path / "other-styx"
    other.write_text("#!/bin/sh\n")
    (home / ".local" / "bin" / "styx").symlink_to(other)
    r = run(root, home, f"{home}/.local/bin:{BASE_PATH}")
    assert r.returncode == 0
    assert os.readlink(home / ".local" / "bin" / "styx") == str(other)
    assert "is another Styx" in r.stdout
