"""The installed package puts only ``titanium`` into site-packages, with its data files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIP = [sys.executable, "-m", "pip"]


def test_wheel_installs_everything_under_titanium_only(tmp_path: Path) -> None:
    # Build from a copy: setuptools writes build/ and *.egg-info into the tree it builds.
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__", ".*cache")
    shutil.copytree(ROOT, src, ignore=skip)
    wheel_cmd = [*PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    subprocess.run([*wheel_cmd, str(src)], check=True, timeout=300, capture_output=True, cwd=src)
    (wheel,) = tmp_path.glob("titanium-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"titanium"}
    assert "titanium/deploy/supervisord.conf" in names
    assert "titanium/services/mjpeg/static/index.html" in names
    assert "titanium/mirage/static/view.js" in names  # the proxy's /view page script
    target = tmp_path / "site"
    install_cmd = [*PIP, "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(install_cmd, check=True, timeout=300, capture_output=True)
    probe = (
        "import titanium.common.ring, titanium.services.capture.loop, "
        "titanium.services.mjpeg.app, titanium.cli, importlib.resources as r;"
        "print(titanium.common.ring.__file__);"
        "print(r.files('titanium.deploy').joinpath('supervisord.conf').is_file())"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    path, found = out.stdout.split()
    assert path.startswith(str(target)) and found == "True"


def test_editable_install_imports_from_the_repository() -> None:
    import titanium.common.ring

    assert Path(titanium.common.ring.__file__).resolve() == ROOT / "common" / "ring.py"
