"""Config checks that Snakemake and JSON Schema leave out; every error names the file or key.

Snakemake reads config files with a YAML loader that silently keeps the last of two equal
keys (a whole experiment can vanish) and reports syntax errors without file or line. JSON
Schema (draft 2020-12) accepts 100.0 as an integer and NaN or infinity as numbers. The
workflow therefore reads its config files once more with :func:`load_strict`, and checks the
merged config with :func:`reject_non_finite` before and :func:`reject_non_integers` after
schema validation. Command-line overrides (``./run.sh pipeline --set KEY=VALUE``) are parsed here
too (:func:`parse_overrides`, :func:`overrides_config`): ``run.sh`` writes them to one more config
file, which then goes through every check a config file goes through. Plain Python (no snakemake),
so it is usable and testable on its own.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the file or the key."""


def key_path(parts) -> str:
    """``linear_experiments.fig5_mnist.lr``, ``spectra[0].dataset``: the style of every config message."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out


# --------------------------------------------------------------------------- files
def load_strict(path: str | os.PathLike) -> Any:
    """The content of a JSON or YAML config file; duplicate keys and syntax errors raise ConfigError.

    JSON is tried first, as Snakemake does. Messages give the file, the line (YAML) and the key path.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text, object_pairs_hook=_JsonObject)
    except ValueError:
        return _load_yaml(path, text)
    for where, key in _json_duplicates(data, ()):
        raise ConfigError(f"{path}: duplicate key {key_path((*where, key))}; only the last would be used. "
                          f"Remove or rename one of them.")
    return data


class _JsonObject(dict):
    """A JSON object that remembers the keys it saw more than once."""

    def __init__(self, pairs):
        super().__init__(pairs)
        keys = [k for k, _ in pairs]
        self.duplicates = sorted({k for k in keys if keys.count(k) > 1})


