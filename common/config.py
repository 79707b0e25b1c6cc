"""Experiment configs: nested dicts with attribute access and locked keys.

Like big_vision's ConfigDict, a config is built from plain literals by a `get_config()` in one
module per experiment; command-line overrides (`--set optimizer.lr=1e-4`) may only change keys
that exist, so a typo is an error, not a new silent key.
"""
import ast
import copy


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
        """Sets an existing (possibly nested) key; an unknown key is an error."""
        node, *_ = self, None
        parts = dotted_key.split(".")
        for part in parts[:-1]:
            if part not in node or not isinstance(node[part], Config):
                raise KeyError(f"Unknown config key {dotted_key!r} (no section {part!r}); "
                               f"known keys here: {sorted(node)}")
            node = node[part]
        if parts[-1] not in node:
            raise KeyError(f"Unknown config key {dotted_key!r}; known keys here: {sorted(node)}")
        node[parts[-1]] = value
        return self

    def apply_overrides(self, assignments):
        """Applies `key=value` strings; values are Python literals, else kept as strings."""
        for assignment in assignments or ():
            if "=" not in assignment:
                raise ValueError(f"Override must look like key=value, received: {assignment!r}")
            key, raw = assignment.split("=", 1)
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw
            self.override(key.strip(), value)
        return self


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
