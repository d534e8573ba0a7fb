"""Downloads against a loopback server this test starts: HTTP errors said as such (404 not retried, not
"offline"), stale partial files of other writers removed by the next download while a live one's survives, and
a killed download's `.part` file kept for the next download, which resumes it or, when the server ignores the
range, starts over."""

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from striate.data import DataError
from striate.data.datasets import download, partial

ROOT = Path(__file__).resolve().parents[1]


class Loopback:
    """http.server on 127.0.0.1 whose routes are functions of the request handler; stops with close()."""

    def __init__(self):
        self.routes, self.hits = {}, {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                else:
                    route(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = Loopback()
    yield s
    s.close()


def body(data: bytes, status: int = 200, length: int | None = None):
    def route(h):
        h.send_response(status)
        h.send_header("Content-Length", str(len(data) if length is None else length))
        h.end_headers()
        h.wfile.write(data)
    return route


def dead_pid() -> int:
    """The process id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ---------------------------------------------------------------- HTTP errors
def test_http_404_is_reported_as_such_and_not_retried(tmp_path, server):
    with pytest.raises(DataError) as err:
        download(server.url + "missing.gz", tmp_path / "missing.gz", retries=3, backoff=0.01)
    message = str(err.value)
    assert message.startswith(f"HTTP 404 (Not Found) for {server.url}missing.gz: place the file at ")
    assert "offline" not in message and server.hits["/missing.gz"] == 1
    assert list(tmp_path.iterdir()) == []


def test_server_errors_are_retried_then_reported(tmp_path, server):
    calls = iter([body(b"busy", 503), body(b"payload")])
    server.routes["/f"] = lambda h: next(calls)(h)
    assert download(server.url + "f", tmp_path / "f", retries=3, backoff=0.01).read_bytes() == b"payload"
    server.routes["/g"] = body(b"down", 503)
    with pytest.raises(DataError, match=r"HTTP 503 \(Service Unavailable\) for .*/g \(after 2 attempts\)") as err:
        download(server.url + "g", tmp_path / "g", retries=2, backoff=0.01)
    assert "offline" not in str(err.value) and server.hits["/g"] == 2


def test_bad_urls_and_headers_are_data_errors(tmp_path, server):
    for url in ("localhost:1/x", "no-scheme/x"):
        with pytest.raises(DataError, match=f"invalid URL '{url}'") as err:
            download(url, tmp_path / "x", backoff=0.01)
        assert "offline" not in str(err.value)
    server.routes["/h"] = lambda h: (h.send_response(200), h.send_header("Content-Length", "lots"), h.end_headers(),
                                     h.wfile.write(b"abc"))
    assert download(server.url + "h", tmp_path / "h").read_bytes() == b"abc"  # an unusable length is ignored


def test_connection_refused_still_says_offline(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=rf"could not download http://127\.0\.0\.1:{port}/x .*you may be offline"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", retries=1)


# ---------------------------------------------------------------- partial files of killed downloads
def test_stale_partial_files_are_removed_live_ones_survive(tmp_path, server):
    host = partial.tag().split("@")[1].removesuffix(".part")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = {
            "dead": f".data.bin.abcd1234~{dead_pid()}@{host}.part",
            "dead_other_file": f".other.gz.zz_9abcd~{dead_pid()}@{host}.part",
            "live_other_process": f".data.bin.efgh5678~{sleeper.pid}@{host}.part",
            "live_this_process": f".data.bin.ijkl9012~{os.getpid()}@{host}.part",
            "other_host": f".data.bin.mnop3456~{dead_pid()}@elsewhere-7.part",
            "legacy_old": ".data.bin.qrst7890.part",
            "legacy_recent": ".data.bin.uvwx1234.part",
            "not_ours": "notes.part",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"partial")
        old = time.time() - 2 * partial.STALE_SECONDS
        os.utime(tmp_path / names["legacy_old"], (old, old))
        server.routes["/data.bin"] = body(b"complete")
        download(server.url + "data.bin", tmp_path / "data.bin")
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {"data.bin"} | {names[k] for k in ("live_other_process", "live_this_process", "other_host",
                                                          "legacy_recent", "not_ours")}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_killed_download_leaves_a_part_file_the_next_download_replaces(tmp_path, server):
    release = threading.Event()

    def stall(h):  # half the body, then hang until the test is done
        h.send_response(200)
        h.send_header("Content-Length", "2000000")
        h.end_headers()
        h.wfile.write(b"x" * 1_000_000)
        h.wfile.flush()
        release.wait(20)

    server.routes["/big.bin"] = stall
    code = (f"from striate.data.datasets import download; "
            f"download({server.url + 'big.bin'!r}, {str(tmp_path / 'big.bin')!r})")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 20
        while not list(tmp_path.glob("*.part")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (part,) = list(tmp_path.glob("*.part"))
        assert part.name == "big.bin.part"  # kept for the next download to resume
        while part.stat().st_size < 1_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        release.set()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert part.stat().st_size == 1_000_000  # every byte received is kept (unbuffered writes)
    server.routes["/big.bin"] = body(b"y" * 1000)  # a server that ignores Range: the download starts over
    download(server.url + "big.bin", tmp_path / "big.bin")
    assert [p.name for p in tmp_path.iterdir()] == ["big.bin"]
    assert (tmp_path / "big.bin").read_bytes() == b"y" * 1000
