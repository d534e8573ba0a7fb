"""Module.load_state_dict never casts lossily, and a refused load changes nothing."""

import numpy as np
import pytest

import striate as st


def net(rng, dtype=np.float32):
    return st.nn.Sequential(st.nn.Linear(4, 3, rng=rng, dtype=dtype), st.nn.BatchNorm(3, dtype=dtype))


def unchanged(model, before):
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.bool_, np.complex64])
def test_non_floating_arrays_never_load_into_weights(rng, dtype):
    model = net(rng)
    before = model.state_dict()
    state = {k: v + 1 for k, v in before.items()}  # every other key would change if assigned
    state["0.weight"] = np.ones((4, 3), dtype)
    for cast in (False, True):
        with pytest.raises(ValueError) as info:
            model.load_state_dict(state, cast=cast)
        message = str(info.value)
        assert message.startswith(f"load_state_dict: '0.weight' is {np.dtype(dtype)}, the model stores float32: ")
        assert "never loaded into floating parameters" in message
        unchanged(model, before)


def test_float16_and_exact_float64_load(rng):
    model = net(rng)
    state = model.state_dict()
    half = (state["0.weight"] * 3).astype(np.float16)
    exact = np.array([0.5, -1.25, 3.0], np.float64)
    model.load_state_dict({**state, "0.weight": half, "0.bias": exact, "1.running_var": exact.astype(np.float32)})
    np.testing.assert_array_equal(model[0].weight.data, half.astype(np.float32))
    np.testing.assert_array_equal(model[0].bias.data, exact.astype(np.float32))
    assert model[0].weight.data.dtype == np.float32  # the parameter keeps its dtype and identity
    nonfinite = np.array([np.nan, np.inf, -np.inf])  # a diverged checkpoint is refused elsewhere, not here
    model.load_state_dict({**state, "0.bias": nonfinite})
    np.testing.assert_array_equal(model[0].bias.data, nonfinite.astype(np.float32))


def test_inexact_float64_needs_cast(rng):
    model = net(rng)
    before = model.state_dict()
    weight = np.random.default_rng(1).standard_normal((4, 3))  # float64: not float32 values
    state = {**{k: v + 1 for k, v in before.items()}, "0.weight": weight}
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert message.startswith("load_state_dict: '0.weight' is float64, the model stores float32: "
                              "12 of 12 values are not exactly representable (e.g. "), message
    assert message.endswith("; pass cast=True to round them"), message
    unchanged(model, before)
    model.load_state_dict(state, cast=True)
    np.testing.assert_array_equal(model[0].weight.data, weight.astype(np.float32))
    np.testing.assert_array_equal(model[0].bias.data, before["0.bias"] + 1)


def test_out_of_range_refused_even_with_cast(rng):
    model = net(rng)
    before = model.state_dict()
    bias = np.array([1.0, 1e300, 2.0])
    for cast in (False, True):
        with pytest.raises(ValueError, match=r"'0.bias' is float64, the model stores float32: value 1e\+300 is "
                                             r"beyond float32's range"):
            model.load_state_dict({**before, "0.bias": bias}, cast=cast)
    unchanged(model, before)


def test_float32_into_a_float64_model_and_float16_model(rng):
    wide = net(rng, np.float64)
    state = net(np.random.default_rng(3)).state_dict()
    wide.load_state_dict(state)
    np.testing.assert_array_equal(wide[0].weight.data, state["0.weight"].astype(np.float64))
    narrow = net(rng, np.float16)
    with pytest.raises(ValueError, match="'0.weight' is float32, the model stores float16"):
        narrow.load_state_dict(state)
    narrow.load_state_dict(state, cast=True)
    np.testing.assert_array_equal(narrow[0].weight.data, state["0.weight"].astype(np.float16))


@pytest.mark.parametrize("value, ok", [(np.int32(5), True), (np.float32(5.0), True), (np.float64(2.5), False),
                                       (np.float64(np.nan), False), (np.bool_(True), False),
                                       (np.uint64(2**63), False)])
def test_num_batches_tracked_takes_whole_numbers(rng, value, ok):
    model = net(rng)
    before = model.state_dict()
    state = {**before, "1.num_batches_tracked": np.asarray(value)}
    if ok:
        model.load_state_dict(state)
        assert model[1].num_batches_tracked.dtype == np.int64 and int(model[1].num_batches_tracked) == 5
        return
    with pytest.raises(ValueError, match=f"'1.num_batches_tracked' is {np.asarray(value).dtype}, the model stores "
                                         "int64"):
        model.load_state_dict(state, cast=True)
    unchanged(model, before)


def test_bad_shape_late_in_the_dict_changes_nothing(rng):
    model = net(rng)
    before = model.state_dict()
    state = {k: v + 1 for k, v in before.items()}
    state["1.running_var"] = np.ones(4, np.float32)  # the last key: earlier ones were assigned before the fix
    with pytest.raises(ValueError, match=r"'1.running_var' has shape \(4,\), expected \(3,\)"):
        model.load_state_dict(state)
    unchanged(model, before)


def test_convert_for_load_messages():
    from striate.nn.state import convert_for_load

    target = np.zeros(2, np.float32)
    with pytest.raises(ValueError) as info:
        convert_for_load("fc.weight", np.array([0.1, 0.5]), target, what="load_pretrained into Sequential")
    assert str(info.value) == ("load_pretrained into Sequential: 'fc.weight' is float64, the model stores float32: "
                               "1 of 2 values are not exactly representable (e.g. 0.1 would become "
                               "0.10000000149011612); pass cast=True to round them")
    with pytest.raises(ValueError, match="'n' is float64, the model stores int64: value 2.5 is not a whole number"):
        convert_for_load("n", np.array(2.5), np.array(0, np.int64))
    with pytest.raises(ValueError, match="'n' is int64, the model stores int8: value 300 is outside int8's range"):
        convert_for_load("n", np.array(300), np.array(0, np.int8))
    assert convert_for_load("w", np.array([0.1, 0.5]), target, cast=True).dtype == np.float32
