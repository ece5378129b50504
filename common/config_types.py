"""Type checks of gin-bound dataclass configs: a value of the wrong type is an error naming its key."""

import dataclasses
import typing


def fits(value, annotation):
    """Whether value fits a field annotation: bool, int, float (ints too), str, tuple, Optional and
    Union of these; other annotations (Callable, Mapping, Any) accept anything."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        return any(fits(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation in (int, float) and isinstance(value, bool):
        return False
    if annotation is float:
        return isinstance(value, (int, float))
    if annotation is tuple or origin is tuple:
        return isinstance(value, (tuple, list))
    if annotation in (bool, int, str):
        return isinstance(value, annotation)
    return True


def type_name(annotation):
    """`int`, `Optional[str]`, ... as a config file would read it."""
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace('typing.', '')


def check_types(config, name=None):
    """Raises ValueError naming `<name>.<field>` (name: the class name) for the first field whose
    value does not fit its annotation; returns config."""
    hints = typing.get_type_hints(type(config))
    name = name or type(config).__name__
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not fits(value, hints[field.name]):
            raise ValueError(f'{name}.{field.name} = {value!r}: expected {type_name(hints[field.name])}, '
                             f'got {type(value).__name__}')
    return config
