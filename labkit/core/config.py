"""Declarative method configuration: one base class does the profile lookup, the override merge,
the unknown-key check, validation and the command-line flags, once for every method.

A method's settings are a frozen dataclass that subclasses :class:`MethodConfig`. Every field is
declared with :func:`option` (its help text is the CLI help), and the per-profile sizes are *data*:
``PROFILES = {"smoke": {...}, "laptop": {...}, "paper": {...}}``. ``XConfig.for_profile("laptop",
epochs=3)`` gives the laptop values with ``epochs`` overridden; an unknown key raises
:class:`~labkit.core.errors.UnknownNameError` listing the valid ones. ``XConfig.add_arguments(parser)``
adds ``--epochs``, ``--lr``, ... generated from the fields.

A field declared with ``option(choices=...)`` only takes those values, from the command line or from Python
(:meth:`MethodConfig.check`). The field ``ingredients`` (when a config declares it) names the parts of the transfer
set the method builds; :attr:`MethodConfig.INGREDIENTS` lists the valid names with one line each. A method that
trains a student (every method) declares its config on :class:`StudentRecipeConfig`, whose ``epochs``,
``batch_size`` and ``lr`` give :meth:`StudentRecipeConfig.recipe`.
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar, TypeVar

from labkit.core.errors import ConfigError, UnknownChoiceError, UnknownNameError
from labkit.core.profiles import Profile, get_profile
from labkit.core.transfer import TrainRecipe

C = TypeVar("C", bound="MethodConfig")


def option(default: Any = MISSING, *, help: str, choices: tuple[Any, ...] | None = None, cli: bool = True,
           flag: str | None = None) -> Any:
    """A config field with its help text and optional ``choices`` (the only values it takes); ``cli=False`` keeps
    it off the command line. Fields are keyword-only, so a subclass may re-declare one with a default."""
    meta = {"help": help, "choices": choices, "cli": cli, "flag": flag}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for a sequence default")
    return dataclasses.field(default=default, metadata=meta, kw_only=True)


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's settings (a frozen dataclass). Subclasses set ``PROFILES`` and fields."""

    #: profile name -> {field: value}; a profile may omit fields that have a default
    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {}
    #: valid transfer-set ingredient names -> one line on what each adds (empty: the config has none)
    INGREDIENTS: ClassVar[dict[str, str]] = {}
    #: how errors name this config, e.g. "DB3KD option"
    TITLE: ClassVar[str] = "option"
    #: named recipes -> the values they set on top of the profile's (configs with a ``variant`` field);
    #: ``"paper"`` is the paper's mechanism alone (every lab addition off), ``"lab"`` the profile as it is
    VARIANTS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: variant -> profile -> values the variant sets only in that profile (e.g. sizes that fit a laptop)
    VARIANT_PROFILES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}
    #: ingredient -> the settings only that ingredient reads (inert while it is off; see :meth:`inert_settings`)
    INGREDIENT_SETTINGS: ClassVar[dict[str, tuple[str, ...]]] = {}

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def profile_values(cls, profile: str, dataset: str | None = None) -> dict[str, Any]:
        """The table's values for ``profile`` (subclasses may add data-set-specific values)."""
        if profile not in cls.PROFILES:
            raise UnknownNameError(f"profile for {cls.TITLE}s", profile, list(cls.PROFILES))
        return dict(cls.PROFILES[profile])

    @classmethod
    def variant_values(cls, variant: str, profile: str) -> dict[str, Any]:
        """What ``variant`` sets on top of ``profile``'s values: :attr:`VARIANTS`, then :attr:`VARIANT_PROFILES`."""
        if variant not in cls.VARIANTS:
            raise UnknownNameError(f"{cls.TITLE.split()[0]} variant", variant, list(cls.VARIANTS),
                                   hint="Choose one with --variant (command line) or variant=... (Python).")
        return {**cls.VARIANTS[variant], **cls.VARIANT_PROFILES.get(variant, {}).get(profile, {})}

    @classmethod
    def field_names(cls) -> list[str]:
        """Every setting's name."""
        return [f.name for f in fields(cls)]

    @classmethod
    def for_profile(cls: type[C], profile: Profile | str | None = None, dataset: str | None = None,
                    **overrides: Any) -> C:
        """The profile's values with every non-``None`` override; unknown keys are refused with the valid list."""
        name = get_profile(profile).name
        valid = cls.field_names()
        for key, value in overrides.items():
            if value is not None and key not in valid:
                raise UnknownNameError(cls.TITLE, key, valid)
        values = cls.profile_values(name, dataset)
        variant = overrides.get("variant") or values.get("variant")
        if cls.VARIANTS and variant is not None:  # the variant's recipe first, explicit overrides on top
            values.update(cls.variant_values(str(variant).strip().lower(), name))
            values["variant"] = str(variant).strip().lower()
        values.update({k: v for k, v in overrides.items() if v is not None and k != "variant"})
        hints = typing.get_type_hints(cls)
        for key, value in values.items():  # lists from the CLI or JSON become the tuples the fields declare
            if isinstance(value, list) and _scalar_type(hints[key])[1]:
                values[key] = tuple(value)
        if values.get("ingredients") is not None:
            values["ingredients"] = ingredient_names(values["ingredients"])
        try:
            cfg = cls(**values)
        except TypeError as exc:  # a profile table missing a field without a default
            raise ConfigError(f"{cls.__name__} for profile {name!r}: {exc}") from exc
        cfg.check()
        return cfg

    def check(self) -> None:
        """Shared checks (every field's ``choices``, ingredient names), then the subclass's :meth:`validate`."""
        for f in fields(self):
            self._check_choices(f)
        if self.INGREDIENTS and hasattr(self, "ingredients"):
            chosen = tuple(self.ingredients)
            for name in chosen:
                if name not in self.INGREDIENTS:
                    raise UnknownNameError(f"{self.TITLE.split()[0]} ingredient", name, list(self.INGREDIENTS))
            if not chosen:
                raise ConfigError(f"choose at least one ingredient: {', '.join(self.INGREDIENTS)}")
        self.validate()

    def _check_choices(self, f: dataclasses.Field[Any]) -> None:
        """Refuse a value of ``f`` outside its declared ``choices`` (each element, for a sequence field)."""
        choices = f.metadata.get("choices")
        value = getattr(self, f.name)
        if not choices or (value is None and f.default is None):
            return
        for item in value if isinstance(value, tuple) else (value,):
            if item not in choices:
                flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
                raise UnknownChoiceError(f"{self.TITLE.split()[0]} {f.name}", str(item), [str(c) for c in choices],
                                         hint=f"Choose one with {flag} (command line) or {f.name}=... (Python).")

    def validate(self) -> None:
        """Raise :class:`~labkit.core.errors.ConfigError` for settings that cannot work (default: nothing to check)."""

    def uses(self, ingredient: str) -> bool:
        """Whether this configuration builds ``ingredient``."""
        if ingredient not in self.INGREDIENTS:
            raise UnknownNameError(f"{self.TITLE.split()[0]} ingredient", ingredient, list(self.INGREDIENTS))
        return ingredient in tuple(getattr(self, "ingredients", ()))

    def inert_settings(self) -> frozenset[str]:
        """The settings this configuration never reads: those of its ingredients that are off. Two runs that differ
        only in them ran the same thing (a scaling study does not re-run for them, nor name them)."""
        return frozenset(name for ingredient, names in self.INGREDIENT_SETTINGS.items() if not self.uses(ingredient)
                         for name in names)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    # ----------------------------------------------------------------------------- command line
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> list[str]:
        """Add one flag per field (``--field-name``), typed from the annotation, help from the metadata.

        Every flag defaults to ``None`` (= the profile's value). Returns the destinations added.
        """
        hints = typing.get_type_hints(cls)
        added: list[str] = []
        for f in fields(cls):
            meta = f.metadata
            if not meta.get("cli", False) or f.name in skip:
                continue
            flag = meta.get("flag") or "--" + f.name.replace("_", "-")
            kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": _help(cls, f.name, meta)}
            base, many = _scalar_type(hints[f.name])
            if f.name == "ingredients":
                kwargs.update(nargs="+", metavar="NAME", choices=sorted(cls.INGREDIENTS))
            elif base is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["type"] = base
                if many:
                    kwargs["nargs"] = "+"
                if meta.get("choices"):
                    kwargs["choices"] = meta["choices"]
            parser.add_argument(flag, **kwargs)
            added.append(f.name)
        return added


