import importlib.metadata
import importlib.resources

import lowhaio_retry


def test_package_is_installed_typed_and_depends_on_the_core() -> None:
    assert lowhaio_retry.__version__ == importlib.metadata.version("lowhaio-retry")
    assert lowhaio_retry.__all__
    assert importlib.resources.files(lowhaio_retry).joinpath("py.typed").is_file()
    assert "lowhaio<0.2,>=0.1.0" in (importlib.metadata.requires("lowhaio-retry") or [])
