"""A mistake in a run file is a configuration error (exit 2, one line naming the key), never an internal error:
builder keywords striate sets itself, keyword values of the wrong type, numbers that are not finite, negative
initialiser scales, a `dtype` keyword, nesting too deep, sizes that cannot fit in memory. The fuzz test feeds
every run-file key garbage of every TOML type through the path `striate train --config` takes up to the built
run (nothing trained): each is accepted or refused with a ConfigError, nothing else."""

import re

import numpy as np
import pytest

from striate.cli import build_parser, main
from striate.cli.train import configuration
from striate.models import layers as layer_lists
from striate.models import registry
from striate.nn import init
from striate.run import RunDir, build, make_model, run_file
from striate.run.config import OPTIONS, ConfigError, defaults, resolve
from striate.run.run_file import toml_value

# one value of every type a TOML file can hold (as TOML text), and the awkward ones of each
GARBAGE = ['"x"', '""', '"-1"', "0", "-1", "9223372036854775807", "-9223372036854775808", "1.5", "-0.5", "1e300",
           "nan", "inf", "-inf", "true", "false", "[]", "[1, 2]", '[[1], ["x"]]', '[{ a = 1 }]', "{ a = 1 }", "{}",
           "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00"]


PARSER = build_parser()


@pytest.fixture(autouse=True, scope="module")
def data_once():
    """The digits read once per configuration of the data (reading them is most of a build's time)."""
    import importlib

    run_build = importlib.import_module("striate.run.build")
    cache, load = {}, run_build.load_data

    def cached(config):
        key = repr([config[k] for k in ("data", "image_size", "strict", "seed", "limit", "val_fraction")])
        if key not in cache:
            cache[key] = load(config)
        return cache[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_build, "load_data", cached)
        yield


def prepare(path, tmp_path):
    """What `striate train --config path` does before training: resolve, load the data, build the run."""
    return build(configuration(PARSER.parse_args(["train", "--config", str(path)])), RunDir(tmp_path / "run"))


def prepare_model(text: str, shape=(8, 8, 1)):
    """What `striate train --config` does with run file `text` up to its model, for 10 classes of images
    `shape` (default: the digits'), without writing the file (the fuzz of layer tables tries thousands)."""
    import tomllib

    values = run_file.checked_values(tomllib.loads(text), "run.toml")
    return make_model(resolve(values, "run.toml", base=defaults()), 10, shape)


def accepted_or_refused(text: str, tmp_path, model_only: bool | tuple = False) -> None:
    """The run file `text` builds, or raises ConfigError; any other exception fails naming the file.
    `model_only`: build only the model (True: for the digits; a shape (H, W, C): for such images)."""
    try:
        if model_only:
            prepare_model(text, *([] if model_only is True else [model_only]))
        else:
            path = tmp_path / "run.toml"
            path.write_text(text)
            prepare(path, tmp_path)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e), text
    except Exception as e:  # noqa: BLE001 - the point: nothing but a ConfigError
        pytest.fail(f"{type(e).__name__}: {e}\nfor the run file:\n{text}")


def refused(text: str, tmp_path, match: str) -> str:
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as caught:
        prepare(path, tmp_path)
    return str(caught.value)


FLAT = ("Linear", "Maxout", "DropConnect", "Dropout")  # layers of (N, D) features; the rest take images
LAYERS = [  # every layer class, for digits (8×8×1): the fuzz replaces one keyword at a time
    {"layer": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"layer": "BatchNorm", "scale": False, "momentum": 0.4},
    {"layer": "PatchWhitening", "kernel_size": 2, "eps": 0.001, "bias_epochs": 1, "method": "zca"},
    {"layer": "Scale", "factor": 0.5},
    {"layer": "Conv2d", "out_channels": 6, "kernel_size": 3, "padding": 1, "init": "dirac", "bias": False},
    {"layer": "ReLU"},
    {"layer": "GroupedConv2d", "out_channels": 4, "kernel_size": 3, "padding": 1, "groups": 2},
    {"layer": "LeakyReLU", "negative_slope": 0.1},
    {"layer": "ELU", "alpha": 1.0},
    {"layer": "GELU", "approximate": "tanh"},
    {"layer": "PReLU", "num_parameters": 4, "init": 0.25},
    {"layer": "LocalResponseNorm", "size": 3},
    {"layer": "ZeroPad2d", "top": 1, "bottom": 1, "left": 1, "right": 1},
    {"layer": "MaxPool2d", "kernel_size": 2, "stride": 2},
    {"layer": "AvgPool2d", "kernel_size": 2, "stride": 1},
    {"layer": "FractionalMaxPool2d", "output_ratio": 0.75},
    {"layer": "Dropout2d", "p": 0.1},
    {"layer": "Residual", "body": [{"layer": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}],
     "survival": 0.9},
    {"layer": "Concat", "branches": [[{"layer": "ReLU"}], [{"layer": "Tanh"}]]},
    {"layer": "Sequential", "layers": [{"layer": "Sigmoid"}]},
    {"layer": "ChannelAffine", "scale": [2.0, 1.0, 0.5, 1.0], "shift": [0.0, 0.1, 0.0, -0.1]},
    {"layer": "Flatten"},
    {"layer": "Linear", "out_features": 16, "init": "xavier", "bias_init": {"constant": 0.01}},
    {"layer": "Maxout", "out_features": 8, "pieces": 2},
    {"layer": "DropConnect", "out_features": 8, "p": 0.1},
    {"layer": "Dropout", "p": 0.1},
]


