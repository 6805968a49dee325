"""segnext_jt/rng.py is the one home of randomness: its streams are what its map says, and no other
module of the package builds a seeded stream."""
from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from helpers import ROOT

from segnext_jt import rng
from segnext_jt.rng import NMF_EVAL, nmf_eval_key


def test_streams_are_the_documented_entropy():
    assert np.array_equal(rng.epoch_permutation(3, 2, 10),
                          np.random.default_rng([3, 2, 0x7065726D]).permutation(10))
    assert rng.sample_rng(3, 7, 1).random() == np.random.default_rng([3, 7, 1]).random()
    masks = rng.dropout_rng(3, 7, [4, 5]).random((2, 3), dtype=np.float32)
    assert np.array_equal(masks[1], np.random.default_rng([3, 7, 5, 0x6470]).random((3,), dtype=np.float32))
    assert rng.jittor_seed(3, 7, 0) == int(np.random.SeedSequence([3, 7, 0, 0x6A74]).generate_state(1)[0])
    assert rng.nmf_train_keys(7, [0, 1]) == [(rng.NMF_TRAIN, 7, 0), (rng.NMF_TRAIN, 7, 1)]
    key = rng.nmf_eval_key("img.jpg", 0.75, True)
    assert key == (rng.NMF_EVAL, zlib.crc32(b"img.jpg"), 750, 1)
    bases = rng.nmf_bases(5, [key], 4, 3)
    assert bases.dtype == np.float32 and bases.shape == (1, 4, 3)
    assert np.array_equal(bases[0], np.random.default_rng([5, *key]).random((4, 3), dtype=np.float32))


def test_streams_with_equal_words_but_different_roles_differ():
    # [seed, epoch] padded with zeros would equal [seed, it=epoch, slot=0] without the tag
    perm_first = rng.epoch_permutation(0, 4, 1000)[:8]
    sample_first = rng.sample_rng(0, 4, 0).permutation(1000)[:8]
    assert not np.array_equal(perm_first, sample_first)
    assert not np.array_equal(rng.dropout_rng(0, 4, [0]).random((1, 8))[0], rng.sample_rng(0, 4, 0).random(8))
    assert len({rng.NMF_TRAIN, rng.NMF_EVAL, rng.NMF_ADHOC}) == 3


def test_dropout_masks_of_a_sample_do_not_depend_on_the_batch_split():
    # one process with slots 0..3 vs two processes with slots 0,1 and 2,3: the same rows
    whole = rng.dropout_rng(5, 9, [0, 1, 2, 3]).random((4, 6, 1, 1))
    halves = [rng.dropout_rng(5, 9, s).random((2, 6, 1, 1)) for s in ([0, 1], [2, 3])]
    assert np.array_equal(whole, np.concatenate(halves))
    with pytest.raises(ValueError, match="a batch of 3 samples but 4 sample generators"):
        rng.dropout_rng(5, 9, [0, 1, 2, 3]).random((3, 6))


def test_global_rng_state_round_trips():
    rng.seed_everything(11)
    state = rng.global_rng_state()
    first = (np.random.random(), __import__("random").random())
    rng.seed_everything(12)
    rng.set_global_rng_state(state)
    assert (np.random.random(), __import__("random").random()) == first


def test_no_other_package_module_builds_a_seeded_stream():
    seeded = re.compile(r"default_rng\(\s*\[|SeedSequence\(|jt\.set_(global_)?seed\(|np\.random\.seed\(")
    offenders = []
    for path in sorted((ROOT / "segnext_jt").rglob("*.py")):
        if path.name == "rng.py":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if seeded.search(code) and "rng." not in code:
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "seeded streams outside segnext_jt/rng.py:\n" + "\n".join(offenders)


def test_draw_zero_key_is_the_single_draw_protocol_key():
    # the key the evaluator used before --nmf-draws existed: (eval namespace, crc32(name), ratio, flip)
    assert nmf_eval_key("a/b/img_1.jpg", 1.25, True) == (NMF_EVAL, zlib.crc32(b"a/b/img_1.jpg"), 1250, 1)
    assert nmf_eval_key("x.jpg", 1.0, False, draw=0) == nmf_eval_key("x.jpg", 1.0, False)
    keys = {nmf_eval_key("x.jpg", 1.0, False, draw=d) for d in range(4)}
    assert len(keys) == 4
