import importlib.metadata
import importlib.resources

import lowhaio_redirect


def test_package_is_installed_typed_and_depends_on_the_core() -> None:
    assert lowhaio_redirect.__version__ == importlib.metadata.version("lowhaio-redirect")
    assert lowhaio_redirect.__all__
    assert importlib.resources.files(lowhaio_redirect).joinpath("py.typed").is_file()
    assert "lowhaio<0.2,>=0.1.0" in (importlib.metadata.requires("lowhaio-redirect") or [])
