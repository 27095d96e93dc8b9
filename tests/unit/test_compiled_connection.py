"""``aio/_connection_py.py`` is compiled as it is into ``aio._connection`` with the
declarations of ``aio/_connection.pxd``: the two must stay one module.

Behaviour is compared in test_http_protocol and test_http_fast_path (every test
on both). Here: the compiled classes have every method and property of the
written ones with the same signature, the ``.pxd`` declares exactly the
attributes the module uses (a compiled instance has no ``__dict__``: one it
lacks is an AttributeError at run time, in the compiled build only), and the
compiled module in a source checkout was built from the source there.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from typing import Any

import pytest

from fastsockjs.aio import _connection_py as written
from fastsockjs.kernels import pure_python_forced, sources_of, stale_source
from tests.helpers import compiled_connection

CLASSES = ("HttpProtocol", "Exchange")
PXD = Path(written.__file__).with_name("_connection.pxd")


def members(cls: type, attributes: set[str]) -> dict[str, Any]:
    """Methods and properties defined by the class itself (not ``attributes``, its
    data; not ``__init__``, whose compiled form is a slot without a signature)."""
    found = {}
    for name, value in vars(cls).items():
        if name.startswith("__") or name in attributes:
            continue
        if callable(value) or inspect.isdatadescriptor(value):
            found[name] = value
    return found


def signature(value: Any) -> str:
    if not callable(value):
        return "property"  # (a property written, a getset descriptor compiled)
    # Annotations live in the written module only (the compiled one does not keep
    # them), and are checked by mypy there: compare names, kinds and defaults.
    sig = inspect.signature(value)
    return str(sig.replace(
        parameters=[p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()],
        return_annotation=inspect.Signature.empty,
    ))


@pytest.mark.parametrize("name", CLASSES)
def test_the_compiled_classes_have_the_same_methods(name: str) -> None:
    compiled = getattr(compiled_connection.require(), name)
    data = declared(name)
    ours = {k: signature(v) for k, v in members(getattr(written, name), data).items()}
    theirs = {k: signature(v) for k, v in members(compiled, data).items()}
    assert "data_received" in ours or "respond" in ours
    assert theirs == ours


def declared(cls: str) -> set[str]:
    """The attributes ``_connection.pxd`` declares for ``cdef class <cls>``."""
    text = PXD.read_text()
    body = re.search(rf"^cdef class {cls}:\n((?:    .*\n|\n)*)", text, re.MULTILINE)
    assert body, f"no cdef class {cls} in {PXD.name}"
    return set(re.findall(r"^    cdef (?:public )?[\w.]+ (\w+)$", body.group(1), re.MULTILINE))


@pytest.mark.parametrize("name", CLASSES)
def test_the_pxd_declares_every_attribute_of_the_written_class(name: str) -> None:
    # __slots__ is the written class's list of its attributes (and without a
    # __dict__ the written class cannot set any other, so its tests catch a
    # missing one there too).
    assert set(getattr(written, name).__slots__) == declared(name)


@pytest.mark.parametrize("name", CLASSES)
def test_the_compiled_instances_have_no_dict(name: str) -> None:
    compiled = getattr(compiled_connection.require(), name)
    assert "__dict__" not in dir(compiled)
    for attribute in declared(name) - {"__weakref__"}:
        assert hasattr(compiled, attribute), attribute


def test_an_extension_older_than_its_source_is_not_used(tmp_path: Path) -> None:
    """In a source checkout, kernels.load passes over an extension built before its
    source's last edit (found by these two functions)."""
    built = tmp_path / "_connection.cpython-311-x86_64-linux-gnu.so"
    source, pxd = tmp_path / "_connection_py.py", tmp_path / "_connection.pxd"
    for path, when in ((source, 100), (pxd, 100), (built, 200)):
        path.write_text("")
        os.utime(path, (when, when))
    assert sources_of(built) == [source, pxd]
    assert stale_source(built, sources_of(built)) is None
    os.utime(pxd, (300, 300))
    assert stale_source(built, sources_of(built)) == pxd
    kernel = tmp_path / "_frames.cpython-311-x86_64-linux-gnu.so"
    kernel.write_text("")
    (tmp_path / "_frames.pyx").write_text("")
    assert sources_of(kernel) == [tmp_path / "_frames.pyx"]


def test_the_picker_uses_what_was_built() -> None:
    # The compiled module, unless FASTSOCKJS_PURE_PYTHON forces the source or the
    # build is older than its source (then load() warned: rebuild).
    module = compiled_connection.require()
    from fastsockjs.aio import http

    if pure_python_forced():
        assert http.impl is written
    else:
        assert http.impl is module or stale_source(Path(module.__file__),
                                                    sources_of(Path(module.__file__)))
