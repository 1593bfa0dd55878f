import lowhaio_chunked


def test_package_is_importable_and_typed() -> None:
    assert lowhaio_chunked.__version__ == "0.1.0"
    assert lowhaio_chunked.__all__ == []
