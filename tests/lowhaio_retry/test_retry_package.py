import lowhaio_retry


def test_package_is_importable_and_typed() -> None:
    assert lowhaio_retry.__version__ == "0.1.0"
    assert lowhaio_retry.__all__ == []
