"""Paired augmentation: same geometry for image and mask, no vertical flip, deterministic."""
import cv2
import numpy as np
import pytest

from salt.augment import augment_batch, augment_pair


def blob_mask(seed):
    rng = np.random.default_rng(seed)
    m = np.zeros((101, 101), np.uint8)
    for _ in range(3):
        cv2.circle(m, tuple(int(v) for v in rng.integers(10, 90, size=2)), int(rng.integers(5, 25)), 1, -1)
    return m.astype(bool)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_same_geometry_for_image_and_mask(dtype):
    for seed in range(20):
        mask = blob_mask(seed)
        image = (mask * 255).astype(dtype) if dtype == np.uint8 else mask.astype(np.float32)
        img2, mask2 = augment_pair(image, mask, np.random.default_rng(seed), brightness=0, contrast=0)
        assert img2.dtype == dtype and mask2.dtype == bool and img2.shape == mask2.shape == (101, 101)
        thr = img2 > (127.5 if dtype == np.uint8 else 0.5)
        diff = thr != mask2
        # bilinear vs nearest may differ by a pixel at the boundary only
        assert diff.mean() < 0.01
        kernel = np.ones((3, 3), np.uint8)
        m8 = mask2.astype(np.uint8)
        boundary = cv2.dilate(m8, kernel) != cv2.erode(m8, kernel)
        assert not (diff & ~boundary).any()


def test_flip_only_is_exact():
    mask = blob_mask(1)
    image = (mask * 200).astype(np.uint8)
    flips = 0
    for seed in range(20):
        img2, mask2 = augment_pair(image, mask, np.random.default_rng(seed), shift=0, scale=0,
                                   brightness=0, contrast=0)
        flipped = not np.array_equal(mask2, mask)
        flips += flipped
        np.testing.assert_array_equal(mask2, mask[:, ::-1] if flipped else mask)
        np.testing.assert_array_equal(img2, image[:, ::-1] if flipped else image)
    assert 3 <= flips <= 17  # p = 0.5


def test_never_vertical_flip():
    mask = np.zeros((101, 101), bool)
    mask[:20, 30:70] = True  # salt only near the top
    image = np.full((101, 101), 50, np.uint8)
    image[:30] = 250
    for seed in range(50):
        img2, mask2 = augment_pair(image, mask, np.random.default_rng(seed), shift=0.1, scale=0.1)
        rows = np.flatnonzero(mask2.any(axis=1))
        assert rows.size and rows.max() < 40
        assert img2[:5].mean() > img2[-30:].mean() + 50  # the bright band stays near the top


def test_deterministic_and_varied():
    rng0 = np.random.default_rng(0)
    image = rng0.integers(0, 256, size=(101, 101), dtype=np.uint8)
    mask = blob_mask(2)
    a = augment_pair(image, mask, np.random.default_rng(5))
    b = augment_pair(image, mask, np.random.default_rng(5))
    c = augment_pair(image, mask, np.random.default_rng(6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    # inputs untouched
    assert np.array_equal(image, np.random.default_rng(0).integers(0, 256, size=(101, 101), dtype=np.uint8))


def test_intensity_on_image_only():
    mask = blob_mask(3)
    image = np.full((101, 101), 0.5, np.float32)
    image[mask] = 0.7
    rng = np.random.default_rng(0)
    for _ in range(10):
        img2, mask2 = augment_pair(image, mask, rng, hflip=False, shift=0, scale=0, brightness=0.2, contrast=0.2)
        np.testing.assert_array_equal(mask2, mask)
        assert img2.dtype == np.float32
        inside, outside = img2[mask].mean(), img2[~mask].mean()
        assert 0.2 * 0.8 - 1e-5 <= inside - outside <= 0.2 * 1.2 + 1e-5
        assert abs(img2.mean() - image.mean()) <= 0.2 + 1e-5


def test_uint8_stays_in_range_and_mask_dtype_kept():
    image = np.full((101, 101), 250, np.uint8)
    mask = blob_mask(4).astype(np.uint8)
    img2, mask2 = augment_pair(image, mask, np.random.default_rng(1), brightness=0.5)
    assert img2.dtype == np.uint8 and mask2.dtype == np.uint8 and set(np.unique(mask2)) <= {0, 1}


def test_batch():
    images = np.stack([(blob_mask(s) * 255).astype(np.uint8) for s in range(4)])
    masks = images > 0
    a = augment_batch(images, masks, np.random.default_rng(0), brightness=0, contrast=0)
    b = augment_batch(images, masks, np.random.default_rng(0), brightness=0, contrast=0)
    assert a[0].shape == images.shape and a[1].dtype == bool
    np.testing.assert_array_equal(a[0], b[0])
    assert ((a[0] > 127) != a[1]).mean() < 0.01