def _json_duplicates(obj: Any, where: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(obj, _JsonObject):
        for key in obj.duplicates:
            yield where, key
        for key, value in obj.items():
            yield from _json_duplicates(value, (*where, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _json_duplicates(value, (*where, i))


def _load_yaml(path: Path, text: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _yaml_duplicates(node, loader, path, (), set())
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        raise ConfigError(_syntax_message(path, text, err)) from None
    finally:
        loader.dispose()


def _yaml_duplicates(node: yaml.Node, loader: yaml.SafeLoader, path: Path, where: tuple, visited: set) -> None:
    if id(node) in visited:  # an alias of a node already checked
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may repeat keys on purpose
                continue
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = first_line.get(key)
            except TypeError:  # an unhashable key: construction reports it with its line
                continue
            if first is not None:
                raise ConfigError(
                    f"{path}, line {line}: duplicate key {key_path((*where, key))} (first on line {first}); "
                    f"YAML would silently keep only the last one. Remove or rename one of them."
                )
            first_line[key] = line
            _yaml_duplicates(value_node, loader, path, (*where, key), visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_duplicates(item, loader, path, (*where, i), visited)


def _syntax_message(path: Path, text: str, err: yaml.MarkedYAMLError) -> str:
    mark = err.problem_mark or err.context_mark
    line = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
    indent = line[: len(line) - len(line.lstrip())]
    hint = " YAML cannot indent with tabs: use spaces." if "\t" in indent or "'\\t'" in (err.problem or "") else ""
    what = "; ".join(s for s in (err.context, err.problem) if s)
    return f"{path}, line {mark.line + 1}, column {mark.column + 1}: invalid YAML ({what}).{hint}"


def check_files(paths) -> None:
    """:func:`load_strict` on every existing file (a missing one is left to the caller to report); each
    must hold keys at the top level (Snakemake says only that some config file does not)."""
    for path in paths:
        if Path(path).is_file():
            content = load_strict(path)
            if not isinstance(content, dict):
                what = "is empty" if content is None else f"holds a {type(content).__name__}, not keys"
                raise ConfigError(f"{path}: the file {what}; a config file maps keys to values at the top level "
                                  "(e.g. `linear_experiments: ...`). Fix it or leave it out of --configfile.")


# --------------------------------------------------------------------------- overrides
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")


def parse_overrides(items) -> list[tuple[tuple[str, ...], Any]]:
    """``["linear_experiments.fig5_mnist.lr=0.02", ...]`` as (key path, value) pairs.

    Values are YAML, as in a config file: ``0.02`` is a float, ``3`` an integer, ``true`` a
    boolean, ``[0, 3]`` a list, ``{eps: 0.5}`` a mapping, ``null`` nothing; a number in
    exponent notation without a dot (``1e-3``, which YAML reads as text) is a float too.
    """
    out = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise ConfigError(f"Invalid config: --set {item}: give KEY=VALUE with KEY a dotted path of config keys, "
                              "e.g. --set linear_experiments.fig5_mnist.lr=0.02")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"Invalid config: --set {item}: the value is not valid YAML "
                              f"({str(err).splitlines()[0]})") from None
        if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value.strip()):
            value = float(value)
        out.append((tuple(key.split(".")), value))
    return out


def overrides_config(config: Mapping[str, Any], overrides) -> dict:
    """The overrides as one nested mapping, a config file's content, checked against the merged
    `config` they apply to: every key above the one set must exist there (a misspelt experiment
    or section is named, with the closest existing keys), so an override never adds an
    experiment by accident. The last key may be new (a key left at its default, a new run);
    whether it is allowed is the schema's to say, as for any config file."""
    out: dict = {}
    for path, value in overrides:
        node: Any = config
        for depth, key in enumerate(path[:-1]):
            if not isinstance(node, Mapping) or key not in node:
                where = key_path(path[:depth]) or "the config"
                known = sorted(node) if isinstance(node, Mapping) else []
                close = difflib.get_close_matches(key, known, n=3)
                hint = (f"; did you mean {' or '.join(close)}?" if close else
                        f"; it has {', '.join(known[:12])}{' ...' if len(known) > 12 else ''}" if known else "")
                raise ConfigError(f"Invalid config: --set {key_path(path)}: {where} has no key {key!r}{hint}")
            node = node[key]
        if not isinstance(node, Mapping):
            raise ConfigError(f"Invalid config: --set {key_path(path)}: {key_path(path[:-1])} is not a mapping")
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return out


# --------------------------------------------------------------------------- values
def _leaves(obj: Any, where: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _leaves(value, (*where, key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _leaves(value, (*where, i))
    else:
        yield where, obj


def reject_non_finite(config: Mapping[str, Any]) -> None:
    """NaN and ±infinity are nowhere a usable setting (and pass every JSON Schema bound)."""
    for where, value in _leaves(config):
        if isinstance(value, float) and not math.isfinite(value):
            name = "NaN" if math.isnan(value) else "infinity"
            raise ConfigError(f"Invalid config: {key_path(where)}: {name} ({value}) is not allowed; "
                              f"give a finite number.")


def reject_non_integers(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Floats where the schema asks for an integer (draft 2020-12 counts 100.0 as one; torch, paths do not).

    The config is validated again against `schema` with an integer type that excludes floats;
    the schema itself says which keys are integers.
    """
    from jsonschema import validators

    base = validators.validator_for(schema)
    integer_only = base.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    strict = validators.extend(base, type_checker=integer_only)(schema)
    def with_alternatives(errors):  # a oneOf/anyOf error holds each alternative's errors as context
        for error in errors:
            yield error
            yield from with_alternatives(error.context or [])

    for error in with_alternatives(strict.iter_errors(config)):
        allowed = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        if error.validator == "type" and "integer" in allowed and isinstance(error.instance, float):
            value = error.instance
            fix = f"write {int(value)}" if value.is_integer() else "give a whole number"
            raise ConfigError(f"Invalid config: {key_path(error.absolute_path)}: {value!r} is not an integer; "
                              f"{fix}.")


def load_schema(path: str | os.PathLike) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
