"""docs/api.md's package table names what each package exports: every name there exists, and is in the package's
`__all__` (the command and config packages are folders of modules: there, each name is a module)."""

import importlib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS_OF_MODULES = {"jaxcnn.commands", "jaxcnn.configs"}


def _table():
    with open(os.path.join(ROOT, "docs", "api.md")) as f:
        rows = [line for line in f if re.match(r"\| `jaxcnn[\w.]*` \|", line)]
    table = {}
    for row in rows:
        package, _, names = [cell.strip() for cell in row.strip().strip("|").split("|")]
        names = re.sub(r"\([^)]*\)", "", names)  # a field in brackets (`Conv` (`conv_mode`)) is not an export
        table[package.strip("`")] = re.findall(r"`([\w.]+)`", names)
    return table


TABLE = _table()


def test_the_table_is_read():
    assert {"jaxcnn", "jaxcnn.ops", "jaxcnn.train", "jaxcnn.runtime", "jaxcnn.commands"} <= set(TABLE)
    assert "cross_correlate" in TABLE["jaxcnn.ops"] and "conv_mode" not in TABLE["jaxcnn.layers"]


@pytest.mark.parametrize("package", sorted(TABLE))
def test_every_name_in_the_api_table_exists_and_is_exported(package):
    module = importlib.import_module(package)
    for name in TABLE[package]:
        head, *rest = name.split(".")
        if package in FOLDERS_OF_MODULES or rest:  # a module of the package, or a name inside one
            obj = importlib.import_module(f"{package}.{head}")
        else:  # a dunder (`__version__`) is public by convention, outside __all__
            assert head in module.__all__ or head.startswith("__"), (
                f"{package}.{head} is in docs/api.md but not in {package}.__all__")
            obj = getattr(module, head)
        for part in rest:
            obj = getattr(obj, part)
