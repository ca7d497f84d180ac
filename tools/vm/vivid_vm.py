#!/usr/bin/env python3
"""A QEMU VM with a real V4L2 camera: Debian bookworm's kernel and its ``vivid`` driver.

    python tools/vm/vivid_vm.py build                      build the image (cached)
    python tools/vm/vivid_vm.py run [--forward PORT] -- CMD...

``run`` builds the image when needed, boots it (TCG, one vCPU), shares the project read-only
over 9p, loads vivid as one webcam at /dev/video0, runs CMD in the project with the image's
venv first on PATH, streams the guest console here and exits with CMD's exit code. See
README.md beside this file and ../../shared/VIVID.md for why it is built this way.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
INIT = HERE / "init.sh"
CACHE = Path(os.environ.get("TITANIUM_VM_CACHE") or Path.home() / ".cache" / "titanium-vm")

# Three suites together, or apt picks the release kernel rather than the patched one.
DEBIAN = "http://deb.debian.org/debian"
SOURCES = [
    f"deb {DEBIAN} bookworm main",
    f"deb {DEBIAN} bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
]
# ustreamer: what benchmarks/ustreamer.py compares Titanium's capture and front door with.
PACKAGES = ["python3", "python3-venv", "v4l-utils", "kmod", "busybox", "ustreamer"]
KERNEL = "linux-image-amd64"  # the metapackage; its dependency is the kernel to unpack
MODULES = ["vivid", "virtio_pci", "virtio_net", "virtio_rng", "9pnet_virtio", "9p", "overlay"]
VIVID_OPTIONS = "n_devs=1 node_types=0x1 num_inputs=1 input_types=0x0"  # one webcam input
GUEST_PYTHON = "3.11"  # bookworm's; the wheels are fetched for it
HOST_ONLY = {"ruff", "mypy"}  # lint and type-check run on the host, not in the guest
# Host command → Debian package that brings it.
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "mmdebstrap": "mmdebstrap",
    "dpkg-deb": "dpkg",
    "cpio": "cpio",
    "depmod": "kmod",
    "modprobe": "kmod",
}
MEMORY = "2G"  # the ~400 MB initramfs is unpacked into RAM, then the tests run there
GUEST_PORT = 8080


Env = dict[str, str] | None


class VMError(RuntimeError):
    """A step of the build or the boot failed; the message says which and why."""


def log(msg: str) -> None:
    print(f"vivid_vm: {msg}", file=sys.stderr, flush=True)


def step(
    cmd: list[str], timeout: float, cwd: Path | None = None, env: Env = None, name: str = ""
) -> None:
    """Run one build step with a time limit; on failure show its last lines and name it.
    A step out of time, or when we are stopped, is killed with everything it started."""
    name = name or Path(cmd[0]).name
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
    except BaseException as e:  # out of time, or we are stopped (Ctrl-C, SIGTERM)
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        if not isinstance(e, subprocess.TimeoutExpired):
            raise
        _tail(output)
        raise VMError(f"{name} took longer than {timeout:.0f} s (its last lines above)") from None
    if proc.returncode:
        _tail(output)
        raise VMError(f"{name} failed with exit code {proc.returncode} (its last lines above)")
    log(f"{name}: {time.monotonic() - started:.0f} s")


def _tail(output: bytes | None, lines: int = 40) -> None:
    for line in (output or b"").decode(errors="replace").splitlines()[-lines:]:
        print(f"  | {line}", file=sys.stderr)


def ensure_host_tools(tools: list[str]) -> None:
    """Install the Debian packages behind missing host commands when root, else say which."""
    missing = sorted({HOST_TOOLS[t] for t in tools if not shutil.which(t)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise VMError(f"missing host packages: run  sudo apt-get install {' '.join(missing)}")
    log(f"installing host packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    step(["apt-get", "update", "-q"], 300, env=env)
    step(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], 600, env=env)


def requirements() -> list[str]:
    """The project's runtime and test dependencies, from pyproject.toml, less host-only tools."""
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    return [r for r in reqs if re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] not in HOST_ONLY]


