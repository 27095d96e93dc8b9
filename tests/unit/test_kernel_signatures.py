"""The kernels' signatures are written in four places; this checks they agree.

* ``fastsockjs/_frames.pyi``, the stub (read with ``ast``, never imported);
* ``fastsockjs/_frames_py.py``, the pure-Python twin (the specification);
* ``fastsockjs._frames``, the compiled module (Cython 3 functions are bound
  cyfunctions, ``binding=True``, so ``inspect.signature`` reads their names,
  kinds and defaults; they carry no annotations);
* ``fastsockjs/frames.py``, which re-exports them typed as ``Callable[...]``.

Names, parameter kinds, defaults, annotations and return types must match.
(stubtest in scripts/test.sh checks the stub against the compiled module too.)
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

from fastsockjs import _frames_py as twin
from tests.helpers import compiled_frames

PACKAGE = Path(twin.__file__).parent
STUB = ast.parse((PACKAGE / "_frames.pyi").read_text("utf-8"))
PICKER = ast.parse((PACKAGE / "frames.py").read_text("utf-8"))

#: (name, kind, default or EMPTY, annotation text or None) per parameter; then the return.
Param = tuple[str, str, Any, str | None]
EMPTY = "<no default>"


def _norm(annotation: str | None) -> str | None:
    """One spelling per annotation (spacing, quotes) whichever file it came from."""
    return None if annotation is None else ast.unparse(ast.parse(annotation, mode="eval"))


def _stub_all() -> list[str]:
    for node in STUB.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return list(ast.literal_eval(node.value))
    raise AssertionError("_frames.pyi has no __all__")


def _stub_functions() -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in STUB.body if isinstance(node, ast.FunctionDef)}


def stub_signature(fn: ast.FunctionDef) -> tuple[list[Param], str | None]:
    a = fn.args
    params: list[Param] = []
    positional = [(p, "POSITIONAL_ONLY") for p in a.posonlyargs] + [
        (p, "POSITIONAL_OR_KEYWORD") for p in a.args
    ]
    defaults: list[Any] = [EMPTY] * (len(positional) - len(a.defaults)) + [
        ast.literal_eval(d) for d in a.defaults
    ]
    for (p, kind), default in zip(positional, defaults, strict=True):
        params.append((p.arg, kind, default, _ann(p.annotation)))
    if a.vararg is not None:
        params.append((a.vararg.arg, "VAR_POSITIONAL", EMPTY, _ann(a.vararg.annotation)))
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        params.append((p.arg, "KEYWORD_ONLY", EMPTY if d is None else ast.literal_eval(d),
                       _ann(p.annotation)))
    if a.kwarg is not None:
        params.append((a.kwarg.arg, "VAR_KEYWORD", EMPTY, _ann(a.kwarg.annotation)))
    return params, _ann(fn.returns)


def _ann(node: ast.expr | None) -> str | None:
    return None if node is None else ast.unparse(node)


def runtime_signature(fn: Any, annotated: bool) -> tuple[list[Param], str | None]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:  # pragma: no cover - a build without binding
        raise AssertionError(f"{fn!r} has no signature (Cython binding=True?): {exc}") from exc
    params: list[Param] = []
    for p in sig.parameters.values():
        default = EMPTY if p.default is inspect.Parameter.empty else p.default
        ann = None
        if annotated and p.annotation is not inspect.Parameter.empty:
            ann = _norm(p.annotation)
        params.append((p.name, p.kind.name, default, ann))
    ret = None
    if annotated and sig.return_annotation is not inspect.Signature.empty:
        ret = _norm(sig.return_annotation)
    return params, ret


def _unannotated(sig: tuple[list[Param], str | None]) -> list[tuple[str, str, Any]]:
    return [(name, kind, default) for name, kind, default, _ in sig[0]]


STUB_NAMES = _stub_all()
KERNELS = sorted(_stub_functions())


def test_the_stub_lists_exactly_its_functions_and_constants() -> None:
    constants = {
        node.target.id
        for node in STUB.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert sorted(STUB_NAMES) == sorted([*KERNELS, *constants])


def test_the_twin_exports_everything_the_stub_declares() -> None:
    assert set(STUB_NAMES) <= set(twin.__all__)
    # What only the twin has is used from the twin by frames.py, never from _frames.
    for name in set(twin.__all__) - set(STUB_NAMES):
        assert callable(getattr(twin, name)), name


def test_the_compiled_module_exports_what_the_stub_declares() -> None:
    compiled = compiled_frames.require()
    assert sorted(compiled.__all__) == sorted(STUB_NAMES)
    public = {n for n in vars(compiled) if not n.startswith("_") and n not in ("json",)}
    assert public == set(STUB_NAMES)


@pytest.mark.parametrize("name", KERNELS)
def test_stub_and_twin_agree(name: str) -> None:
    stub = stub_signature(_stub_functions()[name])
    assert runtime_signature(getattr(twin, name), annotated=True) == stub


@pytest.mark.parametrize("name", KERNELS)
def test_compiled_and_twin_agree(name: str) -> None:
    compiled = compiled_frames.require()
    got = runtime_signature(getattr(compiled, name), annotated=False)
    want = runtime_signature(getattr(twin, name), annotated=True)
    assert _unannotated(got) == _unannotated(want)


def _picker_annotations() -> dict[str, ast.expr]:
    return {
        node.target.id: node.annotation
        for node in PICKER.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }


@pytest.mark.parametrize("name", KERNELS)
def test_the_pickers_callable_types_agree_with_the_twin(name: str) -> None:
    annotation = _picker_annotations().get(name)
    assert annotation is not None, f"frames.py does not re-export {name} with a type"
    assert isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Callable"
    assert isinstance(annotation.slice, ast.Tuple) and len(annotation.slice.elts) == 2
    args, ret = annotation.slice.elts
    params, want_ret = runtime_signature(getattr(twin, name), annotated=True)
    assert ast.unparse(ret) == want_ret
    if isinstance(args, ast.Constant) and args.value is Ellipsis:
        return  # Callable[..., R]: the parameters are not restated
    assert isinstance(args, ast.List)
    assert [ast.unparse(a) for a in args.elts] == [ann for _, _, _, ann in params]


def test_the_checks_see_a_difference() -> None:
    """The comparison is not vacuous: one renamed parameter or changed default shows."""
    fn = _stub_functions()["build_frame"]
    params, ret = stub_signature(fn)
    renamed = [("op", *p[1:]) if p[0] == "opcode" else p for p in params]
    assert (renamed, ret) != runtime_signature(twin.build_frame, annotated=True)
    redefaulted = [(p[0], p[1], False, p[3]) if p[0] == "fin" else p for p in params]
    assert (redefaulted, ret) != runtime_signature(twin.build_frame, annotated=True)
