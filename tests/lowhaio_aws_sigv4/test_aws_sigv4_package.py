import importlib.metadata
import importlib.resources

import lowhaio_aws_sigv4


def test_package_is_installed_typed_and_depends_on_the_core_and_anycrc() -> None:
    assert lowhaio_aws_sigv4.__version__ == importlib.metadata.version("lowhaio-aws-sigv4")
    assert lowhaio_aws_sigv4.__all__
    assert importlib.resources.files(lowhaio_aws_sigv4).joinpath("py.typed").is_file()
    requires = importlib.metadata.requires("lowhaio-aws-sigv4") or []
    assert "lowhaio<0.2,>=0.1.0" in requires
    assert "anycrc<3,>=2.1" in requires  # CRC32C and CRC64NVME
