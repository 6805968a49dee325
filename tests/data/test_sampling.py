"""segnext_jt.data.sampling: which samples each iteration draws."""
from __future__ import annotations

from segnext_jt.data import sample_indices


def test_sampling_rule_covers_each_epoch():
    idx = [i for it in range(4) for i in sample_indices(5, it, 3, 6)]  # 12 positions = 2 epochs of 6
    assert sorted(idx[:6]) == list(range(6)) and sorted(idx[6:]) == list(range(6))
    assert idx[:6] != idx[6:]