@dataclass(frozen=True)
class StudentRecipeConfig(MethodConfig):
    """A method config with the student's recipe: epochs, batch size and learning rate (Adam, one-cycle).

    A subclass may re-declare one of the three fields for its own help text or default.
    """

    epochs: int = option(help="student training epochs")
    batch_size: int = option(help="student batch size")
    lr: float = option(help="student learning rate (Adam, one-cycle)")

    def recipe(self, **extra: Any) -> TrainRecipe:
        """The :class:`~labkit.core.transfer.TrainRecipe` for these values; ``extra`` sets its other fields
        (``desc``, ``augment``, ``batch_hook``, ``seed_offset``)."""
        return TrainRecipe(self.epochs, self.batch_size, self.lr, **extra)

    def check(self) -> None:
        """The recipe can train (epochs >= 1, batch_size >= 1, lr > 0), then the shared checks."""
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            got = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
            raise ConfigError(f"the student needs epochs >= 1, batch_size >= 1 and lr > 0; got {got}")
        super().check()


def ingredient_names(value: str | Any) -> tuple[str, ...]:
    """Ingredient names as a normalised tuple: ``"a,b"`` (from ``--set`` or a notebook) or any sequence of names."""
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(str(i).strip().lower() for i in parts)


def _help(cls: type[MethodConfig], name: str, meta: Any) -> str:
    """A field's help with the profiles' values appended, '%' escaped for argparse."""
    def shown(value: Any) -> str:
        return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)

    per = [f"{prof} {shown(values[name])}" for prof, values in cls.PROFILES.items() if name in values]
    default = {f.name: f.default for f in fields(cls)}[name]
    if per and default is not MISSING and len(per) < len(cls.PROFILES):
        per.append(f"otherwise {shown(default)}")
    elif not per and default is not MISSING:
        per.append(shown(default))
    text = str(meta["help"]) + (f" (default: {'; '.join(per)})" if per else "")
    if name == "ingredients":
        text += ". Valid: " + "; ".join(f"{k}: {v}" for k, v in cls.INGREDIENTS.items())
    return text.replace("%", "%%")


def _scalar_type(hint: Any) -> tuple[type, bool]:
    """``(element type, is_sequence)`` of an annotation such as ``int``, ``float | None`` or ``tuple[float, ...]``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        return (args[0] if args else str), True
    if args:  # a union such as int | None
        return _scalar_type(args[0])
    return (hint if isinstance(hint, type) else str), False
