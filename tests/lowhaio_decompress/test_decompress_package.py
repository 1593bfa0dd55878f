import importlib.metadata
import importlib.resources

import lowhaio_decompress


def test_package_is_installed_typed_and_depends_on_the_core() -> None:
    assert lowhaio_decompress.__version__ == importlib.metadata.version("lowhaio-decompress")
    assert lowhaio_decompress.__all__
    assert importlib.resources.files(lowhaio_decompress).joinpath("py.typed").is_file()
    requires = importlib.metadata.requires("lowhaio-decompress") or []
    assert "lowhaio<0.2,>=0.1.0" in requires
    # br and zstd are extras: without them, they are not offered.
    assert 'brotli>=1.2; extra == "br"' in requires
    assert 'backports.zstd>=1.0; python_version < "3.14" and extra == "zstd"' in requires
