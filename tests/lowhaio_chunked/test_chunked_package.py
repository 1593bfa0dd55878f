import importlib.metadata
import importlib.resources

import lowhaio_chunked


def test_package_is_installed_typed_and_depends_on_the_core() -> None:
    assert lowhaio_chunked.__version__ == importlib.metadata.version("lowhaio-chunked")
    assert lowhaio_chunked.__all__
    assert importlib.resources.files(lowhaio_chunked).joinpath("py.typed").is_file()
    assert "lowhaio<0.2,>=0.1.0" in (importlib.metadata.requires("lowhaio-chunked") or [])
