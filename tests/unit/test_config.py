from dataclasses import dataclass
from typing import Literal

import pytest

from ssmrec_lib.config import ConfigError, from_dict, parse_overrides


@dataclass(frozen=True)
class Cfg:
    d_model: int = 64
    lr: float = 1e-3
    kernel: Literal["auto", "ref", "fused"] = "auto"
    bf16: bool = False


def test_from_dict_types_and_coercion():
    c = from_dict(Cfg, {"d_model": "32", "lr": 1, "kernel": "ref", "bf16": "true"})
    assert c == Cfg(d_model=32, lr=1.0, kernel="ref", bf16=True)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['d_modle'\].*d_model"):
        from_dict(Cfg, {"d_modle": 32})


@pytest.mark.parametrize("bad", [{"d_model": "abc"}, {"kernel": "cuda"}, {"bf16": "maybe"}, {"d_model": 1.5}])
def test_wrong_values_raise(bad):
    with pytest.raises(ConfigError):
        from_dict(Cfg, bad)


def test_parse_overrides():
    assert parse_overrides(["a=1", "b = x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError):
        parse_overrides(["novalue"])
