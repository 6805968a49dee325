"""segnext_jt.models.mscan_keys: MSCAN's keys in the ImageNet-pretrain and SegNeXt-repo layouts
mapped to mmseg 1.x names (io/convert.normalize_state_dict calls these), and the promise that lets
io import it: reading checkpoints never imports Jittor."""
from __future__ import annotations

import subprocess
import sys

from helpers import ROOT

from segnext_jt.models import mscan_keys


def test_bare_mscan_keys_are_recognised():
    assert mscan_keys.is_bare_mscan_key("patch_embed1.proj.0.weight")
    assert mscan_keys.is_bare_mscan_key("block4.1.mlp.fc1.bias")
    assert mscan_keys.is_bare_mscan_key("norm2.weight")
    for key in ("backbone.block1.0.norm1.weight", "head.weight", "decode_head.conv_seg.weight", "blockX.0.w"):
        assert not mscan_keys.is_bare_mscan_key(key), key


def test_pretrain_entries_go_under_backbone_without_the_classifier():
    items = [("patch_embed1.proj.0.weight", 1), ("head.weight", 2), ("block1.0.norm1.bias", 3), ("head.bias", 4)]
    kept, dropped = mscan_keys.pretrain_to_segmentor(items)
    assert kept == [("backbone.patch_embed1.proj.0.weight", 1), ("backbone.block1.0.norm1.bias", 3)]
    assert dropped == ["head.weight", "head.bias"]


def test_orig_dwconv_keys_get_mmseg_names():
    assert (mscan_keys.orig_to_mmseg("backbone.block2.1.mlp.dwconv.dwconv.weight")
            == "backbone.block2.1.mlp.dwconv.weight")
    for key in ("backbone.block2.1.mlp.dwconv.weight", "backbone.block1.0.mlp.fc1.weight"):
        assert mscan_keys.orig_to_mmseg(key) == key


def test_checkpoint_io_does_not_import_jittor():
    """io/convert imports models.mscan_keys; models/__init__ must not pull in the Jittor modules."""
    code = ("import sys; import segnext_jt.io, segnext_jt.models.mscan_keys; "
            "from segnext_jt.io import normalize_state_dict; "
            "normalize_state_dict({'block1.0.mlp.dwconv.dwconv.weight': __import__('numpy').zeros(1)}); "
            "assert 'jittor' not in sys.modules, sorted(m for m in sys.modules if m.startswith('segnext_jt'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
