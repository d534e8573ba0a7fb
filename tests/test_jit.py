"""The optional numba kernels (`kernels/jit.py`): `import striate` never imports numba; where numba is
installed the compiled passes give bit-identical results to the NumPy ones (both paths run here); without it,
or with STRIATE_NUMBA=0, the NumPy kernels run."""

import subprocess
import sys

import numpy as np
import pytest

from striate.kernels import jit
from striate.kernels.pool import max_pool2d_backward, max_pool2d_forward
from striate.nn import MaxPool2d

HAS_NUMBA = jit.importlib.util.find_spec("numba") is not None


def test_import_striate_does_not_import_numba():
    code = "import sys, striate as st; st.nn.Conv2d(3, 4, 3); assert 'numba' not in sys.modules, 'numba imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_off_switch(monkeypatch, numba_path):
    monkeypatch.setattr(jit, "_enabled", None)
    monkeypatch.setenv("STRIATE_NUMBA", "0")
    assert not jit.numba_enabled() and jit.kernels() is None
    monkeypatch.setattr(jit, "_enabled", None)
    monkeypatch.setenv("STRIATE_NUMBA", "1")
    assert jit.numba_enabled() == HAS_NUMBA


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the optional extra)")
@pytest.mark.parametrize(("shape", "kernel", "stride"), [
    ((3, 8, 8, 5), (2, 2), (2, 2)),  # the zoo's pooling
    ((2, 9, 6, 3), (3, 3), (3, 3)),  # odd windows
    ((2, 12, 12, 4), (4, 4), (4, 4)),
    ((2, 8, 8, 2), (2, 2), (3, 3)),  # gaps between windows
    ((2, 6, 8, 3), (3, 2), (3, 2)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_max_pooling_is_bit_identical(rng, numba_path, shape, kernel, stride, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    x[0, :2, :2] = 0.5  # ties: the first maximum wins on both paths
    x = np.maximum(x, 0)  # ReLU outputs: many tied zeros
    results = []
    for on in (False, True):
        numba_path(on)
        y, cache = max_pool2d_forward(x, kernel, stride)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
        results.append((y, cache[1][0], max_pool2d_backward(dy, cache)))
    (y0, s0, d0), (y1, s1, d1) = results
    assert np.array_equal(y0, y1) and np.array_equal(s0, s1)
    assert np.array_equal(d0, d1) and np.array_equal(np.signbit(d0), np.signbit(d1))


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (the optional extra)")
def test_compiled_pooling_in_a_layer_and_nan(numba_path):
    numba_path(True)
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    x[1, 0, 0, 0] = np.nan
    y = MaxPool2d(2)(x)
    assert np.isnan(y[1, 0, 0, 0]) and np.array_equal(y[0], x[0, 1::2, 1::2])
