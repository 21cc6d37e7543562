"""Configuration: one argparse spec; a flat YAML whose keys are the option names sets defaults; --key value overrides.

Every problem (unknown key, wrong type, out-of-range value) is a MsvisionError naming the key and what is expected.
"""
import argparse
import json
import os

import yaml

from msvision.errors import ArgumentParser, MsvisionError
from msvision.config.options import OPTIONS


def _type_name(opt):
    base = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a mapping (on the command line: a JSON object)"}[opt.kind]
    text = f"a list of {base.split(' ', 1)[1]}s" if opt.is_list else base
    return text + (" or null" if opt.nullable else "")


def _check_scalar(opt, value, where):
    if opt.int_as_str and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if opt.kind is bool:
        ok = isinstance(value, bool)
    elif opt.kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif opt.kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif opt.kind is dict:
        ok = isinstance(value, dict) and all(isinstance(key, str) for key in value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise MsvisionError(f"{where}'{opt.name}' must be {_type_name(opt)}, got {value!r}")
    if opt.choices is not None and value not in opt.choices:
        raise MsvisionError(f"{where}'{opt.name}' must be one of {', '.join(map(str, opt.choices))}, got {value!r}")
    below = opt.low is not None and (value <= opt.low if opt.open_low else value < opt.low)
    above = opt.high is not None and (value >= opt.high if opt.open_high else value > opt.high)
    if below or above:
        if opt.high is None:
            bounds = f"{'>' if opt.open_low else '>='} {opt.low}"
        elif opt.low is None:
            bounds = f"{'<' if opt.open_high else '<='} {opt.high}"
        else:
            bounds = f"in {'(' if opt.open_low else '['}{opt.low}, {opt.high}{')' if opt.open_high else ']'}"
        raise MsvisionError(f"{where}'{opt.name}' must be {bounds}, got {value!r}")
    return float(value) if opt.kind is float else value


def check_value(opt, value, where=""):
    """Validate one value against its option; returns it normalised (ints given for floats become floats)."""
    if opt.bool_as_str and (isinstance(value, bool) or value == "false"):
        value = "true" if value is True else None
    if value is None:
        if opt.nullable:
            return None
        raise MsvisionError(f"{where}'{opt.name}' must be {_type_name(opt)}, got null")
    if opt.is_list:
        if not isinstance(value, (list, tuple)) or not value:
            raise MsvisionError(f"{where}'{opt.name}' must be {_type_name(opt)}, got {value!r}")
        if opt.length is not None and len(value) != opt.length:
            raise MsvisionError(f"{where}'{opt.name}' must be {opt.length} values, got {len(value)}: {value!r}")
        return [_check_scalar(opt, item, where) for item in value]
    return _check_scalar(opt, value, where)


def _parse_bool(text):
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def parse_json_mapping(text):
    """A JSON object given on a command line (model_args), or argparse's type error naming what was expected."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got '{text}' ({err.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object ({{\"key\": value}}), got '{text}'")
    return value


def _parse_nullable(kind):
    def parse(text):
        return None if text.lower() in ("none", "null") else kind(text)
    parse.__name__ = kind.__name__
    return parse


def build_parser(description=None, names=None):
    """The argparse parser of the options `names` (default: every option); defaults are the built-in ones, YAML
    overrides them."""
    parser = ArgumentParser(description=description)
    parser.add_argument("-c", "--config", default=None, help="YAML file whose keys are option names")
    for opt in OPTIONS.values() if names is None else (OPTIONS[name] for name in names):
        kind = {bool: _parse_bool, dict: parse_json_mapping}.get(opt.kind, opt.kind)
        if opt.nullable:
            kind = _parse_nullable(kind)
        if opt.kind is bool or opt.bool_as_str:  # "--ema" alone means true; "--ema false" also works
            parser.add_argument(f"--{opt.name}", type=kind, default=opt.default, help=opt.help, nargs="?",
                                const=True if opt.kind is bool else "true")
        else:
            parser.add_argument(f"--{opt.name}", type=kind, default=opt.default, help=opt.help,
                                nargs="+" if opt.is_list else None)
    return parser


def load_yaml(path):
    """Read a flat YAML config and validate every key and value."""
    if os.path.isdir(path):
        recipes = sorted(name for name in os.listdir(path) if name.endswith((".yaml", ".yml")))
        inside = f" (it holds {', '.join(recipes[:6])}{', ...' if len(recipes) > 6 else ''})" if recipes else ""
        raise MsvisionError(f"config '{path}' is a folder; expected a YAML file{inside}")
    if not os.path.isfile(path):
        raise MsvisionError(f"config file not found: '{path}'")
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle) or {}
        except yaml.YAMLError as err:
            raise MsvisionError(f"config {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise MsvisionError(f"config {path} must be a mapping of option: value")
    where = f"config {path}: "
    for key, value in data.items():
        if key not in OPTIONS:
            raise MsvisionError(f"{where}unknown key '{key}' (not an option; see --help for the list)")
        data[key] = check_value(OPTIONS[key], value, where)
    return data


def parse_config(argv=None, description=None, extra_args=None, base=None, names=None):
    """Resolve built-in defaults <- base dict <- YAML (--config) <- command line into an argparse.Namespace of
    every option.

    extra_args: callable(parser) adding entry-point-only arguments (not stored in the config).
    base: values that replace the built-in defaults (e.g. the config stored in a checkpoint).
    names: the options this command line offers (its --help lists only them); the others keep base's or the
    built-in value, and a YAML file may set them all.
    """
    parser = build_parser(description, names)
    if extra_args:
        extra_args(parser)
    values = {name: opt.default for name, opt in OPTIONS.items()}
    values.update(base or {})
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        values.update(load_yaml(pre.config))
    parser.set_defaults(**{k: v for k, v in values.items() if names is None or k in names})
    args = parser.parse_args(argv)
    for name, value in values.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    for opt in OPTIONS.values():
        setattr(args, opt.name, check_value(opt, getattr(args, opt.name), "option "))
    check_relations(args)
    return args


def check_relations(args):
    """Constraints between options that the table's per-option ranges cannot state."""
    shadowed = sorted(set(args.model_args) & set(OPTIONS))
    if shadowed:
        raise MsvisionError(f"model_args key '{shadowed[0]}' is an option of its own: set {shadowed[0]} directly, "
                            f"not inside model_args")
    if args.htd_lower >= args.htd_upper:
        raise MsvisionError(f"htd_lower ({args.htd_lower:g}) must be below htd_upper ({args.htd_upper:g}): with "
                            f"L >= U the htd rate rises or stays flat (the anchors' default is -6 and 3)")


def config_dict(args):
    """The resolved options (only the config keys) as a plain dict."""
    return {name: getattr(args, name) for name in OPTIONS}


def dump_config(args):
    return yaml.safe_dump(config_dict(args), sort_keys=False)


def config_from_text(text, source="checkpoint"):
    """Options stored as YAML text (in a checkpoint), validated, over the built-in defaults."""
    data = yaml.safe_load(text) or {}
    values = {name: opt.default for name, opt in OPTIONS.items()}
    for key, value in data.items():
        if key in OPTIONS:  # keys from a newer/older version are ignored
            values[key] = check_value(OPTIONS[key], value, f"config in {source}: ")
    return argparse.Namespace(**values)
