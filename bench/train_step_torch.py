"""PyTorch side of bench/train_step.sh: one full training step of mmseg 1.2.2's own SegNeXt (the
reference in ../shared/bench/torch_ref) with torch.optim.AdamW and mmseg's paramwise groups.

    .bench-ref/venv/bin/python bench/train_step_torch.py --size t --batch 8 --mode step

mode `step`: zero_grad(set_to_none), train forward + mmseg CE loss, backward, AdamW step, loss.item()
(what the project's trainer does per iteration). mode `fwdbwd`: forward + loss + autograd.grad of
every parameter (no optimizer), as ../shared/bench/bench_torch.py. Inputs are random (seed 0); the
weights are the reference's default init. Prints `RESULT {json}` with the median seconds per step.
The param groups follow the configs (optimizer.custom_keys of configs/segnext_*.yaml: pos_block and
norm decay_mult 0, head lr_mult 10) with mmcv's key matching (sorted by name, then longest first;
the first key contained in the parameter name wins), so every group has the project's lr and decay.
"""
import os, sys
from pathlib import Path
import torch

BENCH = Path(os.environ.get("SEGNEXT_BENCH_DIR", Path(__file__).resolve().parents[2] / "shared" / "bench"))
sys.path.insert(0, str(BENCH / "torch_ref"))
import ref_segnext as R  # noqa: E402
from _train_step_common import print_result, random_batch, step_parser, time_steps  # noqa: E402

CUSTOM_KEYS = {"pos_block": {"decay_mult": 0.0}, "norm": {"decay_mult": 0.0}, "head": {"lr_mult": 10.0}}
LR, WEIGHT_DECAY, BETAS, EPS = 6e-5, 0.01, (0.9, 0.999), 1e-8


def param_groups(model):
    keys = sorted(sorted(CUSTOM_KEYS), key=len, reverse=True)
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = next((k for k in keys if k in name), None)
        rule = CUSTOM_KEYS.get(key, {})
        lr_mult, decay_mult = rule.get("lr_mult", 1.0), rule.get("decay_mult", 1.0)
        g = groups.setdefault((lr_mult, decay_mult), {"params": [], "lr": LR * lr_mult,
                                                     "weight_decay": WEIGHT_DECAY * decay_mult})
        g["params"].append(p)
    return list(groups.values())


def main():
    ap = step_parser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = R.build_model(a.size).train()
    x_np, label_np = random_batch(a.batch, a.res)
    x, label = torch.from_numpy(x_np), torch.from_numpy(label_np)
    groups = param_groups(model)
    opt = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY)
    params = [p for g in groups for p in g["params"]]

    def step():
        if a.mode == "step":
            opt.zero_grad(set_to_none=True)
            loss = model.loss(x, label)["losses"]["loss_ce"]
            loss.backward()
            opt.step()
            return loss.item()
        loss = model.loss(x, label)["losses"]["loss_ce"]
        torch.autograd.grad(loss, params)
        return loss.item()

    ts = time_steps(step, a.warmup, a.runs)
    print_result("torch", a, ts, threads=a.threads,
                 groups=[[len(g["params"]), g["lr"], g["weight_decay"]] for g in groups])

if __name__ == "__main__":
    main()
