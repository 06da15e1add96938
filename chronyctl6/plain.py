"""Plain record classes for the types `check` and `check_timesync` create at start-up.

`@dataclass` costs every check about 10 ms before it measures anything: importing `dataclasses`
pulls `inspect`, `ast`, `dis` and `tokenize`, and each decorated class compiles generated code.
A record here names its fields in `__slots__` (sorted, as ruff asks: repr shows them in that order)
and writes its own `__init__` (so mypy checks every construction); equality and repr come from the
fields, as @dataclass gives them. `Frozen` records are hashable too; their fields are declared
`Final`, so mypy refuses a write as it does to a frozen dataclass (at run time nothing stops one).
Imports nothing at all: every check imports this module.
"""

from __future__ import annotations


class Record:  # noqa: PLW1641 (unhashable on purpose: see below)
    """Equality over the fields named by `__slots__` (the same class only), repr with their values;
    not hashable, as a mutable dataclass is not."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, Record):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        said = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({said})"

    # No __hash__: a class that defines __eq__ alone gets __hash__ = None from Python (unhashable,
    # as a mutable dataclass is); Frozen defines one.


class Frozen(Record):
    """A record whose fields are never written after `__init__` (declare them `Final`): hashable."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._values())
