"""common.config_types: gin-bound dataclass values checked against their annotations, by key."""

import dataclasses
from typing import Any, Callable, Optional, Tuple

import pytest

from common import config_types


@dataclasses.dataclass
class Settings:
    steps: int = 1
    lr: float = 0.1
    name: str = "a"
    flag: bool = False
    size: Optional[Tuple[int, int]] = None
    path: Optional[str] = None
    fn: Callable[..., Any] = print


def test_good_values_pass():
    config = Settings(steps=3, lr=2, name="b", flag=True, size=(2, 3), path=None, fn=len)
    assert config_types.check_types(config) is config


@pytest.mark.parametrize("field, value, message", [
    ("steps", "4", "Settings.steps = '4': expected int, got str"),
    ("steps", 4.0, "Settings.steps = 4.0: expected int, got float"),
    ("steps", True, "Settings.steps = True: expected int, got bool"),
    ("lr", "0.1", "Settings.lr = '0.1': expected float, got str"),
    ("flag", 1, "Settings.flag = 1: expected bool, got int"),
    ("size", 5, "Settings.size = 5: expected Optional[Tuple[int, int]], got int"),
    ("path", 3, "Settings.path = 3: expected Optional[str], got int"),
])
def test_a_wrong_type_names_the_key(field, value, message):
    with pytest.raises(ValueError) as error:
        config_types.check_types(dataclasses.replace(Settings(), **{field: value}))
    assert str(error.value) == message
    with pytest.raises(ValueError, match=f"^loss.{field} = "):
        config_types.check_types(dataclasses.replace(Settings(), **{field: value}), name="loss")
