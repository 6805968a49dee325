"""segnext_jt.hub against a local HTTP server on 127.0.0.1 that each test starts (tests/_weights_server.py):
download into the cache with the hash check, a cache hit without network, Range resume and restarts,
404, truncated body, a server that never answers, no network, offline mode, two downloaders at once,
the mirror; the zoo table and the configs' ImageNet URLs."""
from __future__ import annotations

import glob
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from _weights_server import (Route, closed_port_url, hashed_name, home, leftovers, server,  # noqa: F401
                             tiny_file)
from helpers import CONFIGS, DEMO_CFG

from segnext_jt import hub
from segnext_jt.errors import CheckpointNotFoundError
from segnext_jt.io import read_checkpoint


# ------------------------------------------------------------------------------------------------
# zoo table and configs
# ------------------------------------------------------------------------------------------------
def test_zoo_names_are_the_official_files():
    assert set(hub.ZOO) == {f"{kind}_{s}" for kind in ("mscan", "segnext") for s in "tsbl"}
    assert hub.ZOO["mscan_l"] == ("https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segnext/"
                                  "mscan_l_20230227-cef260d4.pth")
    assert hub.ZOO["segnext_l"].endswith("/segnext_mscan-l_1x16_512x512_adamw_160k_ade20k/"
                                         "segnext_mscan-l_1x16_512x512_adamw_160k_ade20k_20230209_172055-19b14b63.pth")
    for name, url in hub.ZOO.items():
        assert url.startswith(hub.OFFICIAL_HOST) and name.split("_")[1] in os.path.basename(url)
        assert len(hub.expected_hash_prefix(os.path.basename(url))) == 8, url
    assert hub.expected_hash_prefix("mscan_t_20230227-119e8c9f.pth") == "119e8c9f"
    assert hub.expected_hash_prefix("mscan_t.pth") is None and hub.expected_hash_prefix("a-b12.pth") is None


def test_every_benchmark_config_names_its_imagenet_weights():
    from segnext_jt import load_config
    names = sorted(os.path.basename(p) for p in glob.glob(str(CONFIGS / "segnext_*.yaml")))
    assert len(names) == 21  # 4 sizes x (ADE20K, Cityscapes, COCO-Stuff, iSAID, Pascal Context) + VOC
    for name in names:
        size = name[len("segnext_")]
        assert load_config(CONFIGS / name).model.backbone.pretrained == hub.ZOO[f"mscan_{size}"], name
    for name in ("demo_mnist.yaml", "custom_example.yaml"):  # these run offline, from scratch
        assert load_config(CONFIGS / name).model.backbone.pretrained is None


def test_unknown_zoo_name_says_did_you_mean():
    with pytest.raises(hub.HubError) as info:
        hub.resolve("zoo:segnext_m")
    msg = str(info.value)
    assert "\n" not in msg and "zoo:segnext_m" in msg and "did you mean zoo:segnext_" in msg
    assert all(f"zoo:{n}" in msg for n in hub.ZOO)
    from segnext_jt import ConfigError, load_config
    with pytest.raises(ConfigError, match="model.backbone.pretrained.*did you mean zoo:mscan_l"):
        load_config(DEMO_CFG, ["model.backbone.pretrained=zoo:mscan_ll"])


def test_local_path_is_used_as_is_and_a_missing_one_is_named(tmp_path):
    local = tmp_path / "mine.pth"
    local.write_bytes(b"x")
    got = hub.resolve(str(local))
    assert got.path == str(local) and got.url is None
    with pytest.raises(CheckpointNotFoundError) as info:
        hub.resolve(str(tmp_path / "nope.pth"), "model.backbone.pretrained", hub.FROM_SCRATCH_HINT)
    assert "nope.pth" in str(info.value) and "model.backbone.pretrained=null" in str(info.value)


# ------------------------------------------------------------------------------------------------
# downloads
# ------------------------------------------------------------------------------------------------
def test_download_checks_the_hash_and_a_cache_hit_needs_no_network(server, home, tiny_file):
    name = hashed_name("mscan_tiny_20230227", tiny_file)
    url = server.serve(f"/pretrain/{name}", Route(tiny_file, chunk=4096))
    got = hub.resolve(url, progress=False)
    assert got.path == str(home / name) and got.url == url
    assert Path(got.path).read_bytes() == tiny_file
    assert leftovers(home) == [name]  # no .partial, no sidecar
    contents = read_checkpoint(got.path)  # the official layout: backbone weights + an ImageNet classifier
    assert contents.source == "backbone_pretrain" and contents.dropped == ["head.weight", "head.bias"]
    server.close()  # a cache hit must not need the server at all
    assert hub.resolve(url, progress=False).path == got.path
    assert len(server.requests) == 1


def test_wrong_hash_is_one_line_and_leaves_nothing(server, home, tiny_file):
    name = "mscan_tiny-0123abcd.pth"
    url = server.serve(f"/{name}", Route(tiny_file))
    with pytest.raises(hub.HubError) as info:
        hub.resolve(url, "model.backbone.pretrained", hub.FROM_SCRATCH_HINT, progress=False)
    msg = str(info.value)
    assert "\n" not in msg and url in msg and str(home / name) in msg and "0123abcd" in msg
    assert "--cfg-options model.backbone.pretrained=null" in msg
    assert leftovers(home) == []


def test_http_404_is_one_line(server, home):
    url = server.base + "/missing-deadbeef.pth"
    with pytest.raises(hub.HubError) as info:
        hub.resolve(url, hint=hub.FROM_SCRATCH_HINT, progress=False)
    msg = str(info.value)
    assert "HTTP 404" in msg and url in msg and str(home / "missing-deadbeef.pth") in msg
    assert leftovers(home) == []


