"""The doctor's fixed vocabulary of root causes: every `Verdict.cause` and `DoctorReport.diagnosis` is one
of these codes (tests and scripts compare against them; the advice carries the words a person reads).

Listed most fundamental first — the order in which the diagnosis prefers a root cause when several
checks fail (a problem in the data or the model's construction makes every training symptom follow):

| code | meaning |
|---|---|
| `nonfinite_inputs` | NaN or inf in the inputs |
| `constant_inputs` | every input is the same (blank images): nothing to learn from |
| `labels_out_of_range` | a label outside 0 … C − 1 for the model's C outputs |
| `single_class` | every label is the same class |
| `wrong_backward` | a layer's (or the loss's) backward disagrees with its forward |
| `frozen` | nothing trainable, or trainable weights that get no gradient at all |
| `inputs_not_preprocessed` | raw inputs (0 … 255 pixels, large offsets or scales): not centred and scaled |
| `labels_shuffled` | the labels do not belong to their images (misaligned or shuffled) |
| `symmetric_init` | a weight tensor with all values equal (zero or constant initialisation) |
| `missing_nonlinearity` | weighted layers stacked with no nonlinearity between them: one linear map |
| `regularization_too_strong` | the penalty dominates the loss, or dropout drops nearly everything |
| `eval_mismatch` | the model scores worse in eval mode than in training mode on the same data (BatchNorm statistics) |
| `variance_shift` | a BatchNorm after a dropout: running statistics gathered with dropout on, used with it off |
| `dead_units` | ReLU units that never fire / layers whose outputs are mostly zero (a negative bias) |
| `weights_too_large` | initial weights too large: saturated tanh/sigmoid, exploding activations or scores |
| `weights_too_small` | initial weights too small: activations and gradients collapse with depth |
| `lr_too_high` | the learning rate is too high: the loss explodes, updates are too large |
| `lr_too_low` | the learning rate is too low: the loss barely moves, updates are tiny |
| `bad_initial_loss` | the loss at initialisation is far from its chance value, with healthy weights |
| `regularization_ineffective` | the weight penalty does not raise the loss: it touches no parameter |
| `class_imbalance` | the most frequent class is at least 5× as frequent as the least frequent |
| `underfitting` | training and validation accuracy both low and close: the model is too small or too constrained |
| `cannot_overfit` | the model cannot memorise a tiny subset, even with Adam |
| `overfitting` | a large gap between training and validation accuracy |
| `plateau` | the loss has stopped falling well above its minimum |
| `noisy_loss` | the loss jumps around a lot from step to step |
| `healthy` | no check found a problem |
"""

from __future__ import annotations

HEALTHY = "healthy"

# code → (what it is, what to do), in priority order: the most fundamental cause first
CAUSES: dict[str, tuple[str, str]] = {
    "nonfinite_inputs": ("the inputs contain NaN or inf", "clean the data: drop or impute the non-finite values"),
    "constant_inputs": ("every input is the same", "check the data loading: the inputs carry no information"),
    "labels_out_of_range": ("labels outside 0 … C − 1", "map the labels to 0 … C − 1 (an offset by one?) or give "
                            "the model one output per class"),
    "single_class": ("every label is the same class", "check the label loading: the data has one class only"),
    "wrong_backward": ("a backward pass disagrees with its forward", "fix the backward of the layer (or loss) "
                       "named"),
    "frozen": ("nothing learns: no trainable parameter gets a gradient",
               "unfreeze the parameters (requires_grad) and connect them to the loss"),
    "inputs_not_preprocessed": ("the inputs are not preprocessed", "scale the inputs to [0, 1] and subtract the "
                                "mean (or standardise each feature)"),
    "labels_shuffled": ("the labels do not belong to their images", "check that images and labels are loaded "
                        "and shuffled together (same permutation, same order)"),
    "symmetric_init": ("a weight tensor with all values equal", "initialise the weights randomly (He for ReLU, "
                       "Xavier for tanh): equal weights make every unit identical"),
    "missing_nonlinearity": ("weighted layers with no nonlinearity between them",
                             "put a nonlinearity (ReLU) between the weighted layers"),
    "regularization_too_strong": ("the regularisation overwhelms the data", "lower the weight penalty / "
                                  "dropout probability"),
    "eval_mismatch": ("the model does worse in eval mode than in training mode", "check BatchNorm's momentum "
                      "(0.1 is usual; 0 never updates the running statistics)"),
    "variance_shift": ("a BatchNorm after a dropout: its running statistics do not match evaluation",
                       "move every dropout after the last BatchNorm (into the fully connected head), or leave it "
                       "out: BatchNorm already regularises"),
    "dead_units": ("ReLU units that never fire", "use zero or small positive biases, He initialisation and a "
                   "moderate learning rate (or LeakyReLU)"),
    "weights_too_large": ("the initial weights are too large", "use Xavier (tanh/sigmoid) or He (ReLU) "
                          "initialisation, or batch normalisation"),
    "weights_too_small": ("the initial weights are too small for this depth", "use Xavier (tanh/sigmoid) or He "
                          "(ReLU) initialisation, or batch normalisation"),
    "lr_too_high": ("the learning rate is too high", "lower the learning rate"),
    "lr_too_low": ("the learning rate is too low", "raise the learning rate"),
    "bad_initial_loss": ("the initial loss is far from chance", "start from near-uniform scores: zero the last "
                         "layer's bias and check that the loss matches the labels"),
    "regularization_ineffective": ("the weight penalty does not raise the loss", "make the penalty reach the "
                                   "weights (parameters named 'weight') and add it to the loss"),
    "class_imbalance": ("the classes are strongly imbalanced", "rebalance: oversample the rare classes or weight "
                        "the loss per class; judge per-class accuracy"),
    "underfitting": ("training and validation accuracy both low", "a bigger model, less regularisation or longer "
                     "training"),
    "cannot_overfit": ("the model cannot memorise a tiny subset", "check the model and the loss on a few "
                       "examples"),
    "overfitting": ("training accuracy far above validation accuracy", "more regularisation (L2, dropout), "
                    "augmentation or more data"),
    "plateau": ("the loss has stopped falling", "decay the learning rate (step or cosine schedule)"),
    "noisy_loss": ("the loss is very noisy", "a larger batch or a lower learning rate"),
    HEALTHY: ("no problem found", "train with these settings"),
}
PRIORITY: tuple[str, ...] = tuple(c for c in CAUSES if c != HEALTHY)

