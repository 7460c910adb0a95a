"""The one place jaxcnn's version is written: pyproject.toml reads it (tool.setuptools.dynamic) and
`jaxcnn.__version__` is it."""

__version__ = "0.1.0"
