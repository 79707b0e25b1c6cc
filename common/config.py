"""Experiment configs: nested dicts with attribute access and locked keys.

Like big_vision's ConfigDict, a config is built from plain literals by a `get_config()` in one
module per experiment; command-line overrides (`--set optimizer.lr=1e-4`) may only change keys
that exist, so a typo is an error, not a new silent key.
"""
import ast
import copy
import difflib

from common.errors import UsageError


class Config(dict):
    """A dict whose keys read as attributes; nested dicts become Configs."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        for key, value in dict(*args, **kwargs).items():
            self[key] = Config(value) if isinstance(value, dict) and not isinstance(value, Config) else value

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"Config has no key {key!r}; keys: {sorted(self)}") from None

    def __setattr__(self, key, value):
        self[key] = value

    def copy(self):
        return copy.deepcopy(self)

    def to_dict(self):
        return {k: v.to_dict() if isinstance(v, Config) else v for k, v in self.items()}

    def override(self, dotted_key: str, value):
        """Sets an existing (possibly nested) key to a value of its type; anything else is an error."""
        node, leaf = self._parent_of(dotted_key)
        node[leaf] = _checked(dotted_key, node[leaf], value)
        return self

    def apply_overrides(self, assignments):
        """Applies `key=value` strings (--set): each value is read as a Python literal, except that a
        key holding text takes the text as written (a folder named 2017 stays "2017")."""
        for assignment in assignments or ():
            key, eq, raw = assignment.partition("=")
            try:
                if not eq:
                    raise UsageError("expected KEY=VALUE, e.g. --set train.epochs=10")
                node, leaf = self._parent_of(key.strip())
                self.override(key.strip(), _parse(raw.strip(), node[leaf]))
            except UsageError as e:  # the message then names the flag as the user typed it
                raise type(e)(f"--set {assignment}: {e}") from None
        return self

    def _parent_of(self, dotted_key: str):
        """(section, last part) of an existing key; UnknownKeyError with the closest keys otherwise."""
        *sections, leaf = dotted_key.split(".")
        node = self
        for part in sections:
            if not isinstance(node.get(part), Config):
                raise self._unknown(dotted_key, node)
            node = node[part]
        if leaf not in node:
            raise self._unknown(dotted_key, node)
        return node, leaf

    def _unknown(self, dotted_key: str, node) -> "UnknownKeyError":
        close = difflib.get_close_matches(dotted_key, list(flatten(self)), n=3, cutoff=0.75)
        hint = f"did you mean {' or '.join(map(repr, close))}?" if close else f"keys there: {sorted(node)}"
        return UnknownKeyError(f"config key {dotted_key!r} does not exist; {hint}")


class UnknownKeyError(UsageError, KeyError):
    """An override of a key the config does not have; still a KeyError, as it always was."""

    def __str__(self):  # KeyError's own str() would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


_KINDS = ((bool, "a bool (True or False)"), (int, "an int"), (float, "a float"), (str, "a str"),
          ((list, tuple), "a list"), (dict, "a section"))


def _kind(value) -> str:
    return next((name for types, name in _KINDS if isinstance(value, types)), f"a {type(value).__name__}")


def _parse(raw: str, current):
    """The value a `--set` text means for a key whose value is now `current`."""
    if isinstance(current, bool) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
    return raw if isinstance(current, str) and not isinstance(value, str) else value


def _checked(key: str, current, value):
    """`value` if it has the type of the key's current value (an int passes as a float, a tuple as a
    list); a typo'd value fails here, naming the key, instead of deep inside training."""
    if isinstance(current, dict):
        raise UsageError(f"config key {key!r} is a section, not a value; set one of its keys: "
                         f"{sorted(flatten(current, key + '.'))}")
    if current is None:
        ok = True
    elif isinstance(current, bool) or isinstance(value, bool):
        ok = isinstance(current, bool) and isinstance(value, bool)
    elif isinstance(current, float):
        ok = isinstance(value, (int, float))
        value = float(value) if ok else value
    elif isinstance(current, (list, tuple)):
        ok = isinstance(value, (list, tuple))
        value = type(current)(value) if ok else value
    else:
        ok = isinstance(value, type(current))
    if not ok:
        raise UsageError(f"config key {key!r} takes {_kind(current)} (it is {current!r}); "
                         f"received {value!r}, {_kind(value)}")
    return value


# --- checks used by each reproduction's config tests ---------------------------------------

def flatten(node, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_keys(a: Config, b: Config) -> set:
    """The dotted keys whose values differ between two configs (a key in only one counts)."""
    a, b = flatten(a.to_dict()), flatten(b.to_dict())
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


def values_without_source(get_config, tags) -> list:
    """Lines of `get_config`'s source that set a value without a trailing comment naming its source.

    A value line is a literal in a dict (not a nested dict), a dict inside a list, or an
    attribute assignment (`config.x.y = ...`, how variants change values). Its comment must
    contain one of `tags` ("taken from", "reconstructed", a variant's "small:" ...). Returns the
    offending lines, stripped; empty when every value says where it comes from.
    """
    import inspect
    source = inspect.getsource(get_config)
    lines = source.splitlines()
    value_lines = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            for value in node.values:
                nested = isinstance(value, ast.Dict) or (
                    isinstance(value, ast.List) and any(isinstance(e, ast.Dict) for e in value.elts))
                if not nested:
                    value_lines.add(value.lineno)
        if isinstance(node, ast.List):
            value_lines.update(e.lineno for e in node.elts if isinstance(e, ast.Dict))
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
            value_lines.add(node.lineno)
    bad = []
    for n in sorted(value_lines):
        line = lines[n - 1]
        comment = line.split("#", 1)[1] if "#" in line else ""
        if not any(tag in comment for tag in tags):
            bad.append(line.strip())
    return bad
