import lowhaio_aws_sigv4


def test_package_is_importable_and_typed() -> None:
    assert lowhaio_aws_sigv4.__version__ == "0.1.0"
    assert lowhaio_aws_sigv4.__all__ == []
