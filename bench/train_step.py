"""Project side of bench/train_step.sh: one training step as the trainer runs it
(segnext_jt/engine/trainer.py Trainer._step): AdamW.set_lr, model.loss, AdamW.step(loss), one
jt.sync_all(), the loss values read with .item().

    PYTHONPATH=$PWD .venv/bin/python bench/train_step.py --size t --batch 8 --mode step

mode `step`: the above, with the optimizer built from the config exactly as the trainer builds it
(build_param_groups + AdamW). mode `fwdbwd`: model.loss + jt.grad of every parameter, no optimizer,
with retain_graph=False as the optimizer's backward (and torch.autograd.grad) does.
../shared/bench/bench_project.py calls jt.grad with Jittor's default retain_graph=True, which keeps
the whole forward graph alive: 3.67 instead of 2.11 GB peak RSS for SegNeXt-T at batch 8, 256². Random inputs (seed 0), default init. The first --warmup
steps compile kernels and are not counted. Prints `RESULT {json}` with the median seconds per step.
"""
import argparse, json, statistics, time
import numpy as np
import segnext_jt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="t", choices=["t", "s", "b", "l"])
    ap.add_argument("--mode", default="step", choices=["step", "fwdbwd"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--res", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--config", default=None, help="default configs/segnext_{size}.yaml")
    a = ap.parse_args()
    cfg = segnext_jt.load_config(a.config or f"configs/segnext_{a.size}.yaml")
    model = segnext_jt.build_segmentor(cfg)
    import jittor as jt
    from segnext_jt.engine.optim import AdamW, build_param_groups
    model.train()
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((a.batch, 3, a.res, a.res), dtype=np.float32)
    label_np = rng.integers(0, 150, (a.batch, a.res, a.res)).astype(np.int32)
    label_np[:, :8, :8] = 255
    o = cfg.train.optimizer
    opt = AdamW(build_param_groups(model, o), o.lr, o.betas, o.eps)
    params = [p for p in model.parameters() if p.requires_grad]
    jt.sync_all(True)

    def step():
        img, label = jt.array(x_np), jt.array(label_np)  # fresh per step, as the trainer's batches
        if a.mode == "step":
            opt.set_lr(o.lr)
            losses = model.loss(img, label)
            opt.step(losses["loss"])
            jt.sync_all()
            return {k: float(v.item()) for k, v in losses.items()}
        loss = model.loss(img, label)["loss"]
        jt.sync(jt.grad(loss, params, retain_graph=False) + [loss])
        return float(loss.item())

    ts = []
    for _ in range(a.warmup + a.runs):
        jt.sync_all(True)
        t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
    groups = [[len(pg["params"]), pg["lr"], pg["weight_decay"]] for pg in opt.param_groups] if a.mode == "step" else []
    print("RESULT", json.dumps({"impl": "project", "size": a.size, "mode": a.mode, "batch": a.batch,
                                "res": a.res, "s": statistics.median(ts[a.warmup:]), "times": ts,
                                "groups": groups}), flush=True)


if __name__ == "__main__":
    main()
