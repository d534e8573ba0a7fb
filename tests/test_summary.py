import numpy as np

import striate as st


def test_summary_counts(rng):
    net = st.nn.Sequential(
        st.nn.Conv2d(3, 16, 5, padding=2, rng=rng),
        st.nn.Conv2d(16, 8, 4, stride=2, padding=1, rng=rng),
        st.nn.Flatten(),
        st.nn.Linear(16 * 16 * 8, 10, rng=rng),
    )
    s = st.summary(net, (32, 32, 3))
    assert [r.output_shape for r in s.rows] == [(1, 32, 32, 16), (1, 16, 16, 8), (1, 2048), (1, 10)]
    assert [r.params for r in s.rows] == [5 * 5 * 3 * 16 + 16, 16 * 16 * 8 + 8, 0, 2048 * 10 + 10]
    assert s.rows[0].macs == 32 * 32 * 16 * 5 * 5 * 3
    assert s.total_params == net.num_parameters()
    assert s.total_macs == net.macs((1, 32, 32, 3))
    assert s.rows[1].activation_bytes == 16 * 16 * 8 * 4
    text = str(s)
    assert "Conv2d(3→16, 5×5, pad=2)" in text and f"{s.total_params:,}" in text
    big = st.summary(net, (32, 32, 3), batch_size=4)
    assert big.total_macs == 4 * s.total_macs and big.output_shape == (4, 10)
    y = net(np.zeros((1, 32, 32, 3), np.float32))
    assert y.shape == s.output_shape


def test_summary_is_the_complexity_table(rng):
    """One table: st.summary gives complexity's rows (containers expanded) from the per-sample shape."""
    from striate.complexity import Complexity, complexity

    net = st.nn.Sequential(st.nn.Conv2d(3, 4, 3, padding=1, rng=rng),
                           st.nn.Concat(st.nn.Conv2d(4, 2, 1, rng=rng), st.nn.ZeroPad2d(0)),
                           st.nn.GroupedConv2d(6, 4, 3, groups=2, rng=rng), st.nn.Flatten())
    s = st.summary(net, (8, 8, 3), batch_size=2)
    assert isinstance(s, Complexity) and s.input_shape == (2, 8, 8, 3)
    assert s.rows == complexity(net, (8, 8, 3), batch_size=2).rows
    assert [r.name for r in s.rows] == ["0", "1.0", "1.1", "1", "2", "3"]
    assert s.output_shape == net.output_shape((2, 8, 8, 3)) == (2, 6 * 6 * 4)
    assert s.total_macs == net.macs((2, 8, 8, 3)) and s.total_params == net.num_parameters()
    text = str(s)
    for column in ("output shape", "params", "MACs", "total", "GroupedConv2d(6→4, 3×3, groups=2)", "(2, 6, 6, 4)"):
        assert column in text, text
