"""The part-size rule at its boundaries: S3's limits (parts of 5 MiB to 5 GiB, at most 10,000 of
them, objects of at most 5 TiB), and the part size raised to a whole MiB only when needed."""

from __future__ import annotations

import pytest

from lowhaio_s3 import (
    DEFAULT_PART_SIZE,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    part_size_for,
)

MIB = 1024 * 1024
GIB = 1024 * MIB
TIB = 1024 * GIB


def test_s3_limits() -> None:
    assert (MIN_PART_SIZE, MAX_PART_SIZE, MAX_PARTS, MAX_OBJECT_SIZE) == (
        5 * MIB,
        5 * GIB,
        10_000,
        5 * TIB,
    )
    assert DEFAULT_PART_SIZE == 8 * MIB


@pytest.mark.parametrize(
    ("size", "max_size", "part_size", "expected"),
    [
        (None, None, DEFAULT_PART_SIZE, DEFAULT_PART_SIZE),  # up to 10,000 x 8 MiB
        (0, None, DEFAULT_PART_SIZE, DEFAULT_PART_SIZE),
        (1, None, MIN_PART_SIZE, MIN_PART_SIZE),
        (MAX_PARTS * 8 * MIB, None, 8 * MIB, 8 * MIB),  # exactly 10,000 parts
        (MAX_PARTS * 8 * MIB + 1, None, 8 * MIB, 9 * MIB),  # one byte more: a MiB more
        (MAX_PARTS * 5 * MIB + 1, None, MIN_PART_SIZE, 6 * MIB),
        (None, MAX_PARTS * 8 * MIB, 8 * MIB, 8 * MIB),  # the stated maximum, when unknown
        (None, MAX_PARTS * 8 * MIB + 1, 8 * MIB, 9 * MIB),
        (None, 1024 * GIB, 8 * MIB, 105 * MIB),  # 1 TiB: 104.9 MiB a part
        (MAX_OBJECT_SIZE, None, 8 * MIB, 525 * MIB),  # 5 TiB: 524.3 MiB a part
        (None, MAX_OBJECT_SIZE, MIN_PART_SIZE, 525 * MIB),
        (100 * GIB, 1024 * GIB, 8 * MIB, 11 * MIB),  # a known size wins over max_size
        (MAX_OBJECT_SIZE, None, MAX_PART_SIZE, MAX_PART_SIZE),  # larger than needed: kept
        (None, None, MAX_PART_SIZE, MAX_PART_SIZE),
    ],
)
def test_part_size(size: int | None, max_size: int | None, part_size: int, expected: int) -> None:
    chosen = part_size_for(size, max_size, part_size)
    assert chosen == expected
    assert MIN_PART_SIZE <= chosen <= MAX_PART_SIZE
    largest = size if size is not None else max_size
    if largest is not None:
        assert -(-largest // chosen) <= MAX_PARTS  # never more than 10,000 parts
        if chosen > part_size:  # raised: the smallest whole MiB that fits
            assert chosen % MIB == 0
            assert -(-largest // (chosen - MIB)) > MAX_PARTS


@pytest.mark.parametrize(
    ("size", "max_size", "part_size", "message"),
    [
        (None, None, MIN_PART_SIZE - 1, "part_size must be from 5242880"),
        (None, None, MAX_PART_SIZE + 1, "part_size must be from 5242880"),
        (MAX_OBJECT_SIZE + 1, None, DEFAULT_PART_SIZE, "S3 objects are at most 5 TiB"),
        (None, MAX_OBJECT_SIZE + 1, DEFAULT_PART_SIZE, "S3 objects are at most 5 TiB"),
        (-1, None, DEFAULT_PART_SIZE, "cannot be negative"),
    ],
)
def test_refused(size: int | None, max_size: int | None, part_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        part_size_for(size, max_size, part_size)
