"""Layers, containers, losses and initialisers. Images are NHWC, arrays float32 by default."""

from . import init
from .activation import ELU, GELU, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Tanh
from .affine import ChannelAffine, Scale
from .containers import Concat, Residual, Sequential
from .conv import Conv2d
from .dropout import DropConnect, Dropout, Dropout2d
from .errors import LayerError
from .folding import fold
from .grouped import GroupedConv2d
from .linear import Linear
from .losses import L1, L2, MulticlassSVM, SoftmaxCrossEntropy, l1, l2, log_softmax, softmax
from .lrn import LocalResponseNorm
from .module import Module, Parameter, grad_enabled, no_grad
from .norm import BatchNorm
from .pad import ZeroPad2d
from .pool import AvgPool2d, FractionalMaxPool2d, GlobalAvgPool2d, MaxPool2d
from .shape import Flatten
from .whitening import PatchWhitening

__all__ = [
    "AvgPool2d", "BatchNorm", "ChannelAffine", "Concat", "Conv2d", "DropConnect", "Dropout", "Dropout2d", "ELU",
    "Flatten", "FractionalMaxPool2d", "GELU", "GlobalAvgPool2d", "GroupedConv2d", "L1", "L2", "LayerError",
    "LeakyReLU", "Linear", "LocalResponseNorm", "MaxPool2d", "Maxout", "Module", "MulticlassSVM", "PReLU",
    "Parameter", "PatchWhitening", "ReLU", "Residual", "Scale", "Sequential", "Sigmoid", "SoftmaxCrossEntropy",
    "Tanh", "ZeroPad2d", "fold", "grad_enabled", "init", "l1", "l2", "log_softmax", "no_grad", "softmax",
]
