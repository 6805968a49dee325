"""Logs are read line by line and train records kept column-wise (issue 18: compare_logs used 3.4 GB
on a 2-million-line log): same records as before, a fraction of the memory."""
from __future__ import annotations

import json
import math
import random
import tracemalloc

import numpy as np
import pytest

from segnext_jt.repro.report.log_parsing import TrainRecord, TrainRecords, _dedupe, parse_log
from segnext_jt.repro.report.logs import compare_logs


def _random_records(n: int, seed: int) -> list[TrainRecord]:
    rnd = random.Random(seed)
    out = []
    for line in range(n):
        rec = TrainRecord(iter=rnd.randrange(0, n // 2 + 1), line=line + 2,
                          epoch=rnd.choice([None, rnd.randrange(100)]))
        for name in ("lr", "loss", "loss_ce", "acc_seg", "time", "data_time", "memory"):
            setattr(rec, name, rnd.choice([None, math.nan, rnd.random(), float(rnd.randrange(10))]))
        if rnd.random() < 0.2:
            rec.extra = {"base_lr": rnd.random()}
        out.append(rec)
    return out


def _same(a: TrainRecord, b: TrainRecord) -> bool:
    def key(r):
        return [("nan" if isinstance(v, float) and math.isnan(v) else v)
                for v in (r.iter, r.line, r.epoch, r.lr, r.loss, r.loss_ce, r.acc_seg, r.time, r.data_time, r.memory)]
    return key(a) == key(b) and dict(a.extra) == dict(b.extra)


@pytest.mark.parametrize("seed", range(5))
def test_columns_round_trip_and_dedupe_like_the_list(seed):
    records = _random_records(300, seed)
    columns = TrainRecords()
    for rec in records:
        columns.append(rec)
    assert len(columns) == len(records)
    assert all(_same(a, b) for a, b in zip(columns, records))
    assert _same(columns[-1], records[-1]) and _same(columns[5:9][0], records[5])
    with pytest.raises(IndexError):
        columns[len(records)]
    warns = []
    expected = _dedupe(list(records), "train", "x", warns)
    got, dups = columns.deduplicated()
    assert dups == len(records) - len(expected) and len(got) == len(expected)
    assert all(_same(a, b) for a, b in zip(got, expected))
    present, values = got.field("loss")
    assert present.tolist() == [r.loss is not None for r in expected]


def test_empty_records():
    got, dups = TrainRecords().deduplicated()
    assert len(got) == 0 and dups == 0 and got.iters().size == 0


def _write_log(path, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    with open(path, "w") as f:
        f.write(json.dumps({"seed": seed, "config": "x"}) + "\n")
        for i in range(1, n + 1):
            if i % 500 == 0:
                f.write(json.dumps({"mode": "val", "iter": i, "mIoU": 0.3, "aAcc": 0.5, "mAcc": 0.4}) + "\n")
            f.write(json.dumps({"mode": "train", "epoch": 1, "iter": i, "lr": 6e-05, "memory": 1234,
                                "data_time": 0.01, "decode.loss_ce": rnd.random(), "decode.acc_seg": 55.5,
                                "loss": rnd.random(), "time": 0.3}) + "\n")


def test_parse_and_compare_use_a_fraction_of_the_file_size(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _write_log(a, 100_000, 0)
    _write_log(b, 100_000, 1)
    size = a.stat().st_size
    tracemalloc.start()
    try:
        logs = [parse_log(a), parse_log(b)]
        result = compare_logs(*logs, window=1000, keep_rows=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # measured: ~0.85x one file's size for both logs (the list-of-dicts parser: ~5.8x each, 11.6x)
    assert peak < 3 * size, f"peak {peak:,} bytes for two logs of {size:,} bytes each"
    assert result["summary"]["n_shared_train_iters"] == 100_000 and len(result["val"]) == 200
    full = compare_logs(*logs, window=1000)
    assert len(full["loss_exact"]) == 100_000
    row = full["loss_exact"][41]
    assert row["iter"] == 42 and row["loss_diff"] == pytest.approx(row["loss_a"] - row["loss_b"])
    iters, loss = logs[0].series("loss")
    assert iters.size == 100_000 and np.isfinite(loss).all()


@pytest.mark.parametrize("n_b", [0, 3, 2000])
def test_out_file_written_row_by_row_equals_the_full_result(tmp_path, n_b):
    from segnext_jt.repro.report.compare_logs import write_comparison
    from segnext_jt.repro.report.logs import shared_train_rows
    from segnext_jt.files import json_safe
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _write_log(a, 1500, 0)
    _write_log(b, n_b, 1)
    logs = [parse_log(a), parse_log(b)]
    full = compare_logs(*logs, window=100)
    out = tmp_path / "sub" / "cmp.json"
    write_comparison(out, compare_logs(*logs, window=100, keep_rows=False), shared_train_rows(*logs))
    saved = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
    assert saved == json.loads(json.dumps(json_safe(full)))
    assert len(saved["loss_exact"]) == min(1500, n_b)
