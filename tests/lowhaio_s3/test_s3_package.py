import importlib.metadata
import importlib.resources

import lowhaio_s3


def test_package_is_installed_typed_and_depends_on_the_core() -> None:
    assert lowhaio_s3.__version__ == importlib.metadata.version("lowhaio-s3")
    assert lowhaio_s3.__all__
    assert all(hasattr(lowhaio_s3, name) for name in lowhaio_s3.__all__)
    assert importlib.resources.files(lowhaio_s3).joinpath("py.typed").is_file()
    assert importlib.metadata.requires("lowhaio-s3") == ["lowhaio<0.2,>=0.1.0"]
