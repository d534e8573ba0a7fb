"""Layers, containers, losses and initialisers. Images are NHWC, arrays float32 by default."""

from . import init
from .activation import ELU, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Tanh
from .containers import Concat, Residual, Sequential
from .conv import Conv2d
from .dropout import DropConnect, Dropout, Dropout2d
from .errors import LayerError
from .linear import Linear
from .losses import L1, L2, MulticlassSVM, SoftmaxCrossEntropy, l1, l2, log_softmax, softmax
from .module import Module, Parameter, grad_enabled, no_grad
from .norm import BatchNorm
from .pool import AvgPool2d, FractionalMaxPool2d, GlobalAvgPool2d, MaxPool2d
from .shape import Flatten

__all__ = [
    "BatchNorm", "DropConnect", "Dropout", "Dropout2d", "ELU", "LeakyReLU", "Maxout", "PReLU", "ReLU", "Sigmoid",
    "Tanh",
    "AvgPool2d", "FractionalMaxPool2d", "GlobalAvgPool2d", "MaxPool2d",
    "Concat", "Conv2d", "Flatten", "L1", "L2", "LayerError", "Linear", "Module", "MulticlassSVM", "Parameter",
    "Residual", "Sequential", "SoftmaxCrossEntropy", "grad_enabled", "init", "l1", "l2", "log_softmax",
    "no_grad", "softmax",
]
