"""Published weights: the one table from a name (`torchvision:resnet18`) to torchvision's ImageNet file (URL,
file name, SHA-256 prefix), the zoo model and the `load_torch_weights` name map that read it, and the input
convention the weights were trained with; `fetch` downloads a file once into the data cache, verified, and
`imagenet_classes()` gives the 1000 class names their heads predict.

    entry = pretrained.lookup("torchvision:resnet18")      # or "resnet18"
    path = pretrained.fetch(entry)                          # <cache>/weights/resnet18-f37072fd.pth, verified
    model = get(entry.model, 1000, 3, **entry.keywords)     # then load_torch_weights(model, path, arch=entry.arch)

Files come from `BASE_URL` (torchvision's) unless `$STRIATE_WEIGHTS_URL` names another base URL (a mirror,
or a test's local server), to which the file name is appended. torchvision puts the first 8 hex digits of a
file's SHA-256 in its name (`resnet18-f37072fd.pth`): the download is verified against that prefix, and a
broken one resumes (`data.datasets.download`). Once cached, a file is used offline.

The input convention (torchvision's `ImageClassification`): resize the shorter side to 256 (bilinear,
antialiased), centre-crop 224×224, scale to [0, 1], subtract ImageNet's mean and divide by its std per
channel (`data.preprocess.FIXED_STATISTICS["imagenet"]`). resnet50 is torchvision's V1 weights
(`resnet50-0676ba61.pth`, 76.1 % top-1), for the architecture torchvision builds by default (ResNet "v1.5":
the stride on the bottleneck's 3×3 convolution, as the zoo's `resnet50`); its V2 weights need another
convention (resize 232) and are not listed.
"""

from __future__ import annotations

import difflib
import functools
import os
from dataclasses import dataclass
from pathlib import Path

BASE_URL = "https://download.pytorch.org/models/"
URL_ENV = "STRIATE_WEIGHTS_URL"  # another base URL for the files: a mirror, or a test's local server
SCHEME = "torchvision:"
CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")  # package data: torchvision's categories


@dataclass(frozen=True)
class Convention:
    """How the weights' inputs were made: the shorter side resized to `resize`, a centre crop of `crop`×`crop`,
    then the `preprocess` pipeline (`data.pipeline.PREPROCESS`: fixed mean and std per channel on [0, 1])."""
    resize: int = 256
    crop: int = 224
    preprocess: str = "imagenet"

    def record(self) -> dict:
        """What a run records (finetune.json's "input"): resize, crop, preprocess, mean, std."""
        from ..data.preprocess import FIXED_STATISTICS

        mean, std = FIXED_STATISTICS[self.preprocess]
        return {"resize": self.resize, "crop": self.crop, "preprocess": self.preprocess, "mean": list(mean),
                "std": list(std)}


IMAGENET = Convention()


@dataclass(frozen=True)
class Published:
    """One published file. `model` and `options`: the zoo builder and its keywords; `arch`: the name map of
    `transfer.load_torch_weights`; `sha256`: the digest's prefix torchvision puts in the file name (after its
    last '-'), unless a full digest is given."""
    name: str
    file: str
    model: str
    arch: str
    options: tuple[tuple[str, object], ...] = ()
    convention: Convention = IMAGENET
    digest: str = ""  # the full SHA-256, where one is published (torchvision publishes the prefix only)

    @property
    def keywords(self) -> dict:
        return dict(self.options)

    @property
    def sha256(self) -> str:
        return self.digest or Path(self.file).stem.rsplit("-", 1)[-1]

    @property
    def url(self) -> str:
        base = os.environ.get(URL_ENV) or BASE_URL
        return base.rstrip("/") + "/" + self.file

    def build_config(self) -> dict:
        """The zoo model's `build_config` keys (name and builder keywords), as a fine-tune's source."""
        return {"name": self.model, **self.keywords}