def test_truncated_body_fails_then_resumes_with_range(server, home, tiny_file):
    name = hashed_name("mscan_tiny", tiny_file)
    half = len(tiny_file) // 2
    url = server.serve(f"/{name}", Route(tiny_file, cut=half))
    with pytest.raises(hub.HubError) as info:
        hub.resolve(url, progress=False)
    assert "truncated" in str(info.value) and f"{half} of {len(tiny_file)} bytes" in str(info.value)
    assert not (home / name).exists() and (home / f"{name}.partial").stat().st_size == half

    server.serve(f"/{name}", Route(tiny_file))  # the server is fine again: only the rest is fetched
    assert Path(hub.resolve(url, progress=False).path).read_bytes() == tiny_file
    last = server.requests[-1]
    assert last["range"] == f"bytes={half}-" and last["if_range"]  # resumed under the first answer's ETag
    assert leftovers(home) == [name]


def test_server_ignoring_range_restarts_from_zero(server, home, tiny_file):
    name = hashed_name("mscan_tiny", tiny_file)
    home.mkdir(parents=True)
    (home / f"{name}.partial").write_bytes(b"garbage from another file" * 10)
    url = server.serve(f"/{name}", Route(tiny_file, ranges=False))
    assert Path(hub.resolve(url, progress=False).path).read_bytes() == tiny_file
    assert len(server.requests) == 1 and server.requests[0]["range"]  # asked for a range, got the whole file


def test_inconsistent_partial_restarts_from_zero(server, home, tiny_file):
    name = hashed_name("mscan_tiny", tiny_file)
    home.mkdir(parents=True)
    (home / f"{name}.partial").write_bytes(b"\0" * 100)  # not the file's first 100 bytes
    url = server.serve(f"/{name}", Route(tiny_file))
    assert Path(hub.resolve(url, progress=False).path).read_bytes() == tiny_file
    # resumed at 100 (the server honoured it), the hash failed, then one download from zero
    assert [r["range"] for r in server.requests] == ["bytes=100-", None]

    longer = hashed_name("mscan_other", tiny_file[:50])  # a partial longer than the file: 416, then from zero
    (home / f"{longer}.partial").write_bytes(tiny_file[:80])
    url = server.serve(f"/{longer}", Route(tiny_file[:50]))
    assert Path(hub.resolve(url, progress=False).path).read_bytes() == tiny_file[:50]
    assert [r["range"] for r in server.requests[2:]] == ["bytes=80-", None]


def test_a_server_that_never_answers_times_out(home):
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/mscan_t-00000000.pth"
        started = time.monotonic()
        with pytest.raises(hub.HubError) as info:
            hub.resolve(url, timeout=0.5, progress=False)
        assert time.monotonic() - started < 10
    finally:
        silent.close()
    msg = str(info.value)
    assert "no answer within 0.5 s" in msg and url in msg and str(home / "mscan_t-00000000.pth") in msg


def test_no_network_and_offline_mode(home, monkeypatch, server):
    url = closed_port_url("mscan_t-00000000.pth")
    with pytest.raises(hub.HubError, match="Connection refused.*no network"):
        hub.resolve(url, progress=False)
    monkeypatch.setenv("SEGNEXT_OFFLINE", "1")
    url = server.serve("/x-12345678.pth", Route(b"x"))
    with pytest.raises(hub.HubError, match="SEGNEXT_OFFLINE=1 forbids downloading"):
        hub.resolve(url, progress=False)
    assert server.requests == []
    monkeypatch.setenv("SEGNEXT_HUB_TIMEOUT", "soon")
    monkeypatch.delenv("SEGNEXT_OFFLINE")
    with pytest.raises(hub.HubError, match="SEGNEXT_HUB_TIMEOUT='soon'"):
        hub.resolve(url, progress=False)


def test_a_bad_file_in_the_cache_is_moved_aside_and_downloaded_again(server, home, tiny_file):
    name = hashed_name("mscan_tiny", tiny_file)
    home.mkdir(parents=True)
    (home / name).write_bytes(b"not the right file")
    url = server.serve(f"/{name}", Route(tiny_file))
    logged = []
    assert Path(hub.resolve(url, progress=False, log=logged.append).path).read_bytes() == tiny_file
    assert (home / f"{name}.bad-hash").read_bytes() == b"not the right file"
    assert any("moved it to" in line for line in logged)


def test_mirror_replaces_the_official_host_and_the_official_hash_is_checked(server, home, monkeypatch):
    monkeypatch.setenv("SEGNEXT_HUB_MIRROR", server.base + "/mirror/")
    path = "/mirror/mmsegmentation/v0.5/pretrain/segnext/mscan_t_20230227-119e8c9f.pth"
    server.serve(path, Route(b"a file that is not MSCAN-T"))
    with pytest.raises(hub.HubError) as info:
        hub.resolve("zoo:mscan_t", progress=False)
    assert server.requests[0]["path"] == path
    assert server.base + path in str(info.value) and "119e8c9f" in str(info.value)
    assert str(home / "mscan_t_20230227-119e8c9f.pth") in str(info.value) and leftovers(home) == []


def test_two_downloaders_at_once_fetch_the_file_once(server, home, tiny_file):
    name = hashed_name("mscan_tiny", tiny_file)
    url = server.serve(f"/{name}", Route(tiny_file, chunk=len(tiny_file) // 8 + 1, delay=0.05))
    results, errors = [], []

    def fetch():
        try:
            results.append(hub.resolve(url, progress=False, log=lambda _m: None).path)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(2)]  # separate flock descriptions
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and results == [str(home / name)] * 2
    assert len(server.requests) == 1 and Path(results[0]).read_bytes() == tiny_file
