"""Data pipeline: datasets (CIFAR-10, MNIST, image folders, embedded UCI digits), a prefetching resumable
loader, vectorised augmentation and fit/transform preprocessing. Pillow is imported only when image files
are decoded, so `import striate.data` stays light."""

from .augment import AlternatingFlip, Compose, GaussianNoise, RandomCrop, RandomFlip, RandomTranslate
from .datasets import Dataset, load, load_cifar10, load_digits, load_image_folder, load_mnist
from .datasets.image_file import MAX_PIXELS, ImageHeader, probe_image, read_image
from .errors import DataError
from .loader import DataLoader
from .pipeline import Preprocessing, augmentation
from .preprocess import (
    PCA,
    FixedStandardize,
    MeanImage,
    PerChannelMean,
    PerChannelStandardize,
    PerImageStandardize,
    PerPixelStandardize,
    Preprocessor,
    Scale,
    Whitening,
)
from .rows import Rows, take_rows

__all__ = [
    "MAX_PIXELS", "PCA", "AlternatingFlip", "Compose", "DataError", "DataLoader", "Dataset", "FixedStandardize",
    "GaussianNoise",
    "ImageHeader", "MeanImage", "PerChannelMean", "PerChannelStandardize", "PerImageStandardize", "PerPixelStandardize",
    "Preprocessing", "Preprocessor", "RandomCrop", "RandomFlip", "RandomTranslate", "Rows", "Scale",
    "Whitening", "augmentation", "load", "load_cifar10", "load_digits", "load_image_folder", "load_mnist",
    "probe_image", "read_image", "take_rows",
]
