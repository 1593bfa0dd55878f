import lowhaio_redirect


def test_package_is_importable_and_typed() -> None:
    assert lowhaio_redirect.__version__ == "0.1.0"
    assert lowhaio_redirect.__all__ == []
