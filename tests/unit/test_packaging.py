"""`pip install .` gives a working library: build the wheel, install it into a fresh venv, run the `ssmrec` script.

Offline by design: the fresh venv sees this environment's installed packages through a .pth file, so pip resolves
the wheel's declared dependencies (pyproject.toml) against the pinned set without an index (--no-index), and a
lower bound that the pins do not satisfy fails the install.
"""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_ssmrec(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ssmrec_lib", src / "ssmrec_lib", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    run = lambda *cmd, **kw: subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)  # noqa: E731
    r = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(src), "-w",
            str(tmp_path / "dist"))
    assert r.returncode == 0, r.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("ssmrec-*.whl")
    venv = tmp_path / "venv"
    assert run(sys.executable, "-m", "venv", str(venv)).returncode == 0
    py = venv / "bin" / "python"
    site = run(str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    (Path(site) / "deps_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(str(py), "-m", "pip", "uninstall", "-y", "-q", "setuptools")  # venv's own old copy would shadow the pinned one
    r = run(str(py), "-m", "pip", "install", "--no-index", "--quiet", str(wheel))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = run(str(venv / "bin" / "ssmrec"), "--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("usage: ssmrec") and "workbook" in r.stdout and "train" in r.stdout
    r = run(str(py), "-c", "import ssmrec_lib, pathlib; print(pathlib.Path(ssmrec_lib.__file__).resolve())",
            cwd=tmp_path)
    assert Path(r.stdout.strip()).is_relative_to(venv.resolve()), r.stdout  # the installed copy, not the checkout
    r = run(str(venv / "bin" / "ssmrec"), "data", "list", cwd=tmp_path)
    assert r.returncode == 0 and "csv" in r.stdout, r.stderr[-2000:]