def image_dir() -> Path:
    """The cache folder of the image this script and the project's dependencies make."""
    recipe = {
        "sources": SOURCES,
        "packages": PACKAGES,
        "kernel": KERNEL,
        "modules": MODULES,
        "vivid": VIVID_OPTIONS,
        "requirements": requirements(),
        "script": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "init": hashlib.sha256(INIT.read_bytes()).hexdigest(),
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return CACHE / f"image-{key}"


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One build at a time (the host suite and titanium.sh may both ask for the image)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build() -> Path:
    """The image folder (vmlinuz, initrd.cpio), built when it is not cached yet."""
    image = image_dir()
    if (image / "initrd.cpio").exists():
        return image
    if os.geteuid() != 0:
        raise VMError("building the image needs root (mmdebstrap --mode=root, chroot, mknod)")
    ensure_host_tools(list(HOST_TOOLS))
    with cache_lock():
        if (image / "initrd.cpio").exists():
            return image  # another process built it while we waited
        for stale in CACHE.glob("build-*"):  # from a build that was killed
            _remove_build_folder(stale)
        started = time.monotonic()
        log(f"building the image (1-2 minutes) in {CACHE}")
        tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix="build-"))
        try:
            out = tmp / "image"
            out.mkdir()
            _build_into(tmp, out)
            for old in CACHE.glob("image-*"):  # one image is enough; they are ~400 MB each
                shutil.rmtree(old, ignore_errors=True)
            out.rename(image)
        finally:
            _remove_build_folder(tmp)
        log(f"image built in {time.monotonic() - started:.0f} s: {image}")
    return image


def _remove_build_folder(tmp: Path) -> None:
    """Remove a build folder, first unmounting what a killed mmdebstrap left mounted in its
    chroot (/proc, /sys, /dev binds): removing through those would reach into the host's."""

    def mounts() -> list[str]:
        lines = Path("/proc/mounts").read_text().splitlines()
        points = [line.split()[1].replace("\\040", " ") for line in lines]
        return sorted((m for m in points if m.startswith(f"{tmp.resolve()}/")), reverse=True)

    for point in mounts():
        subprocess.run(["umount", "--lazy", point], check=False, timeout=60)
    if mounts():
        log(f"left {tmp} in place: {', '.join(mounts())} still mounted")
        return
    shutil.rmtree(tmp, ignore_errors=True)


def _build_into(tmp: Path, out: Path) -> None:
    wheels, root, debs, kernel = tmp / "wheels", tmp / "root", tmp / "debs", tmp / "kernel"
    debs.mkdir()
    # The host's pip fetches the wheels (with its own index, proxy and certificate settings);
    # the chroot installs them offline. Binary wheels only: the guest has no compiler.
    reqs = requirements()
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(36, 16, -1)]
    step(
        [sys.executable, "-m", "pip", "download", "-q", "--dest", str(wheels),
         "--only-binary=:all:", "--python-version", GUEST_PYTHON, "--implementation", "cp",
         *(a for p in platforms for a in ("--platform", p)), *reqs],
        900,
    )  # fmt: skip
    (wheels / "requirements.txt").write_text("\n".join(reqs) + "\n")
    chroot = 'chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8'
    apt = 'APT_CONFIG="$MMDEBSTRAP_APT_CONFIG"'
    hooks = [
        f'cp -r {shlex.quote(str(wheels))} "$1/tmp/wheels"',
        f"{chroot} python3 -m venv /opt/venv",
        f"{chroot} /opt/venv/bin/pip install -q --no-index --find-links /tmp/wheels"
        " -r /tmp/wheels/requirements.txt",
        'rm -rf "$1/tmp/wheels"',
        # The kernel is only downloaded here (apt still has the suites' lists), never installed.
        f"cd {shlex.quote(str(debs))} && pkg=$({apt} apt-cache depends {KERNEL}"
        " | sed -n 's/^ *Depends: \\(linux-image-[0-9].*\\)/\\1/p' | head -n1)"
        f' && {apt} apt-get download -q "$pkg"',
    ]
    step(
        ["mmdebstrap", "--variant=minbase", "--mode=root", "--include=" + ",".join(PACKAGES),
         # /usr merged by symlinks, as debootstrap does: the usrmerge package would pull in perl.
         "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
         *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale", "info")),
         *(f"--customize-hook={h}" for h in hooks),
         "bookworm", str(root), *SOURCES],
        1200,
    )  # fmt: skip
    deb = next(debs.glob("linux-image-*.deb"), None)
    if deb is None:
        raise VMError(f"no {KERNEL} kernel was downloaded")
    step(["dpkg-deb", "-x", str(deb), str(kernel)], 300)
    release = next((kernel / "lib" / "modules").iterdir()).name
    shutil.copy(kernel / "boot" / f"vmlinuz-{release}", out / "vmlinuz")
    _install_modules(kernel, root, release)
    _configure(root)
    cpio = "find . -print0 | cpio --null -o -H newc --quiet > " + shlex.quote(
        str(out / "initrd.cpio")
    )
    step(["sh", "-c", cpio], 300, cwd=root, name="cpio")
    log(f"initramfs: {(out / 'initrd.cpio').stat().st_size / 1e6:.0f} MB, kernel {release}")


