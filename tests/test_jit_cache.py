"""numba's on-disk cache of the compiled kernels (`cache=True`): where no cache location is writable (a read-only
install and no writable home), `jit.compiled` still loads the kernels, caching them in a private temporary
directory, instead of failing with numba's "no locator available"."""

import shutil
import subprocess
import sys

import pytest

from striate.kernels import jit

pytestmark = pytest.mark.skipif(jit.importlib.util.find_spec("numba") is None, reason="numba is not installed")

# In a fresh interpreter: no numba cache locator applies (as with a read-only package and home), then load the
# pooling kernels; defining them is enough (numba compiles at the first call, and raises the error at definition).
CODE = """
import numba
from numba.core import caching
caching.CacheImpl._locator_classes = [caching.UserProvidedCacheLocator]
numba.config.CACHE_DIR = ""
from striate.kernels import jit
jit.set_numba(True)
assert jit.compiled("pool") is not None
print(numba.config.CACHE_DIR)
"""


def test_kernels_load_where_no_cache_location_is_writable():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cache_dir = out.stdout.strip().splitlines()[-1]
    assert "striate-numba-" in cache_dir
    shutil.rmtree(cache_dir, ignore_errors=True)
