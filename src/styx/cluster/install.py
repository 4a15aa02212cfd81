"""Installing the runtime (Ray and Styx) into a venv on a node, e.g. ``~/.styx/runtime``.

Packages come from the package index, or from a local wheelhouse (``STYX_WHEELHOUSE``) for
nodes without internet. The venv sees the system's site-packages, so a node image that already
has Ray installs nothing more. Everything runs as argv through the node's runner.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from styx import __version__
from styx.agent.deps import PSUTIL_REQUIREMENT, RAY_REQUIREMENT
from styx.cluster.runner import Runner, put_file
from styx.errors import RemoteError


@dataclass(frozen=True, slots=True)
class RuntimeSource:
    """Where Styx itself is installed from: a source tree (developers, tests) or the index."""

    source_dir: str | None
    wheelhouse: str | None

    @classmethod
    def detect(cls) -> RuntimeSource:
        root = Path(__file__).resolve().parents[3]
        source = str(root) if (root / "pyproject.toml").is_file() else None
        return cls(source_dir=source, wheelhouse=os.environ.get("STYX_WHEELHOUSE") or None)

    def requirements(self) -> list[str]:
        """What pip installs: the released package, or (from a source tree, whose styx package
        is then put on the venv's path: no build step) only what the agent imports, which is
        Ray and psutil."""
        if not self.source_dir:
            return [f"styx[runtime]=={__version__}", RAY_REQUIREMENT]
        return [RAY_REQUIREMENT, PSUTIL_REQUIREMENT]


def runtime_python(venv: str) -> str:
    return str(Path(venv) / "bin" / "python")


def has_runtime(runner: Runner, python: str) -> bool:
    """Whether ``python`` can run the agent and has Ray's CLI beside it."""
    ray = str(Path(python).with_name("ray"))
    if runner.run([ray, "--version"], timeout=60).returncode != 0:
        return False
    return runner.run([python, "-m", "styx.agent", "--help"], timeout=60).returncode == 0


def install(runner: Runner, base_python: str, venv: str, source: RuntimeSource) -> str:
    """Create the venv (if missing) and install the runtime into it; returns its python.

    A wheelhouse is first copied to the node (next to the venv), so nodes without internet
    install from it.
    """
    python = runtime_python(venv)
    if runner.run([python, "--version"], timeout=30).returncode != 0:
        # Without pip: the base Python's pip, seen through the system site-packages, installs
        # into the venv as well, and copying pip into every venv costs seconds per node.
        argv = [base_python, "-m", "venv", "--system-site-packages", "--without-pip", venv]
        runner.run(argv, timeout=300).check(
            f"Creating the runtime venv {venv} on {runner.node_name}"
        )
    if runner.run([python, "-m", "pip", "--version"], timeout=60).returncode != 0:
        runner.run([python, "-m", "ensurepip"], timeout=300).check(
            f"Installing pip into the runtime venv {venv} on {runner.node_name}"
        )
    if source.source_dir:
        sync_source(runner, venv, source)  # styx importable now: it can check what is there
        if runner.run([python, "-m", "styx.agent", "deps-ok"], timeout=60).returncode == 0:
            _ensure_ray_script(runner, python)
            return python  # the image has Ray and psutil: pip would only confirm it
    # --no-compile: byte-compiling all of Ray costs seconds; modules compile as they are used.
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
    if source.wheelhouse:
        remote_wheels = f"{venv}-wheelhouse"
        if not os.path.isdir(source.wheelhouse):
            raise RemoteError(
                f"The wheelhouse {source.wheelhouse} does not exist.",
                "Point STYX_WHEELHOUSE at a folder of wheels (`pip download -d DIR ray ...`).",
            )
        runner.rsync_up(source.wheelhouse, remote_wheels)
        pip += ["--no-index", "--find-links", remote_wheels]
    result = runner.run([*pip, *source.requirements()], timeout=1200)
    if result.returncode != 0:
        where = f"the wheelhouse {source.wheelhouse}" if source.wheelhouse else "the package index"
        raise RemoteError(
            f"Installing the runtime on {runner.node_name} from {where} failed: "
            f"{(result.stderr or result.stdout).strip()[-300:]}",
            "Check the node's internet access, or set STYX_WHEELHOUSE to a folder of wheels.",
        )
    _ensure_ray_script(runner, python)
    return python


def _ensure_ray_script(runner: Runner, python: str) -> None:
    """Give the venv Ray's CLI when Ray came from the system site-packages (no script)."""
    ray = str(Path(python).with_name("ray"))
    if runner.run(["test", "-x", ray], timeout=30).returncode != 0:
        put_file(runner, RAY_SHIM.format(python=python), ray, mode=0o755)


#: The console script pip would have written for Ray's CLI.
RAY_SHIM = "#!{python}\nimport sys\nfrom ray.scripts.scripts import main\nsys.exit(main())\n"


def sync_source(runner: Runner, venv: str, source: RuntimeSource) -> None:
    """From a source tree: copy the styx package next to the venv and put it on its path.

    Incremental (rsync), so running it on every launch keeps nodes on the client's code.
    """
    if not source.source_dir:
        return
    dest = f"{venv}/styx-src"
    runner.rsync_up(
        str(Path(source.source_dir) / "src" / "styx"),
        f"{dest}/styx",
        filter_args=["--exclude", "__pycache__/"],
        delete=True,  # the runtime's own copy: a mirror of this client's
    )
    out = runner.run([runtime_python(venv), "-m", "sysconfig"], timeout=60)
    out.check("Reading the runtime's paths")
    purelib = next(
        (
            ln.split("=", 1)[1].strip().strip('"')
            for ln in out.stdout.splitlines()
            if ln.strip().startswith("purelib =")
        ),
        None,
    )
    if not purelib:
        raise RemoteError(f"The runtime python on {runner.node_name} reports no site-packages.")
    put_file(runner, dest + "\n", f"{purelib}/styx-src.pth")
