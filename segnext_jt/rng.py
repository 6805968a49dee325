"""Every source of randomness in segnext-jittor, in one place.

A run is reproducible because no component draws from a shared, history-dependent generator: each
draw comes from its own NumPy stream whose entropy names what is drawn. The map:

================================  ==========================================  =====================
what is drawn                     stream entropy (SeedSequence words)         drawn by
================================  ==========================================  =====================
sample order of an epoch          [seed, epoch, TAG_PERMUTATION]              data.loader
augmentation of one sample        [seed, iteration, slot]                     data.loader workers
DropPath / Dropout2d masks        [seed, iteration, slot, TAG_DROPOUT]        layers.DropPath/Dropout2d
Jittor's own RNG (unused by the   SeedSequence([seed, iteration, rank,        engine.trainer
  model, re-seeded as a guard)      TAG_JITTOR])
NMF bases, training               [seed, NMF_TRAIN, iteration, slot]          models.ham_head
NMF bases, evaluation             [eval_seed, NMF_EVAL, crc32(file name),     evaluation.evaluator
                                    round(1000*ratio), flip (, draw)           (draw >= 1 only,
                                    (, slide window)]                          --nmf-draws)
NMF bases, calls without keys     [seed, NMF_ADHOC, call, index in batch]     models.ham_head
stored bases (rand_init: false)   [seed, NMF_ADHOC, 2**31 - 1, 0]             models.ham_head,
                                                                              tools/freeze_nmf_bases
demo data generation              [seed, split id, image index]               tools/prepare_demo_data
Python `random`, NumPy global     seed_everything(seed)                       third-party code only
================================  ==========================================  =====================

Two draws are deliberately outside this map: the colour palette of a dataset that declares none
(evaluation.visualize.default_palette, fixed seed 1: colours only) and `SegDataset.get(i)` called
without an rng (interactive use; the loaders always pass `sample_rng`).

`seed` is the run seed (`--seed`, `train.seed`); `eval_seed` is `eval.seed` (`--seed` of
tools/eval.py). "slot" is the index of a sample in the global batch, so the streams do not depend on
the number of processes, loader workers or the batch split. The tags keep streams of equal length
apart: SeedSequence pads short entropy with zeros, so [seed, epoch] alone would equal
[seed, it=epoch, slot=0]. Their values are part of the results' identity: changing one changes
every run.
"""
from __future__ import annotations

import random
import zlib
from typing import Sequence

import numpy as np

TAG_PERMUTATION = 0x7065726D  # "perm"
TAG_DROPOUT = 0x6470  # "dp"
TAG_JITTOR = 0x6A74  # "jt"

# NMF key namespaces (the first word after the seed): train, eval and keyless draws never share a stream.
NMF_TRAIN, NMF_EVAL, NMF_ADHOC = 0, 1, 2
NMF_STORED_BASES_KEY = (NMF_ADHOC, 2**31 - 1, 0)

NMFKey = tuple  # a tuple of non-negative ints identifying one image/view/crop draw


def stream_seed(seed: int, what: str = "seed") -> int:
    """`seed` as the first word of a stream's entropy: an int, refused when negative (NumPy's own
    error would not say which seed). No upper bound: any size is valid entropy. The range a user may
    give, [0, 2**32) as a one-line ConfigError, is checked once where a seed enters the program
    (config_schema.check_seed: the config, --seed, --seeds)."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {seed}")
    return seed


# ---------------------------------------------------------------------------------- data
def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The sample order of one epoch."""
    return np.random.default_rng([stream_seed(seed), int(epoch), TAG_PERMUTATION]).permutation(n)


def sample_rng(seed: int, it: int, slot: int) -> np.random.Generator:
    """The augmentation rng of sample `slot` of iteration `it`."""
    return np.random.default_rng([stream_seed(seed), int(it), int(slot)])


def demo_image_rng(seed: int, split_id: int, index: int) -> np.random.Generator:
    """The generator of one image of the MNIST-derived demo dataset."""
    return np.random.default_rng([int(seed), int(split_id), int(index)])


# ---------------------------------------------------------------------------------- training
class PerSampleRNG:
    """Draws for a batch in which row i comes from sample i's own generator, so a sample's masks do
    not depend on which process or batch position it lands in. Duck-types the one method the
    dropout layers use, `Generator.random(shape, dtype)`."""

    def __init__(self, generators: Sequence[np.random.Generator]):
        self.generators = list(generators)

    def random(self, shape: Sequence[int], dtype=np.float64) -> np.ndarray:
        if shape[0] != len(self.generators):
            raise ValueError(f"dropout masks: a batch of {shape[0]} samples but {len(self.generators)} "
                             "sample generators (set_dropout_rng with the batch's slots)")
        return np.stack([g.random(tuple(shape[1:]), dtype=dtype) for g in self.generators])


def dropout_rng(seed: int, it: int, slots: Sequence[int]) -> PerSampleRNG:
    """DropPath/Dropout2d masks of iteration `it`, one stream per global sample slot: the same masks
    with one process or N (NumPy, not Jittor: Jittor's random ops depend on process history, so a
    resumed run would not redraw the same masks)."""
    return PerSampleRNG([np.random.default_rng([seed, it, int(slot), TAG_DROPOUT]) for slot in slots])


def jittor_seed(seed: int, it: int, rank: int) -> int:
    """The value passed to `jt.set_seed` before iteration `it`."""
    return int(np.random.SeedSequence([seed, it, rank, TAG_JITTOR]).generate_state(1)[0])


def nmf_train_keys(it: int, slots: Sequence[int]) -> list[NMFKey]:
    return [(NMF_TRAIN, int(it), int(s)) for s in slots]


# ---------------------------------------------------------------------------------- NMF bases
def image_key(name: str) -> int:
    """Stable 32-bit id of an image from its file name (independent of dataset order)."""
    return zlib.crc32(str(name).encode("utf-8"))


def nmf_eval_key(file_name: str, ratio: float, flip: bool, draw: int = 0) -> NMFKey:
    """The key of one test view. Draw 0 is the released single-draw protocol's key; further draws
    (--nmf-draws K) append their index, so K=1 gives exactly the single-draw result."""
    key = (NMF_EVAL, image_key(file_name), int(round(ratio * 1000)), int(flip))
    return key if draw == 0 else key + (int(draw),)


def nmf_bases(seed: int, keys: Sequence[NMFKey], d: int, r: int) -> np.ndarray:
    """U[0,1) float32 bases (len(keys), d, r), one stream per key."""
    out = np.empty((len(keys), d, r), dtype=np.float32)
    for i, key in enumerate(keys):
        out[i] = np.random.default_rng([int(seed)] + [int(k) for k in key]).random((d, r), dtype=np.float32)
    return out


# ---------------------------------------------------------------------------------- globals
def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and Jittor's global RNGs. Nothing in this package draws from them; this
    is for third-party code that might."""
    from .runtime import jt  # Jittor, imported after the environment is prepared
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    jt.set_global_seed(seed)


def global_rng_state() -> dict:
    """Python and NumPy global RNG states as JSON-able data (recorded in training checkpoints)."""
    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }


def set_global_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
