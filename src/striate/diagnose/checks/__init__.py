"""The doctor's checks, one per file, each registered under its one name (`check.register`); imported here in
the order the doctor runs them. Adding a check: a file here (a class with `name`, `needs`, `causes` and
`run(context)`, decorated with `@register`), its import below, a cause in `causes.CAUSES` if it is new, and
its test (tests/test_doctor_boundaries.py: its WARN and FAIL boundaries on both sides)."""

from . import (  # noqa: F401, I001  (imported to register, in this order)
    inputs,
    labels,
    labels_match,
    validation_labels,
    model,
    bn_dropout,
    gradient_check,
    initial_loss,
    regularisation,
    overfit,
    learning_rate,
    activations,
    gradients,
    update_ratio,
    learning_curves,
)
