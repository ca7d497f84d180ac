"""The installed package puts only ``titanium`` into site-packages, with its data files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_everything_under_titanium_only(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("titanium-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"titanium"}
    assert "titanium/deploy/supervisord.conf" in names
    assert "titanium/services/mjpeg/static/index.html" in names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    probe = (
        "import titanium.common.ring, titanium.services.capture.loop, "
        "titanium.services.mjpeg.app, titanium.cli, importlib.resources as r;"
        "print(titanium.common.ring.__file__);"
        "print(r.files('titanium.deploy').joinpath('supervisord.conf').is_file())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    path, found = out.stdout.split()
    assert path.startswith(str(target)) and found == "True"


def test_editable_install_imports_from_the_repository() -> None:
    import titanium.common.ring

    assert Path(titanium.common.ring.__file__).resolve() == ROOT / "common" / "ring.py"
