"""segnext_jt.data.eval_views: the test-time scales of both pipelines ('stretch', 'pad') and the
network input of one view."""
from __future__ import annotations

import numpy as np
import pytest

from segnext_jt.data import make_view_input, tta_scales


def test_tta_scales_pipelines_differ():
    # MM0 'stretch': keep-ratio into (int(2048 r), int(512 r)).
    assert tta_scales(683, 512, (0.5, 1.0, 1.75), "stretch") == [(342, 256), (683, 512), (1195, 896)]
    # MM1 'pad': scale factor r of the original size.
    assert tta_scales(2000, 1000, (0.5, 1.0), "pad") == [(1000, 500), (2000, 1000)]
    assert tta_scales(2000, 1000, (0.5, 1.0), "stretch") == [(512, 256), (1024, 512)]
    with pytest.raises(ValueError, match="test pipeline"):
        tta_scales(10, 10, (1.0,), "slide")


def test_make_view_input_stretch_and_pad():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (512, 683, 3), dtype=np.uint8)
    inp, info = make_view_input(img, pipeline="stretch")
    assert inp.shape == (3, 512, 704) and inp.dtype == np.float32
    assert info.resized_shape == (512, 683) and info.valid_shape == (512, 704) and info.ori_shape == (512, 683)
    inp_p, info_p = make_view_input(img, pipeline="pad")
    assert inp_p.shape == (3, 512, 704) and info_p.valid_shape == (512, 683)
    assert np.all(inp_p[:, :, 683:] == 0)
    mean = np.array([123.675, 116.28, 103.53], np.float32)[:, None, None]
    std = np.array([58.395, 57.12, 57.375], np.float32)[:, None, None]
    np.testing.assert_allclose(inp_p[:, :, :683], (img[..., ::-1].transpose(2, 0, 1) - mean) / std, rtol=1e-6)
    # Flip happens before padding (TTA pipelines), so the image stays top-left.
    inp_f, info_f = make_view_input(img, pipeline="pad", flip=True)
    np.testing.assert_array_equal(inp_f[:, :, :683], inp_p[:, :, :683][:, :, ::-1])
    assert info_f.flip and np.all(inp_f[:, :, 683:] == 0)
    # An explicit size from tta_scales.
    size = tta_scales(683, 512, (0.5,), "pad")[0]
    inp_h, info_h = make_view_input(img, pipeline="pad", size=size)
    assert info_h.resized_shape == (256, 342) and inp_h.shape == (3, 256, 352)
