"""striate: convolutional networks in plain NumPy, after the CS231n notes.

    import striate as st
    net = st.nn.Sequential(st.nn.Conv2d(3, 16, 3, padding=1, rng=rng), st.nn.ReLU(), ...)
"""

from . import data, models, nn, optim, train
from .complexity import summary
from .diagnose.gradcheck import gradcheck
from .kernels.parallel import num_threads as get_num_threads
from .kernels.parallel import set_num_threads
from .nn.module import no_grad

__version__ = "0.1.0"
__all__ = ["data", "get_num_threads", "gradcheck", "models", "nn", "no_grad", "optim", "set_num_threads", "summary",
           "train", "__version__"]
