"""help() and inspect show real types in the public API, not quoted strings.

A module with ``from __future__ import annotations`` keeps every annotation as a string,
so ``help(fs.Sessions.cookie)`` would print ``'Optional[timedelta]'`` with the quotes; a
string forward reference inside a type shows as ``ForwardRef('...')``. Every public name
of ``ferrosession.__all__`` is walked: functions, and each class's ``__init__`` and public
methods, properties, class and static methods (those it inherits from ferrosession too).
"""

import inspect
from typing import Any, Callable, ForwardRef, Iterator, Literal, Optional, get_origin

import pytest

import ferrosession as fs
import ferrosession.errors
import ferrosession.fastapi
import ferrosession.flask
import ferrosession.quart
import ferrosession.serializers
import ferrosession.starlette
import ferrosession.storage
import ferrosession.testing
import ferrosession.transformers

Function = Callable[..., Any]
# ferrosession's names and those of the public modules a user imports from
PUBLIC_MODULES = [
    fs,
    ferrosession.errors,
    ferrosession.fastapi,
    ferrosession.flask,
    ferrosession.quart,
    ferrosession.serializers,
    ferrosession.starlette,
    ferrosession.storage,
    ferrosession.testing,
    ferrosession.transformers,
]
PUBLIC = {f"{m.__name__}.{name}": getattr(m, name) for m in PUBLIC_MODULES for name in m.__all__}


def python_functions(obj: object) -> Iterator[tuple[str, Function]]:
    """The Python functions of a public name whose signatures a user reads."""
    if inspect.isfunction(obj):
        yield obj.__qualname__, obj
        return
    if not inspect.isclass(obj):
        return  # __version__
    for klass in obj.__mro__:
        if not klass.__module__.startswith("ferrosession"):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_") and name != "__init__":
                continue
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            if isinstance(attr, property):
                attr = attr.fget
            if inspect.isfunction(attr):
                yield f"{klass.__name__}.{name}", attr


def is_quoted(annotation: object) -> bool:
    """A string, a ForwardRef, or a type with one inside (``list["X"]``, ``Optional["X"]``)."""
    if isinstance(annotation, (str, ForwardRef)):
        return True
    if get_origin(annotation) is Literal:
        return False  # its strings are values, not types
    return any(is_quoted(arg) for arg in getattr(annotation, "__args__", ()))


def quoted_annotations(function: Function) -> list[str]:
    """Each parameter or return annotation of ``function`` that is quoted."""
    signature = inspect.signature(function)
    annotations = {name: p.annotation for name, p in signature.parameters.items()}
    annotations["return"] = signature.return_annotation
    return [f"{name}: {a!r}" for name, a in annotations.items() if is_quoted(a)]


def test_the_walk_finds_the_api() -> None:
    found = {name for public in PUBLIC.values() for name, _ in python_functions(public)}
    for expected in (
        "Sessions.cookie",
        "Sessions.__init__",
        "get_sessions",
        "Encrypt.__init__",
        "check_storage",
        "Transformer.transform_read",
    ):
        assert expected in found, sorted(found)


def test_a_quoted_annotation_is_caught() -> None:
    def quoted(x: "int") -> "Iterator[int]":
        yield x

    def nested(x: list["int"], y: Optional["int"], z: dict[str, int], w: Literal["a"]) -> None: ...

    assert quoted_annotations(quoted) == ["x: 'int'", "return: 'Iterator[int]'"]
    assert quoted_annotations(nested) == [
        "x: list['int']",
        "y: typing.Optional[ForwardRef('int')]",
    ]


@pytest.mark.parametrize("public", sorted(PUBLIC))
def test_public_signatures_show_real_types(public: str) -> None:
    quoted = {
        name: found
        for name, function in python_functions(PUBLIC[public])
        if (found := quoted_annotations(function))
    }
    assert not quoted, quoted
