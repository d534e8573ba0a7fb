"""Small data and a short training loop for the zoo / transfer / FC→CONV tests (seconds, no CIFAR)."""

from __future__ import annotations

import numpy as np

import striate as st
from striate.data import load


def digits(split: str = "train"):
    ds = load("digits", split)
    return (ds.images.astype(np.float32) / np.float32(255)), ds.labels


def on_canvas(images: np.ndarray, size: int, rng: np.random.Generator, scale: int = 3, noise: float = 0.05):
    """Each (8, 8, 1) digit enlarged `scale`× and pasted at a random place on a noisy size×size canvas."""
    n = len(images)
    big = np.kron(images, np.ones((1, scale, scale, 1), np.float32))
    side = big.shape[1]
    out = (noise * rng.standard_normal((n, size, size, 1))).astype(np.float32)
    rows = rng.integers(0, size - side + 1, n)
    cols = rng.integers(0, size - side + 1, n)
    for k in range(n):  # one paste per sample, test data only
        out[k, rows[k]:rows[k] + side, cols[k]:cols[k] + side] += big[k]
    return out


def train(model, x, y, steps: int, rng: np.random.Generator, lr: float = 0.05, batch: int = 32, momentum=0.9):
    """Plain minibatch SGD with momentum; returns the model (in eval mode)."""
    loss = st.nn.SoftmaxCrossEntropy()
    opt = st.optim.SGD(model, lr=lr, momentum=momentum)
    model.train()
    order = rng.permutation(len(x))
    pos = 0
    for _ in range(steps):
        if pos + batch > len(order):
            order, pos = rng.permutation(len(x)), 0
        idx = order[pos:pos + batch]
        pos += batch
        opt.zero_grad()
        loss(model.forward(x[idx]), y[idx])
        model.backward(loss.backward())
        opt.step()
    return model.eval()


def accuracy(model, x, y) -> float:
    model.eval()
    with st.no_grad():
        return float(np.mean(model.forward(x).argmax(axis=1) == y))