def _install_modules(kernel: Path, root: Path, release: str) -> None:
    """Copy the modules MODULES need (and what they need) into the root fs and index them."""
    step(["depmod", "-b", str(kernel), release], 120)
    deps = subprocess.run(
        ["modprobe", "-d", str(kernel), "-S", release, "--show-depends", "-a", *MODULES],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    src = kernel / "lib" / "modules" / release
    dst = root / "lib" / "modules" / release
    count = 0
    for line in deps.splitlines():
        if line.startswith("insmod "):
            module = Path(line.split()[1])
            target = dst / module.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(module, target)
            count += 1
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        shutil.copy(src / name, dst / name)  # so modprobe knows which ones are built in
    step(["depmod", "-b", str(root), release], 120)
    log(f"{count} modules for {', '.join(MODULES)}")


def _configure(root: Path) -> None:
    shutil.copy(INIT, root / "init")
    (root / "init").chmod(0o755)
    (root / "etc" / "modprobe.d" / "vivid.conf").write_text(f"options vivid {VIVID_OPTIONS}\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n")
    for mount_point in ("project", "mnt/project", "result"):
        (root / mount_point).mkdir(parents=True, exist_ok=True)
    console = root / "dev" / "console"  # the kernel opens it for /init before /dev is mounted
    if not console.exists():
        os.mknod(console, 0o600 | 0o020000, os.makedev(5, 1))


def run(command: list[str], forward: int | None, timeout: float) -> int:
    """Boot the image, run ``command`` in the project, return its exit code."""
    image = build()
    ensure_host_tools(["qemu-system-x86_64"])
    with tempfile.TemporaryDirectory(prefix="titanium-vm-") as result:
        Path(result, "command.sh").write_text(shlex.join(command) + "\n")
        nic = ["-nic", "none"]
        if forward is not None:
            fwd = f"hostfwd=tcp:127.0.0.1:{forward}-:{GUEST_PORT}"
            nic = ["-nic", f"user,model=virtio-net-pci,restrict=on,{fwd}"]
        share = "security_model=none,multidevs=remap"
        qemu = [
            "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", MEMORY,
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.cpio"),
            "-append", "console=ttyS0 quiet loglevel=4 panic=-1",
            "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
            "-device", "virtio-rng-pci", *nic,
            "-virtfs", f"local,path={PROJECT},mount_tag=project,readonly=on,{share}",
            "-virtfs", f"local,path={result},mount_tag=result,{share}",
        ]  # fmt: skip
        started = time.monotonic()
        if not _console(qemu, timeout):
            log(f"timed out after {timeout:.0f} s; stopped the VM")
            return 124
        code = Path(result, "exit-code")
        if not code.exists():
            log("the guest reported no exit code (see its console above)")
            return 125
        rc = int(code.read_text().strip() or 125)
        log(f"exit code {rc} after {time.monotonic() - started:.0f} s")
        return rc


def _console(qemu: list[str], timeout: float) -> bool:
    """Run QEMU, copying the guest console to stdout; False when it ran out of time."""
    deadline = time.monotonic() + timeout
    proc = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out = sys.stdout.buffer
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                out.write(chunk.replace(b"\r\n", b"\n"))
                out.flush()
        proc.wait(10)
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vivid_vm.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("build", help="build the image (cached under $TITANIUM_VM_CACHE)")
    sub.add_parser("path", help="print the image folder, built or not")
    run_p = sub.add_parser("run", help="boot, run CMD in the project, exit with its code")
    run_p.add_argument(
        "--forward", type=int, metavar="PORT", help=f"127.0.0.1:PORT → :{GUEST_PORT}"
    )
    run_p.add_argument("--timeout", type=float, default=1200, help="seconds for the whole run")
    run_p.add_argument("command", nargs="+", help="the command (after --)")
    args = parser.parse_args(argv)
    # A SIGTERM (a test stopping its VM) unwinds like Ctrl-C, so QEMU is killed, not orphaned.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    try:
        if args.what == "build":
            print(build())
            return 0
        if args.what == "path":
            print(image_dir())
            return 0
        return run(args.command, args.forward, args.timeout)
    except VMError as e:
        log(f"error: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
