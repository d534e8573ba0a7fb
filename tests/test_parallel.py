import numpy as np
import pytest

import striate as st
from striate.kernels import parallel


def test_split_covers_range():
    for n, parts in [(10, 3), (2, 4), (7, 1), (128, 2)]:
        slices = parallel.split(n, parts)
        assert len(slices) == min(n, parts)
        assert np.concatenate([np.arange(n)[s] for s in slices]).tolist() == list(range(n))
        sizes = [s.stop - s.start for s in slices]
        assert max(sizes) - min(sizes) <= 1


def test_for_parts_runs_every_part_in_order(threads):
    threads(3)
    seen = parallel.for_parts(lambda s: (s.start, s.stop), 9, 1 << 30)
    assert seen == [(0, 3), (3, 6), (6, 9)]
    assert parallel.for_parts(lambda s: (s.start, s.stop), 9, 10) == [(0, 9)]  # small: inline
    nested = parallel.for_parts(lambda s: parallel.for_parts(lambda t: t.stop - t.start, 4, 1 << 30), 6, 1 << 30)
    # nested calls run inline, in the workers and in the caller's own part (no pool re-entry, no deadlock)
    assert nested == [[4], [4], [4]]
    with pytest.raises(ValueError):
        threads(0)


def test_layers_agree_across_thread_counts(threads, rng):
    x = rng.standard_normal((32, 16, 16, 32)).astype(np.float32)  # 1 MB: above the threading threshold
    # every convolution path splits its batch over the threads: 3×3 stride 1, 1×1, and strided (col2im)
    net = st.nn.Sequential(st.nn.Conv2d(32, 16, 3, padding=1, rng=rng), st.nn.BatchNorm(16), st.nn.ReLU(),
                           st.nn.Conv2d(16, 24, 1, rng=rng), st.nn.Conv2d(24, 16, 2, stride=2, rng=rng),
                           st.nn.MaxPool2d(2), st.nn.Flatten(), st.nn.Linear(256, 600, rng=rng),
                           st.nn.Linear(600, 10, rng=rng))
    results = []
    for n in (1, 2, 3):
        threads(n)
        net.zero_grad()
        y = net(x)
        dx = net.backward(np.ones_like(y))
        results.append((y, dx, [p.grad.copy() for p in net.parameters()]))
    for y, dx, grads in results[1:]:
        np.testing.assert_allclose(y, results[0][0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dx, results[0][1], rtol=1e-4, atol=1e-4)
        for a, b in zip(grads, results[0][2], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


def test_threads_pin_blas_to_one_thread_and_give_it_back(threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas():
        return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}

    threads(1)  # no pool, no pin left over from earlier tests
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        if blas() != {2}:
            pytest.skip("BLAS without a settable thread count")
        threads(2)  # from now on BLAS runs on one thread, whatever striate computes first
        assert st.get_num_threads() == 2
        assert blas() == {1}
        parallel.for_parts(lambda s: None, 4, 10)  # a small job, run inline: the pin holds
        assert blas() == {1}
        parallel.for_parts(lambda s: None, 4, 1 << 30)  # the pool starts
        assert blas() == {1}
        threads(1)  # the cores go back to BLAS
        assert blas() == {2}


def test_default_threads_from_the_environment(monkeypatch):
    monkeypatch.setenv("STRIATE_NUM_THREADS", "3")
    assert parallel._default_threads() == 3
    monkeypatch.setenv("STRIATE_NUM_THREADS", "")
    assert parallel._default_threads() == parallel.cores() >= 1
    monkeypatch.setenv("STRIATE_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="'many'"):
        parallel._default_threads()
    with pytest.raises(ValueError, match="whole number"):
        st.set_num_threads(0)
