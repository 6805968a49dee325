"""A weights server on 127.0.0.1 for the tests of segnext_jt.hub and of what uses it (the fixtures
`server` and `home`), and ImageNet MSCAN files in the official layout."""
from __future__ import annotations

import hashlib
import http.server
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

import _torch_writer as tw
from helpers import as_tensors, tiny_state_dict


# ------------------------------------------------------------------------------------------------
# the local server
# ------------------------------------------------------------------------------------------------
@dataclass
class Route:
    body: bytes
    ranges: bool = True            # honour Range requests (False: answer 200 with the whole file)
    cut: Optional[int] = None      # close the connection after this many body bytes (Content-Length says more)
    delay: float = 0.0             # seconds between chunks
    chunk: int = 1 << 16


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        server = self.server
        server.requests.append({"path": self.path, "range": self.headers.get("Range"),
                                "if_range": self.headers.get("If-Range")})
        route = server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        body = route.body
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        start, asked = 0, self.headers.get("Range")
        if asked and route.ranges and self.headers.get("If-Range") in (None, etag):
            start = int(asked.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        part = body[start:]
        self.send_header("Content-Length", str(len(part)))
        self.send_header("ETag", etag)
        self.end_headers()
        sent = part if route.cut is None else part[:route.cut]
        for i in range(0, len(sent), route.chunk):
            self.wfile.write(sent[i:i + route.chunk])
            self.wfile.flush()
            if route.delay:
                time.sleep(route.delay)


class LocalServer:
    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes, self.httpd.requests = {}, []
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def requests(self) -> list:
        return self.httpd.requests

    def serve(self, path: str, route: Route) -> str:
        self.httpd.routes[path] = route
        return self.base + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture
def home(monkeypatch, tmp_path) -> Path:
    """A fresh $SEGNEXT_HOME, downloads allowed (conftest forbids them for every other test)."""
    monkeypatch.setenv("SEGNEXT_HOME", str(tmp_path / "home"))
    for name in ("SEGNEXT_OFFLINE", "SEGNEXT_HUB_MIRROR", "SEGNEXT_HUB_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home" / "checkpoints"


def closed_port_url(name: str) -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused: what no network looks like)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/{name}"


# ------------------------------------------------------------------------------------------------
# the official file format, with the tiny MSCAN's weights
# ------------------------------------------------------------------------------------------------
def imagenet_file_bytes(tmp_path: Path, backbone: "OrderedDict[str, np.ndarray]") -> bytes:
    """An ImageNet MSCAN file as mmseg loads it (init_cfg Pretrained -> load_checkpoint, which takes
    checkpoint['state_dict']): a torch zip holding {'state_dict': MSCAN keys without 'backbone.' and the
    1000-class classifier head.weight/head.bias}."""
    weights = OrderedDict(backbone)
    width = next(v.shape[0] for k, v in weights.items() if k.startswith("norm4."))
    weights["head.weight"] = np.full((1000, width), 0.5, np.float32)
    weights["head.bias"] = np.zeros(1000, np.float32)
    path = tmp_path / "mscan.pth"
    tw.write_zip(str(path), {"state_dict": as_tensors(weights)})
    return path.read_bytes()


def tiny_backbone() -> "OrderedDict[str, np.ndarray]":
    return OrderedDict((k[len("backbone."):], v) for k, v in tiny_state_dict().items() if k.startswith("backbone."))


def hashed_name(stem: str, body: bytes) -> str:
    return f"{stem}-{hashlib.sha256(body).hexdigest()[:8]}.pth"


@pytest.fixture
def tiny_file(tmp_path) -> bytes:
    return imagenet_file_bytes(tmp_path, tiny_backbone())


def leftovers(cache: Path) -> list:
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) if cache.exists() else []