def network(table) -> list:
    """A small network around `table`: a 4-channel convolution before a layer of images (a Flatten before one
    of features), and the classifier after it."""
    if table["layer"] in FLAT:
        return [{"layer": "Flatten"}, table, {"layer": "Linear"}]
    return [{"layer": "Conv2d", "out_channels": 4, "kernel_size": 3}, table, {"layer": "Flatten"},
            {"layer": "Linear"}]


def layer_file(layers) -> str:
    return "epochs = 1\n[model]\nlayers = [\n" + "".join(f"  {toml_value(t)},\n" for t in layers) + "]\n"


def test_the_fuzz_layer_list_covers_every_layer_class():
    named = set(re.findall(r"'layer': '(\w+)'", repr(LAYERS)))
    assert named | {"GlobalAvgPool2d"} == set(layer_lists.layer_names())  # GlobalAvgPool2d has no keyword


def test_the_base_files_build(tmp_path):
    for table in LAYERS:
        assert prepare_text(layer_file(network(table)), tmp_path).model.output_shape((1, 8, 8, 1)) == (1, 10)
    assert prepare_text("[model]\nname = \"digits_net\"\nhidden = 32\n", tmp_path).model is not None


def prepare_text(text, tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return prepare(path, tmp_path)


# ----- the fuzz ---------------------------------------------------------------------------------------------

def test_fuzz_every_option_with_every_type(tmp_path):
    for option in OPTIONS:
        if option.name in ("out", "model_options") or "train" not in option.commands:
            continue  # out: the run directory (tested by its own helper); model_options: the [model] table below
        for value in GARBAGE:
            accepted_or_refused(f"{option.name} = {value}\n", tmp_path)


def test_fuzz_the_model_table_of_a_zoo_model_and_of_a_layer_list(tmp_path):
    keys = [*registry.keywords("digits_net"), *registry.SET_BY_STRIATE, "name", "width", "layers", "nonsense"]
    for key in keys:
        for value in GARBAGE:
            accepted_or_refused(f'[model]\nname = "digits_net"\n{key} = {value}\n', tmp_path)
            accepted_or_refused(f"{layer_file([{'layer': 'Flatten'}, {'layer': 'Linear'}])}{key} = {value}\n",
                                tmp_path)


def test_fuzz_the_keywords_of_every_zoo_model(tmp_path):
    for name in registry.names():
        shape = registry.native_input(name)
        if name == "layers":  # its keyword, layers, has its own fuzz
            continue
        for key in [*registry.keywords(name), "num_classes", "nonsense"]:
            for value in GARBAGE:
                with init.shapes_only():  # the weights as placeholders: a VGG's 20 M random numbers take time
                    accepted_or_refused(f'[model]\nname = "{name}"\n{key} = {value}\n', tmp_path, model_only=shape)


def test_fuzz_every_keyword_of_every_layer_table(tmp_path):
    for table in LAYERS:
        for key in sorted({"layer", "dtype", "rng", "nonsense", *table, *layer_lists.takes(table["layer"])}):
            text = layer_file(network({**table, key: "@@GARBAGE@@"}))
            for value in GARBAGE:
                accepted_or_refused(text.replace('"@@GARBAGE@@"', value), tmp_path, model_only=True)


def test_cli_a_bad_run_file_is_one_line_exit_2_and_no_run_directory(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    for text in ('[model]\nname = "digits_net"\nnum_classes = 3\n', layer_file([{"layer": "Residual", "survival": "x",
                 "body": [{"layer": "ReLU"}]}, {"layer": "Flatten"}, {"layer": "Linear"}]),
                 "[model]\nlayers = [{ layer = \"LeakyReLU\", negative_slope = nan }, { layer = \"Flatten\" }, "
                 "{ layer = \"Linear\" }]\n", 'augment = ["noise:inf"]\n', nested(200),
                 layer_file([{"layer": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 100000}, *SMALL]),
                 layer_file([{"layer": "Flatten"}, {"layer": "Linear", "out_features": 7}])):
        bad.write_text(text)
        out = tmp_path / "run"
        assert main(["train", "--config", str(bad), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("striate train: error: ") and "internal error" not in err
        assert not out.exists()


# ----- the classes of mistakes, each one line naming the key --------------------------------------------

SMALL = [{"layer": "Flatten"}, {"layer": "Linear"}]


@pytest.mark.parametrize("key", ["num_classes", "in_channels", "image_size", "rng"])
@pytest.mark.parametrize("model", ["digits_net", "three_layer", "layers"])
def test_keywords_striate_sets_itself_are_refused_naming_the_real_ones(key, model, tmp_path):
    head = layer_file(SMALL) if model == "layers" else f'data = "digits"\n[model]\nname = "{model}"\n'
    message = refused(f"{head}{key} = 3\n", tmp_path, rf"model\.{key} is set by striate")
    real = "layers (a list of layer tables)" if model == "layers" else registry.takes(model)
    assert real in message and "inspect" not in message
    if model == "digits_net":
        assert "channels=16, width=1.0, hidden=64" in message


def test_the_model_may_come_from_the_data_and_its_table_is_still_checked(tmp_path):
    refused("[model]\nnum_classes = 3\n", tmp_path, r"model\.num_classes is set by striate.*'digits_net'")


def test_an_unknown_keyword_lists_the_real_ones(tmp_path):
    message = refused(f"{layer_file(SMALL)}depth = 3\n", tmp_path, "takes no keyword 'depth'")
    assert message.endswith("its keywords: layers (a list of layer tables)")
    message = refused('[model]\nname = "three_layer"\nhidden_size = 3\n', tmp_path, "takes no keyword")
    assert "num_filters=32, filter_size=5, hidden=100, width=1.0" in message
    message = refused(layer_file([{"layer": "Conv2d", "out_channels": 2, "kernel_size": 3, "strides": 2}, *SMALL]),
                      tmp_path, r"model\.layers\[0\] \(Conv2d\): unknown keyword 'strides'.*did you mean 'stride'")
    assert "kernel_size, stride=1, padding=0, bias=True, init='he'" in message and "rng" not in message


@pytest.mark.parametrize(("table", "key"), [
    ({"layer": "Residual", "body": [{"layer": "ReLU"}], "survival": "x"}, "survival"),
    ({"layer": "Residual", "body": [{"layer": "ReLU"}], "survival": True}, "survival"),
    ({"layer": "Conv2d", "out_channels": 1e11, "kernel_size": 3}, "out_channels"),
    ({"layer": "Conv2d", "out_channels": [4], "kernel_size": 3}, "out_channels"),
    ({"layer": "Conv2d", "out_channels": 4, "kernel_size": "3"}, "kernel_size"),
    ({"layer": "Conv2d", "out_channels": 4, "kernel_size": 3, "bias": 1}, "bias"),
    ({"layer": "LeakyReLU", "negative_slope": {}}, "negative_slope"),
    ({"layer": "Dropout2d", "p": True}, "p"),
    ({"layer": "MaxPool2d", "kernel_size": 2, "rounding": 3}, "rounding"),
    ({"layer": "Sequential", "layers": [{"layer": "ELU", "alpha": "1"}]}, "layers[0].alpha"),
])
def test_a_layer_keyword_of_the_wrong_type_is_refused_when_the_file_is_read(table, key, tmp_path):
    message = refused(layer_file([table, *SMALL]), tmp_path, r"model\.layers\[0\]")
    assert key in message and "expected" in message


def test_a_zoo_keyword_of_the_wrong_type_is_refused(tmp_path):
    refused('[model]\nname = "digits_net"\nhidden = "64"\n', tmp_path, r"model\.hidden = '64': expected an integer")
    refused('[model]\nname = "reference"\nwidths = [64, "x", 3]\n', tmp_path,
            r"model\.widths = .*expected a list of 3 integers")


@pytest.mark.parametrize(("text", "key"), [
    (layer_file([{"layer": "LeakyReLU", "negative_slope": float("nan")}, *SMALL]), "negative_slope = nan"),
    (layer_file([*SMALL[:1], {"layer": "Linear", "init": {"normal": float("nan")}}]), "init.normal = nan"),
    (layer_file([*SMALL[:1], {"layer": "Linear", "bias_init": {"constant": float("inf")}}]), "bias_init.constant"),
    (layer_file([*SMALL[:1], {"layer": "Linear", "init": {"sparse": [3, float("-inf")]}}]), "init.sparse[1]"),
    (layer_file([{"layer": "PReLU", "init": float("inf")}, *SMALL]), "init = inf"),
    (layer_file([{"layer": "PReLU", "init": 1e300}, *SMALL]), "init = 1e+300"),
    (layer_file([{"layer": "BatchNorm", "eps": float("nan")}, *SMALL]), "eps = nan"),
    (layer_file([{"layer": "Residual", "body": [{"layer": "ReLU"}], "survival": float("nan")}, *SMALL]), "survival"),
    ('[model]\nname = "reference"\ndropout = nan\n', "dropout = nan"),
    ('[model]\nname = "digits_net"\nwidth = inf\n', "width = inf"),
    ('augment = ["noise:inf"]\n', "noise:inf"),
    ('augment = ["noise:nan"]\n', "noise:nan"),
    ('augment = ["noise:-inf"]\n', "noise:-inf"),
])
def test_numbers_that_are_not_finite_are_refused_naming_the_key(text, key, tmp_path):
    text = text.replace("nan,", "nan,").replace(" = inf", " = inf")  # toml_value writes Python's repr: nan, inf
    message = refused(text, tmp_path, "finite")
    assert key in message


@pytest.mark.parametrize("spec", [{"normal": -1.0}, {"normal": -1e-9}, {"sparse": [3, -0.01]}, {"sparse": 0},
                                  {"sparse": -3}, {"sparse": 2.5}, {"sparse": [1, 2, 3]}, {"constant": []},
                                  {"normal": [0.1, 0.2]}])
def test_bad_initialiser_arguments_are_refused_when_the_file_is_read(spec, tmp_path):
    message = refused(layer_file([*SMALL[:1], {"layer": "Linear", "init": spec}]), tmp_path,
                      r"model\.layers\[1\] \(Linear\): init: initialiser")
    assert "run.toml" in message


@pytest.mark.parametrize(("factory", "args"), [(init.normal, (-1.0,)), (init.normal, (float("nan"),)),
                                               (init.constant, (float("inf"),)), (init.sparse, (0,)),
                                               (init.sparse, (3, -1.0)), (init.constant, (1e39,))])
def test_initialiser_factories_check_their_arguments(factory, args):
    with pytest.raises(ValueError):
        factory(*args)


@pytest.mark.parametrize("key", ["dtype", "rng"])
def test_a_dtype_or_rng_keyword_in_a_layer_table_is_refused_before_training(key, tmp_path):
    message = refused(layer_file([*SMALL[:1], {"layer": "Linear", key: "float64"}]), tmp_path,
                      rf"model\.layers\[1\] \(Linear\): unknown keyword '{key}'")
    assert "in_features, out_features, bias=True" in message


def nested(depth: int) -> str:
    table = '{ layer = "ReLU" }'
    for _ in range(depth):
        table = f'{{ layer = "Sequential", layers = [{table}] }}'
    return f'[model]\nlayers = [{table}, {{ layer = "Flatten" }}, {{ layer = "Linear" }}]\n'


def test_a_layer_list_nested_too_deep_for_the_toml_reader_is_a_configuration_error(tmp_path):
    refused(nested(200), tmp_path, r"run\.toml.*nested too deeply")
    refused("x = " + "[" * 2000 + "]" * 2000 + "\n", tmp_path, r"run\.toml.*nested too deeply")


def test_containers_nest_at_most_max_depth(tmp_path):
    assert prepare_text(nested(layer_lists.MAX_DEPTH - 1), tmp_path).model is not None
    refused(nested(layer_lists.MAX_DEPTH + 5), tmp_path, f"containers nested more than {layer_lists.MAX_DEPTH} deep")


def test_a_deep_value_in_the_model_table_is_refused_without_recursion():
    value: list = []
    for _ in range(5000):  # deeper than Python's recursion limit
        value = [value]
    with pytest.raises(ConfigError, match=r"model\.hidden: nested more than"):
        resolve({"model_options": {"hidden": value}})


# ----- sizes that cannot fit in memory -------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    layer_file([{"layer": "Conv2d", "out_channels": 100000000000, "kernel_size": 3}, *SMALL]),
    layer_file([{"layer": "Conv2d", "out_channels": 4, "kernel_size": 3, "padding": 100000}, *SMALL]),
    layer_file([SMALL[0], {"layer": "Linear", "out_features": 10 ** 12}, {"layer": "Linear"}]),
    layer_file([{"layer": "ZeroPad2d", "top": 10 ** 8}, *SMALL]),
    "width = 1e6\n",
    '[model]\nname = "digits_net"\nwidth = 1e6\n',
    '[model]\nname = "digits_net"\nhidden = 100000000000\n',
])
def test_sizes_that_cannot_fit_in_memory_are_refused_before_allocation(text, tmp_path):
    import tracemalloc

    tracemalloc.start()
    try:
        message = refused(text, tmp_path, "cannot fit in memory")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2 ** 20  # no weight of the model was allocated
    assert "GiB" in message and "this machine's" in message and "largest layer" in message


def test_the_memory_check_compares_the_summarys_estimate_with_the_machines_memory(tmp_path, monkeypatch):
    from striate import complexity

    config = resolve({"model": "digits_net"})
    monkeypatch.setattr(complexity, "machine_memory", lambda: 2 ** 20)  # 1 MiB: too little for digits_net
    with pytest.raises(ConfigError, match=r"cannot fit in memory: a training step at batch 64 \(adam\).*1\.0 MiB"):
        make_model(config, 10, (8, 8, 1))
    monkeypatch.setattr(complexity, "machine_memory", lambda: 2 ** 30)
    model = make_model(config, 10, (8, 8, 1))
    assert model.num_parameters() > 0 and np.isfinite(model[0].weight.data).all()


def test_a_batch_holds_at_most_the_training_set(tmp_path, monkeypatch):
    from striate import complexity
    from striate.kernels import parallel

    assert prepare_text("batch_size = 1000000000000\n", tmp_path).model is not None  # one batch of 1,617 digits
    monkeypatch.setattr(parallel, "num_threads", lambda: 2)
    # 128 MiB: 46 MiB of activations for 1,617 digits and 2 threads' im2col buffers (2 × 2 × 4 MiB)
    monkeypatch.setattr(complexity, "machine_memory", lambda: 128 * 2 ** 20)
    assert prepare_text("batch_size = 1000000000000\n", tmp_path).model is not None
    config = resolve({"model": "digits_net", "batch_size": 10 ** 12})
    with pytest.raises(ConfigError, match=r"at batch 1000000000000 \(adam\)"):
        make_model(config, 10, (8, 8, 1))
    with pytest.raises(ConfigError, match=r"at batch 100000 \(adam\)"):
        make_model(config, 10, (8, 8, 1), samples=100000)


def test_the_memory_of_this_machine_is_known():
    from striate.complexity import machine_memory

    assert machine_memory() > 2 ** 26


def test_a_placeholder_model_has_the_real_ones_shapes_and_counts_for_no_memory():
    from striate.complexity import complexity

    real = registry.get("reference", 10, 3, rng=np.random.default_rng(0))
    with init.shapes_only():
        sketch = registry.get("reference", 10, 3, rng=np.random.default_rng(0))
    a, b = complexity(real, (32, 32, 3), 8), complexity(sketch, (32, 32, 3), 8)
    assert [r.params for r in a.rows] == [r.params for r in b.rows] and a.total_macs == b.total_macs
    assert a.training_memory(64, "adam").total == b.training_memory(64, "adam").total
    assert all(p.data.strides == (0,) * p.data.ndim for p in sketch.parameters())
    assert not init.placeholders()  # the mode ends with its block


def test_summary_of_a_run_file_too_big_to_train_still_prints_its_estimate(tmp_path, capsys):
    path = tmp_path / "big.toml"
    path.write_text(layer_file([{"layer": "Conv2d", "out_channels": 100000000000, "kernel_size": 3}, *SMALL]))
    assert main(["summary", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Conv2d(1→100000000000, 3×3)" in out and "1,000,000,000,000" in out and "GiB" in out


def test_a_weight_too_large_for_any_array_is_a_configuration_error(tmp_path):
    refused(layer_file([{"layer": "ZeroPad2d", "top": 10 ** 18}, *SMALL]), tmp_path,
            r"model\.layers\[2\] \(Linear\): a weight of shape \(\d+, 10\) is too large")
