"""repro/report.py --official zoo:NAME: mmseg's released log fetched into the weights cache from a
127.0.0.1 server (through SEGNEXT_HUB_MIRROR), checked and overlaid; offline, one line says where to
put it. And the quirks of real mmseg 0.x logs, one synthetic log reproducing each. No Jittor."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from _weights_server import Route, home, server  # noqa: F401
from segnext_jt import hub
from segnext_jt.repro.report import command as report
from segnext_jt.repro.report.log_parsing import parse_log
from segnext_jt.repro.report.official import cached_official_path

RUN = "segnext_mscan-l_1x16_512x512_adamw_160k_ade20k"
LOG_NAME = f"{RUN}_20230209_172055.log.json"
URL_PATH = f"/mmsegmentation/v0.5/segnext/{RUN}/{LOG_NAME}"
VAL_LOADER_LEN = 2000  # ADE20K val images: what mmcv 0.x writes as a val line's "iter"


def mmseg0_log(exp_name: str = f"{RUN}.py", evals=(8000, 16000)) -> bytes:
    """An mmseg 0.x log.json with the quirks of the released ones: a first line without 'mode'
    (env info and metadata), aux.* keys on train lines, val lines whose 'iter' is the val loader's
    length, and class keys with trailing spaces ("IoU.bed ")."""
    lines = [{"env_info": "sys.platform: linux\nPython: 3.8.5\nGPU 0: NVIDIA A100-SXM4-80GB", "seed": 0,
              "exp_name": exp_name, "mmseg_version": "0.30.0+ab12cd3",
              "config": "model = dict(decode_head=dict(ham_kwargs=dict(MD_R=16)))\n",
              "CLASSES": ["wall", "bed ", "flag"], "PALETTE": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}]
    for it in range(4000, max(evals) + 1, 4000):
        lines.append({"mode": "train", "epoch": 1, "iter": it, "lr": 6e-05, "memory": 43320, "data_time": 0.01,
                      "decode.loss_ce": 0.5, "decode.acc_seg": 80.0, "aux.loss_ce": 0.2, "aux.acc_seg": 75.0,
                      "loss": 0.7 - it / 1e6, "time": 0.5})
        if it in evals:
            lines.append({"mode": "val", "epoch": 1, "iter": VAL_LOADER_LEN, "lr": 6e-05, "aAcc": 0.8,
                          "mIoU": 0.4 + it / 1e6, "mAcc": 0.5, "IoU.wall": 0.7, "IoU.bed ": 0.3,
                          "IoU.flag": math.nan, "Acc.wall": 0.8, "Acc.bed ": 0.4, "Acc.flag": math.nan})
    return ("\n".join(json.dumps(line) for line in lines) + "\n").encode()


def test_each_quirk_of_a_real_mmseg0_log(tmp_path):
    path = tmp_path / "log.json"
    path.write_bytes(mmseg0_log())
    lg = parse_log(path)
    # 1. the first line has no 'mode': it is the metadata, not an unknown record
    assert lg.format == "mmseg0" and lg.meta["exp_name"] == f"{RUN}.py" and lg.n_other_lines == 0
    # 2. val lines carry the val loader's length as 'iter': re-keyed to the training iteration
    assert [(v.raw_iter, v.iter) for v in lg.val] == [(VAL_LOADER_LEN, 8000), (VAL_LOADER_LEN, 16000)]
    assert lg.val[1].mIoU == pytest.approx(41.6)  # fractions become percent
    # 3. aux.* keys of train lines are kept beside the decode head's, the loss is the total
    t = lg.train[0]
    assert (t.loss_ce, t.extra["aux.loss_ce"], t.extra["aux.acc_seg"]) == (0.5, 0.2, 75.0)
    assert lg.series("aux.loss_ce")[1].tolist() == [0.2] * 4 and t.loss == pytest.approx(0.696)
    # 4. class keys with trailing spaces keep them, matching the CLASSES of the metadata
    assert set(lg.val[0].per_class_iou) == set(lg.meta["CLASSES"]) == {"wall", "bed ", "flag"}
    assert lg.val[0].per_class_iou["bed "] == 30.0 and math.isnan(lg.val[0].per_class_iou["flag"])


def test_a_single_val_line_is_rekeyed_too(tmp_path):
    path = tmp_path / "log.json"
    path.write_bytes(mmseg0_log(evals=(16000,)))
    assert [v.iter for v in parse_log(path).val] == [16000]


def _sweep(root: Path) -> Path:
    (root / "seed_0").mkdir(parents=True)
    (root / "seed_0" / "result.json").write_text(json.dumps({
        "seed": 0, "config": "configs/segnext_l.yaml", "checkpoint": None, "final_loss": 0.6, "train_log": None,
        "eval": [{"eval_seed": 0, "mode": "ss", "mIoU": 50.5}]}))
    return root


def test_zoo_name_downloads_checks_caches_and_overlays(server, home, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGNEXT_HUB_MIRROR", server.base + "/")
    server.serve(URL_PATH, Route(mmseg0_log()))
    sweep = _sweep(tmp_path / "sweep")
    assert report.main([str(sweep), "--official", "zoo:segnext_l", "--out", str(tmp_path / "out")]) == 0
    cached = cached_official_path("segnext_l")
    assert cached == home / LOG_NAME and cached.read_bytes() == mmseg0_log()
    assert (home / f"{LOG_NAME}.sha256").read_text().split()[0] == hub.file_sha256(str(cached))
    curves = json.loads((tmp_path / "out" / "report.json").read_text())["learning_curves"]
    assert curves["official"] == str(cached)
    assert [v["iter"] for v in curves["official_val"]] == [8000, 16000]
    assert "the official log is the thick dashed line" in (tmp_path / "out" / "report.md").read_text()
    # the second time: from the cache, no request
    n = len(server.requests)
    assert report.main([str(sweep), "--official", "zoo:segnext_l", "--out", str(tmp_path / "out2")]) == 0
    assert len(server.requests) == n


def test_a_cached_log_changed_after_its_first_use_is_refused(server, home, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SEGNEXT_HUB_MIRROR", server.base + "/")
    server.serve(URL_PATH, Route(mmseg0_log()))
    sweep = _sweep(tmp_path / "sweep")
    assert report.main([str(sweep), "--official", "zoo:segnext_l", "--out", str(tmp_path / "o")]) == 0
    cached = cached_official_path("segnext_l")
    cached.write_bytes(mmseg0_log()[:-200] + b"\n")  # cut short in the cache
    capsys.readouterr()
    assert report.main([str(sweep), "--official", "zoo:segnext_l", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "differs from" in err and f"{LOG_NAME}.sha256" in err
    assert (home / f"{LOG_NAME}.bad").exists() and not cached.exists()


@pytest.mark.parametrize("body, why", [
    (mmseg0_log(exp_name="segnext_mscan-t_1x16_512x512_adamw_160k_ade20k.py"), "is not the run " + RUN),
    (b"<html>mirror error page</html>\n", "not an mmseg 0.x training log"),
    (mmseg0_log().split(b"\n", 1)[0] + b"\n", "has 0 train and 0 val lines"),
])
def test_a_download_that_is_not_that_models_log_is_refused(server, home, monkeypatch, tmp_path, capsys, body,
                                                           why):
    monkeypatch.setenv("SEGNEXT_HUB_MIRROR", server.base + "/")
    server.serve(URL_PATH, Route(body))
    assert report.main([str(_sweep(tmp_path / "s")), "--official", "zoo:segnext_l", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert why in err and "moved it to" in err
    assert not (home / f"{LOG_NAME}.sha256").exists()


def test_offline_one_line_says_where_to_place_the_file(home, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SEGNEXT_OFFLINE", "1")
    assert report.main([str(_sweep(tmp_path / "s")), "--official", "zoo:segnext_l", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"place it at {home / LOG_NAME}" in err
    assert "SEGNEXT_OFFLINE=1 forbids downloading" in err and hub.OFFICIAL_LOGS["segnext_l"] in err
    # the file placed by hand is used (and checked) without the network
    home.mkdir(parents=True, exist_ok=True)
    (home / LOG_NAME).write_bytes(mmseg0_log())
    args = [str(_sweep(tmp_path / "s2")), "--official", "zoo:segnext_l", "--out", str(tmp_path / "o2")]
    assert report.main(args) == 0


def test_unknown_name_lists_the_released_logs(home, tmp_path, capsys):
    assert report.main([str(_sweep(tmp_path / "s")), "--official", "zoo:segnext_xl", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "zoo:segnext_t, zoo:segnext_s, zoo:segnext_b, zoo:segnext_l" in err


def test_the_four_released_logs_are_the_readme_links():
    base = "https://download.openmmlab.com/mmsegmentation/v0.5/segnext/"
    stamps = {"t": "20230210_140244", "s": "20230214_113014", "b": "20230209_172053", "l": "20230209_172055"}
    for size, stamp in stamps.items():
        run = f"segnext_mscan-{size}_1x16_512x512_adamw_160k_ade20k"
        assert hub.OFFICIAL_LOGS[f"segnext_{size}"] == f"{base}{run}/{run}_{stamp}.log.json"
        # the same run as the released checkpoint of that size
        assert hub.ZOO[f"segnext_{size}"].startswith(f"{base}{run}/{run}_{stamp}-")
