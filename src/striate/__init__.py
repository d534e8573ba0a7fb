"""striate: convolutional networks in plain NumPy, after the CS231n notes.

    import striate as st
    net = st.nn.Sequential(st.nn.Conv2d(3, 16, 3, padding=1, rng=rng), st.nn.ReLU(), ...)

Every package loads on first use (`st.nn`, `st.optim`, `st.data`, `st.models`, `st.train`, `st.diagnose`,
`st.run`, `st.search`, `st.report`), so a script that only builds a network stays light, and `import
striate` itself loads nothing but the version: the `striate` command must be able to catch a Ctrl-C before
NumPy loads (see `cli.main`).
"""

from .version import __version__

__all__ = ["data", "diagnose", "get_conv_algorithm", "get_num_threads", "gradcheck", "models", "nn", "no_grad", "optim",
           "report", "run", "search", "set_conv_algorithm", "set_num_threads", "summary", "train", "__version__"]


def __getattr__(name: str):
    """The packages and functions that load on first use. The imports are static, so every arrow is
    visible (`import striate.x as x` imports the submodule before it is looked up on this package; `from .
    import x` would look it up first and come back here)."""
    if name == "nn":
        import striate.nn as nn
        return nn
    if name == "optim":
        import striate.optim as optim
        return optim
    if name == "no_grad":
        from .nn.module import no_grad
        return no_grad
    if name in ("get_conv_algorithm", "set_conv_algorithm"):
        from .kernels import conv_algorithm
        return getattr(conv_algorithm, name)
    if name == "get_num_threads":
        from .kernels.parallel import num_threads
        return num_threads
    if name == "set_num_threads":
        from .kernels.parallel import set_num_threads
        return set_num_threads
    if name == "data":
        import striate.data as data
        return data
    if name == "models":
        import striate.models as models
        return models
    if name == "train":
        import striate.train as train
        return train
    if name == "diagnose":
        import striate.diagnose as diagnose
        return diagnose
    if name == "run":
        import striate.run as run
        return run
    if name == "search":
        import striate.search as search
        return search
    if name == "report":
        import striate.report as report
        import striate.run  # noqa: F401  (lets report.show open a run directory from a path)
        return report
    if name == "gradcheck":
        from .diagnose.gradcheck import gradcheck
        return gradcheck
    if name == "summary":
        from .complexity import summary
        return summary
    raise AttributeError(f"module 'striate' has no attribute {name!r}")
