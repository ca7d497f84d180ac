"""Debian's real nginx in front of a stack, configured as MainsailOS and KIAUH install it:
the printer UI's server block with its ``/webcam/`` location (the prefix stripped,
``proxy_buffering off``, no ``Upgrade`` forwarded), upstream ``mjpgstreamer1`` on Titanium's
port. ``upgrade=True`` adds the lines docs/frontends.md tells owners to add to that location so
the WebSocket dialects pass too. Everything (config, pid, logs, temp files) lives in the
test's own directory; the master is started and ended by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.stack import free_port

# The server block of KIAUH's nginx_cfg (kiauh/components/webui_client/assets), its
# /webcam/ location verbatim; only the paths, the port and the upstream's address differ.
SERVER = """
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    upstream mjpgstreamer1 {{
        ip_hash;
        server 127.0.0.1:{upstream};
    }}
    server {{
        listen 127.0.0.1:{port};
        gzip on;
        gzip_vary on;
        gzip_proxied any;
        gzip_proxied expired no-cache no-store private auth;
        gzip_comp_level 4;
        gzip_buffers 16 8k;
        gzip_http_version 1.1;
        gzip_types text/plain text/css text/xml text/javascript application/javascript
                   application/x-javascript application/json application/xml;
        root {root};
        index index.html;
        server_name _;
        client_max_body_size 0;
        proxy_request_buffering off;

        location / {{
            try_files $uri $uri/ /index.html;
        }}

        location /webcam/ {{
            postpone_output 0;
            proxy_buffering off;
            proxy_ignore_headers X-Accel-Buffering;
            access_log off;
            error_log off;
            proxy_pass http://mjpgstreamer1/;
{upgrade}        }}
    }}
"""

# What the stock location lacks for WebSockets (docs/frontends.md, "Behind nginx").
UPGRADE = """\
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 1h;
"""

MAIN = """
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 256;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{
        text/html html;
        application/javascript js;
    }}
{server}
}}
"""


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )


class Nginx:
    """``url(path)`` is the printer UI's address; Titanium answers under ``/webcam/``.
    ``root`` is the UI's document root (a page written there is served from nginx's origin,
    as Mainsail's is)."""

    def __init__(self, directory: Path, upstream: int, upgrade: bool = False) -> None:
        binary = find_nginx()
        assert binary, "nginx is not installed (apt-get install nginx)"
        self.dir = directory
        self.root = directory / "www"
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "index.html").write_text("<!doctype html><title>printer UI</title>")
        self.port = free_port()
        server = SERVER.format(
            upstream=upstream,
            port=self.port,
            root=self.root,
            upgrade=UPGRADE if upgrade else "",
        )
        # As root, nginx's workers would drop to nobody, who cannot write the test's dirs.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = directory / "nginx.conf"
        conf.write_text(MAIN.format(user=user, dir=directory, server=server))
        check = subprocess.run(
            [binary, "-t", "-p", str(directory), "-c", str(conf)],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(
            [binary, "-p", str(directory), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its workers in its group, ended with it
        )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.error_log()
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not listen on {self.port}: {self.error_log()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def error_log(self) -> str:
        log = self.dir / "error.log"
        return log.read_text()[-2000:] if log.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the master ends its workers on SIGTERM
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
