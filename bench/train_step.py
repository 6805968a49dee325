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
import segnext_jt
from _train_step_common import print_result, random_batch, step_parser, time_steps


def main():
    ap = step_parser()
    ap.add_argument("--config", default=None, help="default configs/segnext_{size}.yaml")
    a = ap.parse_args()
    cfg = segnext_jt.load_config(a.config or f"configs/segnext_{a.size}.yaml")
    model = segnext_jt.build_segmentor(cfg)
    import jittor as jt
    from segnext_jt.engine.optim import AdamW, build_param_groups
    model.train()
    x_np, label_np = random_batch(a.batch, a.res)
    label_np = label_np.astype("int32")
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

    ts = time_steps(step, a.warmup, a.runs, before=lambda: jt.sync_all(True))
    groups = [[len(pg["params"]), pg["lr"], pg["weight_decay"]] for pg in opt.param_groups] if a.mode == "step" else []
    print_result("project", a, ts, groups=groups)

if __name__ == "__main__":
    main()
