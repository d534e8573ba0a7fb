"""The top of a run's page: what was trained (`subtitle`), the numbers a person looks for first
(`headline`, from `current_summary`), the doctor's diagnosis (`diagnosis`) and its verdict table
(`verdict_table`; both from `striate.markup`, which the notebook displays share), and the configuration
(`config_table`). Plain HTML; no figure."""

from __future__ import annotations

import html
import json
import re

from ..markup import diagnosis, verdict_counts, verdict_table  # noqa: F401 (the page's pieces, shared)
from .style import card, count, duration, headline_row, percent


def effective_config(saved: dict | None) -> dict:
    """config.json's settings with every resume's changes applied in order (as `RunDir.read_config`)."""
    if not saved:
        return {}
    config = {k: v for k, v in saved.items() if k != "resume"}
    for r in saved.get("resume") or []:
        config.update(r.get("changed") or {})
    return config


def subtitle(config: dict) -> str:
    """'digits_net on digits · adam, lr 0.001 (constant) · batch 64 · 3 epochs · seed 0'."""
    if not config:
        return ""
    bits = []
    if config.get("model"):
        bits.append(f"{config['model']}" + (f" on {config['data']}" if config.get("data") else ""))
    if config.get("optimizer"):
        opt = f"{config['optimizer']}"
        if config.get("lr") is not None:
            opt += f", lr {config['lr']:g}" + (f" ({config['schedule']})" if config.get("schedule") else "")
        bits.append(opt)
    for key, fmt in (("batch_size", "batch {}"), ("epochs", "{} epochs"), ("seed", "seed {}")):
        if config.get(key) is not None:
            bits.append("1 epoch" if key == "epochs" and config[key] == 1 else fmt.format(config[key]))
    return "<p class='sub'>" + html.escape(" · ".join(bits)) + "</p>"


def _from_history(epochs: list[dict]) -> dict:
    """A summary while training runs (no summary.json yet, or a stale one from before a resume)."""
    from .history import best_epoch, epoch_number

    best = best_epoch(epochs)
    number = epoch_number(epochs)
    out = {"status": "running", "epochs_completed": len(epochs),
           "seconds": sum(float(e.get("time") or 0) for e in epochs) or None}
    if best is not None and best.get("val_accuracy") is not None:
        out.update(best_val_accuracy=best["val_accuracy"], best_epoch=number(best))
    elif best is not None and best.get("accuracy") is not None:
        out.update(best_train_accuracy=best["accuracy"], best_epoch=number(best))
    if epochs:
        out["iterations"] = epochs[-1].get("iteration")
    return out


def current_summary(summary: dict | None, epochs: list[dict]) -> dict:
    """summary.json's numbers, or while the run trains (no summary.json, or one older than the history) the
    history's, keeping the summary's parameters and MACs."""
    if summary is None or (summary.get("epochs_completed") or 0) < len(epochs):
        return {**{k: (summary or {}).get(k) for k in ("parameters", "macs")}, **_from_history(epochs)}
    return summary


def headline(summary: dict | None, config: dict | None = None, epochs: list[dict] | None = None) -> str:
    """The numbers a person looks for first: status, test accuracy, best validation accuracy and its
    epoch, parameters, MACs per image, wall time and epochs. While the run trains (no summary.json, or one
    older than the history) they come from the history."""
    config, epochs = config or {}, epochs or []
    summary = current_summary(summary, epochs)
    planned = config.get("epochs")
    status = summary.get("status") or "–"
    reason = re.split(r"[:(]", summary.get("stop_reason") or "")[0].strip()  # the page's meta line has it all
    cards = [card("status", "status", status, reason[:50], status)]
    test = summary.get("test") or {}
    if test.get("accuracy") is not None:
        detail = f"on {test.get('count', 0):,} images"
        cards.append(card("test", "test accuracy", percent(test["accuracy"]), detail))
    else:
        cards.append(card("test", "test accuracy", "–", "after training" if status == "running" else
                           "not evaluated"))
    best, label = summary.get("best_val_accuracy"), "best val accuracy"
    if best is None and summary.get("best_train_accuracy") is not None:
        best, label = summary["best_train_accuracy"], "best train accuracy"
    epoch = summary.get("best_epoch")
    cards.append(card("best", label, percent(best), "" if epoch is None else f"epoch {epoch}"))
    params, macs = summary.get("parameters"), summary.get("macs")
    cards.append(card("parameters", "parameters", count(params), "" if params is None else f"{params:,}"))
    cards.append(card("MACs", "MACs / image", count(macs), "" if macs is None else f"{macs:,} multiply-adds"))
    iterations = summary.get("iterations")
    cards.append(card("wall", "wall time", duration(summary.get("seconds")),
                       "" if iterations is None else f"{iterations:,} iterations"))
    done = summary.get("epochs_completed")
    cards.append(card("epochs", "epochs", "–" if done is None else done,
                       "" if planned is None else f"of {planned}"))
    return headline_row(cards)


def config_table(config: dict) -> str:
    """The configuration as a collapsed two-column table."""
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(v)}</td></tr>" for k, v in text.items())
    return f"<details><summary>configuration</summary><table class='v'>{rows}</table></details>"