# causes read from the data or the settings before any training, precise enough that even a WARN of theirs
# (inputs a bit large, a 1-NN test a bit above chance, dropout 0.8) is the root of the training FAILs it explains
PROMOTABLE = frozenset({"inputs_not_preprocessed", "labels_shuffled", "regularization_too_strong", "eval_mismatch",
                        "variance_shift"})

_TRAINING = {"lr_too_high", "lr_too_low", "cannot_overfit", "overfitting", "underfitting", "plateau", "noisy_loss",
             "labels_shuffled"}  # labels_shuffled: "validation at chance" is read as it by the curves alone
_STATS = {"dead_units", "weights_too_large", "weights_too_small"}
_ALL = set(PRIORITY)

# root → the codes its consequences show up as (a check that sees only the consequence names what its own
# evidence suggests; the diagnosis then lists it under the root)
EXPLAINS: dict[str, frozenset[str]] = {k: frozenset(v) - {k} for k, v in {
    "nonfinite_inputs": _ALL,
    "constant_inputs": _ALL,
    "labels_out_of_range": _ALL,
    "single_class": _TRAINING | {"class_imbalance", "bad_initial_loss", "eval_mismatch"},
    "wrong_backward": _TRAINING | _STATS | {"eval_mismatch", "regularization_too_strong", "frozen"},
    "frozen": _TRAINING | _STATS | {"regularization_ineffective"},
    "inputs_not_preprocessed": _TRAINING | _STATS | {"bad_initial_loss", "eval_mismatch", "nonfinite_inputs"},
    "labels_shuffled": _TRAINING | {"class_imbalance"},
    "symmetric_init": _TRAINING | _STATS | {"regularization_ineffective", "bad_initial_loss", "frozen"},
    "missing_nonlinearity": {"underfitting", "cannot_overfit", "plateau", "bad_initial_loss", "weights_too_large",
                             "weights_too_small"},
    "regularization_too_strong": _TRAINING | _STATS | {"eval_mismatch"},
    "eval_mismatch": {"overfitting", "underfitting", "plateau", "noisy_loss", "labels_shuffled", "cannot_overfit"},
    "variance_shift": {"eval_mismatch", "overfitting", "underfitting", "plateau", "noisy_loss", "labels_shuffled",
                       "cannot_overfit"},
    "dead_units": _TRAINING | {"weights_too_small", "frozen"},
    "weights_too_large": _TRAINING | {"dead_units", "bad_initial_loss", "weights_too_small"},
    "weights_too_small": _TRAINING | {"dead_units"},
    "lr_too_high": _TRAINING | _STATS | {"eval_mismatch", "bad_initial_loss"},
    "lr_too_low": {"cannot_overfit", "underfitting", "plateau", "labels_shuffled", "weights_too_small"},
    "bad_initial_loss": {"lr_too_high", "noisy_loss"},
    "regularization_ineffective": set(),
    "cannot_overfit": {"underfitting", "plateau", "lr_too_low", "labels_shuffled"},
    "class_imbalance": {"overfitting", "underfitting"},
    "overfitting": {"noisy_loss"},
    "underfitting": {"plateau", "cannot_overfit"},
    "plateau": set(),
    "noisy_loss": set(),
}.items()}

# pairs whose advice points opposite ways: never both named (the weaker one is read as a consequence)
CONFLICTS: frozenset[frozenset[str]] = frozenset(frozenset(p) for p in (
    ("weights_too_large", "weights_too_small"), ("lr_too_high", "lr_too_low"), ("lr_too_low", "labels_shuffled"),
    ("lr_too_high", "labels_shuffled"), ("overfitting", "underfitting"), ("overfitting", "cannot_overfit"),
    ("overfitting", "regularization_too_strong"), ("regularization_too_strong", "regularization_ineffective"),
))


def conflicts(a: str, b: str) -> bool:
    return frozenset((a, b)) in CONFLICTS


def explains(root: str, code: str) -> bool:
    """Whether `code` (another check's reading) can be a consequence of `root`."""
    return code == root or code in EXPLAINS.get(root, ()) or conflicts(root, code)


def meaning(code: str) -> str:
    return CAUSES[code][0] if code in CAUSES else code


def remedy(code: str) -> str:
    return CAUSES[code][1] if code in CAUSES else ""
