"""The defaults of config/schema.yaml, for a step program run by hand without an option the rules always pass, or
with a config entry that leaves out a key.

The schema is the one place of the config's defaults (Snakemake's validate fills them in, and the rules pass every
value): a program's option for a config key has no default of its own, and takes the schema's when left out; a
config entry passed as JSON reads a key it lacks from the schema (``Entry``). PyYAML is needed only then, so a step
in a container without it runs as the rules call it.
"""

from __future__ import annotations

import argparse
import copy
import functools
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .errors import require

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


@functools.cache
def _schema(yaml: Any) -> Any:
    """config/schema.yaml parsed once per process (a program may take several options from it), by libyaml where
    PyYAML has it (the pure-Python loader takes 0.05 s for this file, libyaml 0.006 s)."""
    return yaml.load(SCHEMA.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def schema_default(key: str) -> Any:
    """The default of a dotted config key: ``compare.max_flipped``; ``*`` for an entry of a mapping
    (``models.*.output_kind``)."""
    yaml = require("yaml", purpose=f"the default of {key} (config/schema.yaml)",
                   hint="pip install PyYAML, or pass the option")
    node = _schema(yaml)
    for part in key.split("."):
        node = node["additionalProperties"] if part == "*" else node["properties"][part]
    return copy.deepcopy(node["default"])  # the parsed schema is shared: a caller may change what it gets


class Entry(Mapping[str, Any]):
    """One entry of the config (``kind``: the dotted key of such entries, ``models.*.architecture``) as Snakemake's
    validate fills it in: a key the entry leaves out reads its schema default, and is a KeyError when the schema
    has none. Iterating gives the keys the entry has."""

    def __init__(self, values: Mapping[str, Any], kind: str) -> None:
        self._values, self._kind = dict(values), kind

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        try:
            return schema_default(f"{self._kind}.{key}")
        except KeyError:
            raise KeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def parse_with_defaults(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
                        keys: Mapping[str, str]) -> argparse.Namespace:
    """Parse ``argv``; each option of ``keys`` ({dest: dotted config key}) left out takes its schema default, and
    its help says so."""
    for action in parser._actions:
        if action.dest in keys:
            action.help = f"{action.help or ''} (default: {keys[action.dest]} in config/schema.yaml)".strip()
    args = parser.parse_args(argv)
    for dest, key in keys.items():
        if getattr(args, dest) is None:
            setattr(args, dest, schema_default(key))
    return args
