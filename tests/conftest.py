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


@pytest.fixture
def numba_path():
    """`set_numba(bool)` for the test (compiled kernels or the NumPy path); the setting is restored after it."""
    from striate.kernels import jit

    before = jit.numba_enabled()
    yield jit.set_numba
    jit.set_numba(before)


@pytest.fixture
def threads():
    """`set_num_threads(n)` for the test; the count is restored after it (files that run every test at several
    counts override this with a parametrised fixture)."""
    from striate.kernels import parallel

    before = parallel.num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


@pytest.fixture(scope="module")
def jupyter_kernel(tmp_path_factory):
    """The name of a Jupyter kernel spec running this interpreter (`python -m ipykernel_launcher`), written into a
    temporary JUPYTER_PATH with the kernel's runtime files and IPython profile beside it: nothing installed on the
    machine is needed or read (no writable home, nobody's startup files). The kernel inherits the environment
    (PYTHONPATH included) and draws matplotlib inline. Skips without nbclient or ipykernel."""
    import json
    import sys

    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    name = "striate-test-python"
    home = tmp_path_factory.mktemp("jupyter")
    spec = home / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "striate tests", "language": "python",
        "env": {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(home))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(home / "runtime"))
        mp.setenv("IPYTHONDIR", str(home / "ipython"))
        yield name
