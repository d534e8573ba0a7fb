import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def one_blas_thread():
    """Tests are not benchmarks: on a shared 2-core machine OpenBLAS's threads only contend on the
    small matrices tests use (measured up to 10× slower), so every test runs on one BLAS thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(1):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch
