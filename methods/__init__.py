"""Method registry: ``METHODS`` (name -> class), ``register(name)``, ``build_method(cfg)``.

Importing this package imports every method module so that they register themselves.
"""
from __future__ import annotations

import importlib

from methods.base import Instances, Method, Targets, sum_losses
from methods.config import MethodConfig

METHODS: dict[str, type[Method]] = {}


def register(name: str):
    """Class decorator registering a ``Method`` subclass under ``name``.

    Raises:
        ValueError: if ``name`` is already registered.
        TypeError: if the class has no ``Config`` dataclass derived from ``MethodConfig``.
    """

    def deco(cls):
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered by {METHODS[name].__qualname__}")
        if not isinstance(getattr(cls, "Config", None), type) or not issubclass(cls.Config, MethodConfig):
            raise TypeError(f"method {name!r}: class {cls.__qualname__} needs a Config(MethodConfig)")
        METHODS[name] = cls
        return cls

    return deco


# presets: name -> (registered class name, dict of config overrides). A preset is a registered
# method with a different config, never a fork (e.g. solov2_improved = solov2 with all toggles on).
PRESETS: dict[str, tuple[str, dict]] = {}


def register_preset(name: str, base: str, **overrides) -> None:
    if name in PRESETS or name in METHODS:
        raise ValueError(f"method or preset {name!r} already registered")
    PRESETS[name] = (base, overrides)


def available() -> list[str]:
    return sorted(set(METHODS) | set(PRESETS))


def method_config(name: str, **overrides) -> MethodConfig:
    """The default config of method or preset ``name`` with ``overrides`` applied.

    Raises:
        KeyError: unknown method (the message lists the registered ones).
    """
    base_overrides: dict = {}
    cls_name = name
    if name in PRESETS:
        cls_name, base_overrides = PRESETS[name]
    if cls_name not in METHODS:
        raise KeyError(f"unknown method {name!r}; registered: {', '.join(available())}")
    cfg_cls = METHODS[cls_name].Config
    return cfg_cls(**{**base_overrides, **overrides, "name": cls_name})


def build_method(cfg: MethodConfig) -> Method:
    """``METHODS[cfg.name](cfg)``."""
    if cfg.name not in METHODS:
        raise KeyError(f"unknown method {cfg.name!r}; registered: {', '.join(available())}")
    return METHODS[cfg.name](cfg)


_MODULES = ["methods.oracle", "methods.solov2", "methods.condinst", "methods.uniinst",
            "methods.maskrcnn", "methods.casnet"]
for _m in _MODULES:
    try:
        importlib.import_module(_m)
    except ModuleNotFoundError as e:  # a method module not written yet
        if e.name != _m:
            raise

__all__ = ["METHODS", "PRESETS", "Instances", "Method", "MethodConfig", "Targets", "available",
           "build_method", "method_config", "register", "register_preset", "sum_losses"]
