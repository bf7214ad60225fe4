"""The wheel works anywhere: built, installed (not editable) into a fresh virtual environment and run
by config name from an empty folder, far from the repository's ``src/``.

Two ways to give that environment its dependencies: ``linked`` (default suite, seconds) makes this
environment's third-party packages visible to it through a ``.pth`` line, as ``--system-site-packages``
would; ``installed`` (slow, run by ``.ci/run``) installs them with pip from ``constraints.txt``, which
also checks the wheel's dependency metadata.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from metadl.config import list_configs

REPO = Path(__file__).resolve().parents[2]


def run(*args: str | Path, cwd: Path | None = None) -> str:
    """Run a command with no trace of the repository in its environment; its output, or the failure."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env={**env, "PYTHONNOUSERSITE": "1"}, capture_output=True, text=True
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))} -> exit {proc.returncode}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (no ``build/`` or ``*.egg-info`` left in the checkout)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    pip = (sys.executable, "-m", "pip")
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist, source)
    (built,) = dist.glob("metadl-*.whl")
    return built


def test_the_wheel_ships_every_config_and_py_typed(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"metadl/configs/{name}.yaml" for name in list_configs()} <= names
    assert "metadl/py.typed" in names and "metadl/allocator.py" in names
    assert not [n for n in names if n.startswith(("tests/", "configs/", "benchmarks/"))]


def install(wheel: Path, root: Path, deps: str) -> Path:
    """A new virtual environment at ``root`` with the wheel installed (see the module docstring); its ``bin``."""
    if deps == "linked":
        run(sys.executable, "-m", "venv", "--without-pip", root)
        (site,) = root.glob("lib/python*/site-packages")
        (site / "_dev_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        run(
            sys.executable,
            "-m",
            "pip",
            "--python",
            root / "bin/python",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            wheel,
        )
    else:
        run(sys.executable, "-m", "venv", root)
        run(root / "bin/python", "-m", "pip", "install", "-q", "-c", REPO / "constraints.txt", wheel)
    return root / "bin"


@pytest.mark.parametrize("deps", ["linked", pytest.param("installed", marks=pytest.mark.slow)])
def test_installed_wheel_trains_a_shipped_config_by_name_from_an_empty_folder(wheel, tmp_path, deps):
    bin_dir = install(wheel, tmp_path / "venv", deps)
    python = bin_dir / "python"
    empty = tmp_path / "elsewhere"
    empty.mkdir()

    location = run(python, "-c", "import metadl; print(metadl.__file__)", cwd=empty).strip()
    assert Path(location).is_relative_to(tmp_path / "venv"), f"metadl imported from {location}, not the wheel"
    metadl = bin_dir / "metadl"
    listing = run(metadl, "list", "configs", cwd=empty)
    assert all(f"  {name} " in listing for name in list_configs())

    short = ["--set=train.iterations=2", "--set=train.val_every=0", "--set=train.checkpoint_every=2"]
    run(metadl, "train", "demo", "--out", "run", "--no-progress", *short, cwd=empty)
    assert (empty / "run/model/weights.safetensors").is_file() and (empty / "run/model/metadl.json").is_file()
    if deps == "installed":  # `metadl demo` resolves its config as `train demo` does; 15 s more, so once
        demo = run(metadl, "demo", "--iterations", "2", "--episodes", "4", "--no-progress", cwd=empty)
        assert "over 4 episodes" in demo
