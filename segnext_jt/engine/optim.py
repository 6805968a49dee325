"""AdamW with mmseg's paramwise rules, and the two learning-rate schedules (mmcv 0.x and mmengine 1.x)."""
from __future__ import annotations

import numpy as np

from .. import runtime  # noqa: F401
import jittor as jt

from ..config_schema import OptimizerConfig, ScheduleConfig

_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def trainable_parameters(model) -> list[tuple[str, jt.Var]]:
    """(name, var) of learnable tensors in state-dict order: BN buffers and stored NMF bases excluded."""
    out = []
    for name, var in model.state_dict().items():
        if name.endswith(_BUFFER_SUFFIXES) or name.endswith("hamburger.ham.bases"):
            continue
        out.append((name, var))
    return out


def match_custom_key(name: str, custom_keys: dict) -> str | None:
    """mmcv/mmengine DefaultOptimWrapperConstructor: keys sorted alphabetically, then by length
    (longest first); the first key that is a substring of the parameter name wins."""
    for key in sorted(sorted(custom_keys), key=len, reverse=True):
        if key in name:
            return key
    return None


def build_param_groups(model, opt: OptimizerConfig) -> list[dict]:
    """One group per (lr_mult, decay_mult) combination, in order of first appearance; each group
    carries 'names', 'lr_mult', 'weight_decay'. The backbone default group comes first, so the
    first group's lr is the backbone lr that mmseg logs."""
    groups: dict[tuple[float, float], dict] = {}
    for name, var in trainable_parameters(model):
        key = match_custom_key(name, opt.custom_keys)
        rule = opt.custom_keys.get(key, {}) if key else {}
        lr_mult, decay_mult = float(rule.get("lr_mult", 1.0)), float(rule.get("decay_mult", 1.0))
        group = groups.setdefault((lr_mult, decay_mult), {
            "params": [], "names": [], "lr_mult": lr_mult,
            "weight_decay": opt.weight_decay * decay_mult, "key": key})
        group["params"].append(var)
        group["names"].append(name)
    return list(groups.values())


class AdamW(jt.optim.Optimizer):
    """torch.optim.AdamW (decoupled weight decay): p <- p * (1 - lr * wd), then the Adam step with
    denom = sqrt(v) / sqrt(1 - b2^t) + eps and step size lr / (1 - b1^t).
    Each group's lr is base_lr * lr_mult, set by `set_lr` before every step."""

    def __init__(self, groups: list[dict], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(groups, lr)
        self.betas, self.eps = tuple(betas), eps
        for pg in self.param_groups:
            pg.setdefault("lr_mult", 1.0)
            pg["lr"] = lr * pg["lr_mult"]
            pg["exp_avg"] = [jt.zeros(p.shape, p.dtype).stop_grad() for p in pg["params"]]
            pg["exp_avg_sq"] = [jt.zeros(p.shape, p.dtype).stop_grad() for p in pg["params"]]

    def set_lr(self, base_lr: float) -> None:
        for pg in self.param_groups:
            pg["lr"] = base_lr * pg["lr_mult"]

    def step(self, loss=None, retain_graph: bool = False) -> None:
        self.pre_step(loss, retain_graph)
        t = float(self.n_step)
        b1, b2 = self.betas
        bias_correction1 = 1 - b1 ** t
        bias_correction2_sqrt = float(np.sqrt(1 - b2 ** t))
        for pg in self.param_groups:
            lr, wd = pg["lr"], pg["weight_decay"]
            for p, g, m, v in zip(pg["params"], pg["grads"], pg["exp_avg"], pg["exp_avg_sq"]):
                if p.is_stop_grad():
                    continue
                if wd:
                    p.update(p * (1 - lr * wd))
                m.update(b1 * m + (1 - b1) * g)
                v.update(b2 * v + (1 - b2) * g * g)
                denom = jt.sqrt(v) / bias_correction2_sqrt + self.eps
                p.update(p - (lr / bias_correction1) * m / denom)
        self.post_step()

    # -------- state for resumable runs: plain numpy arrays + numbers, no pickle
    def state_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for pg in self.param_groups:
            for name, m, v in zip(pg["names"], pg["exp_avg"], pg["exp_avg_sq"]):
                out[f"exp_avg/{name}"] = m.numpy()
                out[f"exp_avg_sq/{name}"] = v.numpy()
        return out

    def load_state_arrays(self, arrays: dict[str, np.ndarray], n_step: int) -> None:
        for pg in self.param_groups:
            for name, m, v in zip(pg["names"], pg["exp_avg"], pg["exp_avg_sq"]):
                for kind, var in (("exp_avg", m), ("exp_avg_sq", v)):
                    key = f"{kind}/{name}"
                    if key not in arrays:
                        raise KeyError(f"optimizer state is missing {key!r}")
                    var.assign(jt.array(arrays[key]))
        self.n_step = int(n_step)


def lr_at(t: int, base_lr: float, max_iters: int, sched: ScheduleConfig) -> float:
    """Learning rate used during iteration t (0-based) for the given base lr.

    mm0 (mmcv, released checkpoints): poly p(t) = (base - min) * (1 - t/max)^power + min, and during
    warm-up p(t) * (1 - (1 - t/W)(1 - ratio)).
    mm1 (mmengine): LinearLR base*(ratio + (1-ratio) t/(W-1)) for t < W, then PolyLR restarted at W
    over T = max - W - 1 steps: (base - min) * (1 - (t-W)/T)^power + min."""
    w, ratio, power, min_lr = sched.warmup_iters, sched.warmup_ratio, sched.power, sched.min_lr
    if sched.style == "mm0":
        lr = (base_lr - min_lr) * (1 - t / max_iters) ** power + min_lr
        if t < w:
            lr *= 1 - (1 - t / w) * (1 - ratio)
        return lr
    if t < w:
        return base_lr * (ratio + (1 - ratio) * t / max(w - 1, 1))
    total = max(max_iters - w - 1, 1)
    return (base_lr - min_lr) * max(1 - (t - w) / total, 0.0) ** power + min_lr
