"""Real servers for the tests, on loopback: nginx-rtmp, GStreamer's RTSP server, Xvfb with motion.

Each helper starts its process in the foreground, waits until it is ready
(bounded: nginx and the RTSP server by connecting to their port, Xvfb by the
display number it reports on ``-displayfd`` once it accepts clients), and
always stops it. Their working folders (and so
their command lines) contain ``rifestream-test-server``. Each process started
here is also noted, by PID and start time, in the file that
``$RIFESTREAM_TEST_PID_FILE`` names (``.ci/run`` sets it): after a crashed run,
``.ci/stop_test_servers`` stops those processes and no others. The pytest
fixtures in ``conftest.py`` wrap them.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

MARK = "rifestream-test-server"
PID_FILE_ENV = "RIFESTREAM_TEST_PID_FILE"
NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER_SCRIPT = Path(__file__).parent / "servers" / "rtsp_server.py"


class ServerUnavailable(RuntimeError):
    """The server's program is not installed here (a test may skip, naming what to install)."""


def process_start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), "-" if unknown:
    with the PID it names one process, even after the PID is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "-"


def record_pid(proc: subprocess.Popen) -> subprocess.Popen:
    """Note ``proc`` ("PID START_TIME") in ``$RIFESTREAM_TEST_PID_FILE`` when that is set; returns ``proc``."""
    path = os.environ.get(PID_FILE_ENV)
    if path:
        with open(path, "a") as pids:
            pids.write(f"{proc.pid} {process_start_time(proc.pid)}\n")
    return proc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(proc: subprocess.Popen, port: int, timeout: float, name: str, log: Path | None = None) -> None:
    """Return once ``port`` accepts connections; raise if ``proc`` exits or ``timeout`` passes.

    Between attempts it waits on the process itself (so an early exit is seen at once).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _accepts(port):
            return
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        break
    detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    stop_process(proc)
    state = f"exited with {proc.returncode}" if proc.returncode is not None else f"not ready in {timeout:g} s"
    raise RuntimeError(f"{name} on 127.0.0.1:{port} {state}\n{detail}")


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Signal the process and wait for it; SIGKILL if it does not exit in ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def _require(program: str, package: str) -> str:
    path = shutil.which(program) or (program if os.path.exists(program) else None)
    if path is None:
        raise ServerUnavailable(f"{program} is not installed (apt-get install {package}; see .ci/run)")
    return path


class NginxRtmp:
    """nginx with libnginx-mod-rtmp on 127.0.0.1:``port``, application ``live`` (``live on``)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        _require("nginx", "nginx")
        if not os.path.exists(NGINX_RTMP_MODULE):
            raise ServerUnavailable(f"{NGINX_RTMP_MODULE} is missing (apt-get install libnginx-mod-rtmp)")
        self.dir = workdir / f"{MARK}-nginx"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.dir / "error.log"
        self.proc: subprocess.Popen | None = None

    def url(self, stream: str = "test") -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{stream}"

    def _write_config(self) -> Path:
        conf = self.dir / "nginx.conf"
        conf.write_text(
            f"load_module {NGINX_RTMP_MODULE};\n"
            "daemon off;\n"
            "master_process off;\n"
            "worker_processes 1;\n"
            f"pid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.log} info;\n"
            "events { worker_connections 64; }\n"
            "rtmp {\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n    chunk_size 4096;\n"
            "    application live { live on; }\n  }\n"
            "}\n"
        )
        return conf

    def start(self, timeout: float = 10.0) -> NginxRtmp:
        conf = self._write_config()
        self.proc = record_pid(
            subprocess.Popen(
                ["nginx", "-c", str(conf), "-p", f"{self.dir}/", "-e", str(self.log)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
        )
        wait_for_port(self.proc, self.port, timeout, "nginx-rtmp", self.log)
        return self

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGQUIT)  # nginx: graceful shutdown
        self.proc = None


class RtspServer:
    """GStreamer's RTSP server (system Python) serving a live test pattern at ``url``.

    ``kill()`` ends it abruptly (SIGKILL, as a crashed camera); ``start()`` again
    brings it back on the same port.
    """

    def __init__(self, workdir: Path, port: int | None = None, size: str = "320x240", fps: int = 30) -> None:
        _require(SYSTEM_PYTHON, "python3")
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer"],
            capture_output=True,
            timeout=30,
        )  # fmt: skip
        if probe.returncode != 0:
            raise ServerUnavailable(
                "GStreamer RTSP server bindings are missing "
                "(apt-get install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly; see .ci/run)"
            )
        self.dir = workdir / f"{MARK}-rtsp"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.size, self.fps = size, fps
        self.log = self.dir / "rtsp_server.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/test"

    def start(self, timeout: float = 20.0, path: str = "/test") -> RtspServer:
        """Serve on the port; ``path``: another mount than ``url``'s makes the server answer 404 to it."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SYSTEM_PYTHON, str(RTSP_SERVER_SCRIPT), "--port", str(self.port), "--size", self.size,
                 "--fps", str(self.fps), "--path", path, "--tag", MARK],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
            )  # fmt: skip
        record_pid(self.proc)
        wait_for_port(self.proc, self.port, timeout, "GStreamer RTSP server", self.log)
        return self

    def kill(self) -> None:
        stop_process(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


def _read_line(fd: int, timeout: float) -> str:
    """Read from ``fd`` up to a newline, for at most ``timeout`` seconds ('' if none came)."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 64)
        if not chunk:
            return ""
        data += chunk
    return data.decode().strip()


class XvfbDisplay:
    """``Xvfb`` on a free display (it picks one and reports it through ``-displayfd``), with a
    rotating, moving polyhedron drawn on the root window by ``ico`` (x11-apps)."""

    def __init__(self, workdir: Path, width: int = 320, height: int = 240) -> None:
        _require("Xvfb", "xvfb")
        _require("ico", "x11-apps")
        self.dir = workdir / f"{MARK}-xvfb"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width, height
        self.display: str | None = None
        self.proc: subprocess.Popen | None = None
        self.mover: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> XvfbDisplay:
        read_fd, write_fd = os.pipe()
        log = open(self.dir / "xvfb.log", "ab")  # closed below; the child keeps its own copy
        try:
            self.proc = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{self.width}x{self.height}x24",
                 "-nolisten", "tcp", "-fbdir", str(self.dir)],
                pass_fds=(write_fd,),
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            record_pid(self.proc)
            os.close(write_fd)
            write_fd = -1
            number = _read_line(read_fd, timeout)  # Xvfb writes "N\n" (in two writes) once it accepts clients
        finally:
            log.close()
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        if not number.isdigit():
            stop_process(self.proc)
            raise RuntimeError(f"Xvfb did not report a display within {timeout:g} s")
        self.display = f":{number}"
        self.mover = record_pid(
            subprocess.Popen(
                ["ico", "-display", self.display, "-r", "-faces", "-noedges", "-sleep", "0.02"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        return self

    def stop(self) -> None:
        stop_process(self.mover)
        stop_process(self.proc)
        self.mover = self.proc = None
