"""Time to accuracy on CIFAR-10: one recipe (a striate run configuration, e.g. `cifar10_fast.toml`)
trained by striate or by PyTorch, timed from start to test accuracy.

    python bench/time_to_accuracy.py --framework striate [--config bench/cifar10_fast.toml]
    python bench/time_to_accuracy.py --framework torch   [--config bench/cifar10_fast.toml] [--seed N]

Both sides build the same pieces from the configuration with striate's run builder — data split,
preprocessing fitted on the training images, the augmenting loader and its shuffling order, the model's
initial weights — so the PyTorch side differs only where the framework does the work: forward, backward
and the optimizer step (`torch.optim.SGD` over the run's parameter groups with the same momentum and
Nesterov flag, each group's learning rate and weight decay set every step from striate's optimizer and
schedule, `CrossEntropyLoss` with the run's label smoothing and reduction, the whitening bias frozen when
striate's is, the Lookahead average: `torch_recipe.py`), in channels_last with `torch.set_num_threads`
equal to striate's thread count. The striate side is exactly `striate train --config FILE`. Each run
writes a JSON with the wall time (process start to test accuracy, data decoding included) and the test
accuracy. Scripts, not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

START = time.perf_counter()


sys.path.insert(0, os.path.dirname(__file__))
from common import compute_threads, setup_torch  # noqa: E402
from models import nhwc_to_torch, to_torch  # noqa: E402
from torch_recipe import TorchRecipe, as_labels  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def run_striate(config: dict, out: str) -> dict:
    from striate.run import RunDir, build, execute

    config = {**config, "out": out}
    RunDir(out).write_config(config)
    summary = execute(build(config, RunDir(out)))
    if "test" not in summary:  # interrupted, diverged or stopped before a test: no time to accuracy to report
        sys.exit(f"time_to_accuracy: the striate run ended '{summary['status']}' after "
                 f"{summary.get('epochs_completed', 0)} epochs without a test accuracy (run directory: {out})")
    return {"test_accuracy": summary["test"]["accuracy"], "train_seconds": summary["seconds"],
            "epochs": summary["epochs_completed"]}


def run_torch(config: dict, out: str) -> dict:
    from striate.run import RunDir, build
    from striate.train.tta import averages_logits, weighted_views

    torch = setup_torch()
    run = build({**config, "report": "off", "diagnostics": 0}, RunDir(out))  # the same data, loader and weights
    net = to_torch(run.model, torch)
    recipe = TorchRecipe(torch, run, net)
    loader, t, train_start = run.train_loader, 0, time.perf_counter()
    for epoch in range(config["epochs"]):
        recipe.begin_epoch(epoch)
        net.train()
        loss_sum, correct, seen, tick = 0.0, 0, 0, time.perf_counter()
        for x, y in loader:
            recipe.set_step(t)
            tx, ty = nhwc_to_torch(torch, x), as_labels(torch, y)
            recipe.opt.zero_grad(set_to_none=True)
            scores = net(tx)
            loss, summed = recipe.batch_loss(scores, ty)
            loss.backward()
            recipe.opt.step()
            t += 1
            recipe.after_step(t)
            loss_sum += summed
            correct += int((scores.argmax(1) == ty).sum())
            seen += len(y)
        print(f"epoch {epoch + 1}/{config['epochs']}  loss {loss_sum / seen:.4f}  acc {100 * correct / seen:.2f}%  "
              f"{time.perf_counter() - tick:.1f}s", file=sys.stderr, flush=True)
    recipe.finish()
    train_seconds = time.perf_counter() - train_start
    test = run.data.test
    xs = run.preprocess(test.images)
    net.eval()
    correct, average = 0, (lambda s: s) if averages_logits(config["tta"]) else (lambda s: torch.softmax(s, 1))
    with torch.no_grad():
        for i in range(0, len(xs), 500):  # as striate: flip averages probabilities, flip-translate logits
            pairs = weighted_views(xs[i:i + 500], config["tta"])
            scores = sum(w * average(net(nhwc_to_torch(torch, v))) for v, w in pairs)
            correct += int((scores.argmax(1).numpy() == test.labels[i:i + 500]).sum())
    return {"test_accuracy": correct / len(xs), "train_seconds": round(train_seconds, 3), "epochs": config["epochs"]}


def main() -> None:
    from striate.run import config as cfg
    from striate.run import run_file

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", choices=("striate", "torch"), required=True)
    p.add_argument("--config", default=os.path.join(HERE, "cifar10_fast.toml"), help="striate run configuration")
    p.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    p.add_argument("--json", default=None, help="write the result here (default: time_to_accuracy_<framework>.json)")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (default: the run file's)")
    args = p.parse_args()
    config = cfg.resolve(run_file.load_run_file(args.config), where=args.config)
    if args.seed is not None:
        config["seed"] = args.seed
    out = args.out or tempfile.mkdtemp(prefix=f"tta-{args.framework}-")
    result = (run_striate if args.framework == "striate" else run_torch)(config, out)
    result.update(framework=args.framework, config=os.path.relpath(args.config),
                  wall_seconds=round(time.perf_counter() - START, 1), threads=compute_threads())
    if args.framework == "torch":
        import torch

        result["torch"] = torch.__version__
    path = args.json or f"time_to_accuracy_{args.framework}.json"
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
