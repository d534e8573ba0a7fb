"""The model zoo and what works on whole models.

- the registry (`registry.py`): `get(name, num_classes, in_channels, rng, **kw)`, `from_config`, `names`,
  `register`, `native_input`;
- the zoo: LeNet-5, AlexNet, VGG, GoogLeNet and their 32×32 variants, ResNet-18/34/50, torchvision's
  GoogLeNet, the notes' three-layer net, the digits net, the reference CIFAR net, fast_cifar;
- FC→CONV conversion (`convert.py`), transfer learning (`transfer.py`), ensembles (`ensemble.py`);
- PyTorch files read without torch, safely (`torch_file.py`, `torch_unpickler.py`): `read_state_dict`.
"""

from .convert import (
    crop_scores,
    dense_map,
    dense_predict,
    dense_scores,
    padding_gap,
    to_fully_convolutional,
    total_stride,
)
from .ensemble import Ensemble, SnapshotEnsemble, predict_proba, snapshot_ensemble
from .layers import layer_list, register_layer
from .registry import builder, from_config, get, names, native_input, register
from .torch_file import UnreadableFileError, UnsafeFileError, read_state_dict
from .transfer import LoadReport, freeze, load_pretrained, load_torch_weights, replace_head, unfreeze

__all__ = [
    "Ensemble", "LoadReport", "SnapshotEnsemble", "builder", "crop_scores", "dense_map", "dense_predict",
    "dense_scores", "freeze", "from_config", "get", "layer_list", "load_pretrained", "load_torch_weights", "names",
    "native_input", "padding_gap", "predict_proba", "read_state_dict", "register", "register_layer", "replace_head",
    "snapshot_ensemble", "to_fully_convolutional", "total_stride", "UnreadableFileError", "unfreeze", "UnsafeFileError",
]