def _vgg(depth: int, bn: bool, file: str) -> Published:
    name = f"vgg{depth}" + ("_bn" if bn else "")
    return Published(name, file, name, name)


# torchvision's alexnet pads its first convolution by 2 on a 224 crop; the zoo's torchvision variant reads an
# unpadded 227 crop instead, whose 11×11/4 windows sit at the same places of the 256 image (crop offset 14). Not
# the same function at the border: where torchvision's outermost windows read 2 columns/rows of zero padding,
# these read the image's pixels there (the 55×55 grid, and every interior window, agree)
PUBLISHED: dict[str, Published] = {p.name: p for p in (
    Published("alexnet", "alexnet-owt-7be5be79.pth", "alexnet", "alexnet", (("variant", "torchvision"),),
              Convention(crop=227)),
    Published("googlenet", "googlenet-1378be20.pth", "googlenet_torchvision", "googlenet"),  # transform_input inside
    Published("resnet18", "resnet18-f37072fd.pth", "resnet18", "resnet18"),
    Published("resnet34", "resnet34-b627a593.pth", "resnet34", "resnet34"),
    Published("resnet50", "resnet50-0676ba61.pth", "resnet50", "resnet50"),
    _vgg(11, False, "vgg11-8a719046.pth"), _vgg(11, True, "vgg11_bn-6002323d.pth"),
    _vgg(13, False, "vgg13-19584684.pth"), _vgg(13, True, "vgg13_bn-abd245e5.pth"),
    _vgg(16, False, "vgg16-397923af.pth"), _vgg(16, True, "vgg16_bn-6c64b313.pth"),
    _vgg(19, False, "vgg19-dcbb9e9d.pth"), _vgg(19, True, "vgg19_bn-c79401a0.pth"),
)}


def names() -> list[str]:
    """The published names, e.g. 'resnet18' (`--from torchvision:resnet18`)."""
    return sorted(PUBLISHED)


def is_published(source: str) -> bool:
    """`source` names published weights: 'torchvision:NAME'."""
    return str(source).startswith(SCHEME)


def lookup(name: str) -> Published:
    """The entry for 'torchvision:NAME' or 'NAME'; ValueError naming the nearest names otherwise."""
    key = str(name).removeprefix(SCHEME)
    if key not in PUBLISHED:
        hint = difflib.get_close_matches(key, names(), n=1)
        maybe = f" (did you mean {SCHEME}{hint[0]}?)" if hint else ""
        raise ValueError(f"no published weights {name!r}{maybe}; choose from "
                         f"{', '.join(SCHEME + n for n in names())}")
    return PUBLISHED[key]


def cached_path(entry: Published, root: str | os.PathLike | None = None) -> Path:
    """Where `fetch` keeps the file: `<cache>/weights/<file>` (`data.datasets.download.cache_dir`)."""
    from ..data.datasets.download import cache_dir

    return cache_dir(root) / "weights" / entry.file


def fetch(entry: Published | str, root: str | os.PathLike | None = None, retries: int = 3,
          backoff: float = 0.5) -> Path:
    """The file of `entry` in the cache: downloaded once (resumed when broken), verified against its SHA-256
    prefix; a cached, verified file is used without the network. DataError when it cannot be had."""
    from ..data.datasets.download import download

    entry = lookup(entry) if isinstance(entry, str) else entry
    dest = cached_path(entry, root)
    if not dest.exists():
        from ..console import note

        resume = dest.with_name(dest.name + ".part").exists()
        note(f"{'resuming' if resume else 'downloading'} {entry.url} into {dest.parent} (once: later runs use the "
             "cached file) …")
    return download(entry.url, dest, sha256=entry.sha256, retries=retries, backoff=backoff)


@functools.cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names in the order of the published heads' outputs (torchvision's categories),
    read once from the package data."""
    names_ = tuple(line.strip() for line in CLASSES_FILE.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names_) != 1000:
        raise ValueError(f"{CLASSES_FILE} holds {len(names_)} class names, expected 1000")
    return names_
