"""The doctor's thresholds, one frozen table: every WARN / FAIL boundary of every check, in one place.

    from striate.diagnose.thresholds import THRESHOLDS
    THRESHOLDS.initial_loss.warn          # 0.25: |loss − chance| / chance above this is a WARN

The table is immutable (a check cannot move another's boundary by accident); a variant for an experiment is
`dataclasses.replace(THRESHOLDS, initial_loss=InitialLoss(warn=0.5))`, passed as the doctor's context's
`thresholds`. Each value's meaning is stated beside it; the check's docstring says where it comes from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Inputs:
    rms_warn: float = 3.0  # input RMS √mean(x²) above: not preprocessed (centred [0, 1] pixels ≈ 0.4, raw ≈ 120)
    rms_fail: float = 10.0
    rms_tiny_warn: float = 0.05  # below: scaled twice
    rms_tiny_fail: float = 0.01
    imbalance: float = 5.0  # the most frequent class ≥ this × the least frequent (with ≥ 20 samples of it)
    match_warn_z: float = 4.0  # 1-NN accuracy's z-score against chance at or below: labels look shuffled (WARN)
    match_fail_z: float = 2.0  # below: FAIL
    # neighbour contrast (median nearest ÷ typical distance) above which a 1-NN test near chance is inconclusive
    # (SKIP): digits and MNIST-like images ≈ 0.38 … 0.45, natural photos (CIFAR-10) ≈ 0.60 … 0.63
    match_contrast: float = 0.5


@dataclass(frozen=True)
class Model:
    dropout_warn: float = 0.75  # dropout p (the probability of dropping) at or above
    dropout_fail: float = 0.9
    bn_slow: float = 1e-3  # BatchNorm momentum at or below: stale running statistics
    bn_last: float = 0.5  # at or above: the running statistics are the last batch's


@dataclass(frozen=True)
class BnDropout:
    shift_warn: float = 1.1  # a BatchNorm's input variance, dropout on against off (either way), at or above


@dataclass(frozen=True)
class GradientCheck:
    tol: float = 1e-5  # relative error in float64 above: suspicious (WARN)
    fail_tol: float = 1e-3  # above: wrong (FAIL)


@dataclass(frozen=True)
class InitialLoss:
    warn: float = 0.25  # |loss − chance| / chance above: WARN (either side of chance)
    fail: float = 1.0  # (loss − chance) / chance above: FAIL
    fail_below: float = 0.5  # loss / chance below: FAIL (a loss cannot fall more than 100 % below chance)


@dataclass(frozen=True)
class Regularisation:
    strong_warn: float = 2.0  # the penalty you train with, against the data loss at initialisation
    strong_fail: float = 10.0


@dataclass(frozen=True)
class LearningRate:
    explode_factor: float = 3.0  # the short run's loss above this × its initial value: exploded
    flat_fail: float = 0.03  # the short run's relative loss drop below: too low (FAIL)
    flat_warn: float = 0.10  # below: too low (WARN); a rise by more than this: too high
    far_below: float = 30.0  # lr this × under the range test's suggestion: too low


@dataclass(frozen=True)
class Activations:
    collapse: float = 0.01  # a bounded layer's std (a sigmoid's ×4) below: collapsed (FAIL)
    collapse_warn: float = 0.05
    shrink: float = 0.05  # an unbounded layer's std against the first activation layer's, below: FAIL
    shrink_warn: float = 0.2
    grow: float = 30.0  # the largest activation std against the input's RMS, above: FAIL
    grow_warn: float = 12.0
    saturated_fail: float = 0.5  # share of a bounded layer's values near its bounds, above
    saturated_warn: float = 0.2
    dead_fail: float = 0.7  # share of a ReLU layer's units that never fire (layers of ≥ 8 units), at or above
    dead_warn: float = 0.4
    zero_fail: float = 0.95  # share of a ReLU layer's outputs that are zero, at or above
    zero_warn: float = 0.85
    large_input: float = 5.0  # input RMS above which the input's scale is the visible cause
    large_gain: float = 2.5  # weight RMS·√fan_in above: too large (Xavier 1, He 1.41)
    small_gain: float = 0.5  # below: too small


@dataclass(frozen=True)
class Gradients:
    vanish: float = 1e-3  # the gradient RMS at a lower layer against the top layer's, below: FAIL
    vanish_warn: float = 1e-2
    explode: float = 1e3  # above: FAIL
    explode_warn: float = 1e2


@dataclass(frozen=True)
class UpdateRatio:
    low: float = 1e-4  # the typical ‖ΔW‖/‖W‖ below: too low (WARN)
    high: float = 3e-2  # above: too high (WARN)
    low_fail: float = 1e-5
    high_fail: float = 0.1
    skip_first: float = 0.1  # the share of the first records left out (the optimizer's state warms up)


@dataclass(frozen=True)
class LearningCurves:
    explode_factor: float = 3.0  # the loss above this × its first value: exploded
    gap_warn: float = 0.1  # training minus validation accuracy above: overfitting (WARN)
    gap_fail: float = 0.25
    good_accuracy: float = 0.9  # both accuracies below this (and close): underfitting
    chance_margin: float = 0.05  # validation accuracy at most this above chance: at chance
    plateau: float = 0.01  # relative fall of the smoothed loss over the last quarter below: a plateau
    noise: float = 0.05  # step-to-step jumps against the initial loss above: noisy
    mismatch: float = 0.05  # training-mode minus eval-mode accuracy on the same data above: eval mismatch


@dataclass(frozen=True)
class Thresholds:
    inputs: Inputs = field(default_factory=Inputs)
    model: Model = field(default_factory=Model)
    bn_dropout: BnDropout = field(default_factory=BnDropout)
    gradient_check: GradientCheck = field(default_factory=GradientCheck)
    initial_loss: InitialLoss = field(default_factory=InitialLoss)
    regularisation: Regularisation = field(default_factory=Regularisation)
    learning_rate: LearningRate = field(default_factory=LearningRate)
    activations: Activations = field(default_factory=Activations)
    gradients: Gradients = field(default_factory=Gradients)
    update_ratio: UpdateRatio = field(default_factory=UpdateRatio)
    learning_curves: LearningCurves = field(default_factory=LearningCurves)


THRESHOLDS = Thresholds()
