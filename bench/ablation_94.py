"""The 94 % recipe's ablation: `examples/cifar10_94.toml` trained once per variant, each with one piece taken
out (one seed each, the same seed for all), each timed as `time_to_accuracy.py` times a striate run (process
start → test accuracy) in a process of its own, one after the other. The recipe's own run is then evaluated
again without test-time augmentation and with `flip` only: those rows need no training of their own. Writes
OUT/<variant>.json (and the run directories OUT/<variant>/) and prints the README's table; a variant whose JSON
exists is not run again, so an interrupted ablation continues where it stopped. Scripts, not tests.

    python bench/ablation_94.py --out runs/ablation [--only lookahead,altflip] [--seed 0] [--config FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

START = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
RECIPE = os.path.join(HERE, "..", "examples", "cifar10_94.toml")

VARIANTS = {  # name → (the piece taken out, the run's changed keys)
    "recipe": ("nothing (the recipe)", {}),
    "whitening": ("patch whitening → the same 2×2 convolution, trained from PyTorch's init",
                  {"model_options": {"whiten_method": "learned"}}),
    "dirac": ("Dirac initialisation → PyTorch's default", {"model_options": {"conv_init": "torch"}}),
    "frozen_gamma": ("BN scale frozen at 1 → trained", {"model_options": {"bn_scale": True}}),
    "lookahead": ("Lookahead averaging → none", {"lookahead": 0}),
    "altflip": ("alternating flip → random flip", {"augment": ["translate:2", "flip"]}),
    "translate": ("translation by 2 pixels → none", {"augment": ["altflip"]}),
    "bias_lr": ("BN biases' 64× learning rate → 1×", {"param_groups": []}),
    "label_smoothing": ("label smoothing 0.2 → 0", {"label_smoothing": 0.0}),
    "zca": ("PCA whitening filters → ZCA (U·D·Uᵀ)", {"model_options": {"whiten_method": "zca"}}),
}


def run_variant(name: str, recipe: str, seed: int, out: str) -> None:
    """Train one variant in this process (time_to_accuracy's striate side) and write OUT/<name>.json."""
    sys.path.insert(0, HERE)
    from time_to_accuracy import run_striate

    from striate.run import config as cfg
    from striate.run import run_file

    config = cfg.resolve(run_file.load_run_file(recipe), where=recipe)
    changes = VARIANTS[name][1]
    config.update({k: v for k, v in changes.items() if k != "model_options"}, seed=seed)
    config["model_options"] = {**config.get("model_options", {}), **changes.get("model_options", {})}
    result = run_striate(config, os.path.join(out, name))
    result.update(variant=name, removed=VARIANTS[name][0], seed=seed, config=os.path.relpath(recipe),
                  wall_seconds=round(time.perf_counter() - START, 1))
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=1)


def other_views(out: str) -> dict:
    """The recipe's run evaluated without TTA and with `flip`: {tta: accuracy}."""
    found = {}
    for tta in ("none", "flip"):
        done = subprocess.run([sys.executable, "-m", "striate", "eval", os.path.join(out, "recipe"), "--json",
                               "--tta", tta], capture_output=True, text=True, check=True)
        found[tta] = json.loads(done.stdout)["accuracy"]
    return found


def table(out: str) -> str:
    """The README's table from the JSON files under `out`."""
    rows, base = [], None
    for name in VARIANTS:
        path = os.path.join(out, f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            r = json.load(f)
        base = r["test_accuracy"] if name == "recipe" else base
        delta = "" if base is None or name == "recipe" else f"{100 * (r['test_accuracy'] - base):+.2f}"
        rows.append(f"| {r['removed']} | {100 * r['test_accuracy']:.2f} % | {delta} | {r['train_seconds']:.0f} s |")
        for tta, acc in r.get("other_views", {}).items():
            rows.append(f"| six-view TTA → {tta} | {100 * acc:.2f} % | {100 * (acc - r['test_accuracy']):+.2f} | "
                        f"(the recipe's run) |")
    return "\n".join(["| taken out | test accuracy | Δ (points) | training |", "|---|---:|---:|---:|", *rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory for the runs and their JSON files")
    p.add_argument("--only", default="", help=f"comma-separated variants (default: all): {', '.join(VARIANTS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default=RECIPE, help="the recipe (default: examples/cifar10_94.toml)")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)  # one variant, in this process
    args = p.parse_args()
    if args.variant:
        return run_variant(args.variant, args.config, args.seed, args.out)
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    if unknown := set(names) - set(VARIANTS):
        sys.exit(f"ablation_94: unknown variant(s) {', '.join(sorted(unknown))}; known: {', '.join(VARIANTS)}")
    os.makedirs(args.out, exist_ok=True)
    for name in names:
        if not os.path.exists(os.path.join(args.out, f"{name}.json")):
            subprocess.run([sys.executable, __file__, "--out", args.out, "--seed", str(args.seed), "--config",
                            args.config, "--variant", name], check=True)
    recipe = os.path.join(args.out, "recipe.json")
    if "recipe" in names and os.path.exists(recipe):
        with open(recipe) as f:
            r = json.load(f)
        if "other_views" not in r:
            r["other_views"] = other_views(args.out)
            with open(recipe, "w") as f:
                json.dump(r, f, indent=1)
    print(table(args.out))


if __name__ == "__main__":
    main()
