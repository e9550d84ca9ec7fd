"""CLI options built from the config models, so a flag mirrors its setting exactly.

A setting is declared once, on its pydantic model (`crowdsight.config`): type, bounds
(``ge``/``gt``/``le``/``lt``), description and default. `setting_option` turns that field into
a typer option with the same help text and bounds, and `setting_default` gives its default,
so ``--density-every-s`` cannot drift from `PipelineSettings.density_every_s`.

Every value is also validated as the model's field (a callback), so the CLI refuses exactly
what the model refuses (exclusive bounds, which click ranges cannot show, an unknown detector),
with pydantic's reason in one line instead of a traceback.

Example:
    >>> from crowdsight.config.pipeline import PipelineSettings
    >>> opt = setting_option(PipelineSettings, "detect_every")
    >>> (opt.min, opt.max, opt.help[:30])
    (1, 1000, 'Run the detector on every N-th')
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

__all__ = ["field_bounds", "setting_default", "setting_option"]


def field_bounds(field: FieldInfo) -> dict[str, float]:
    """The numeric bounds of a model field: any of ``ge``, ``gt``, ``le``, ``lt``.

    Example:
        >>> from crowdsight.config.server import ServerSettings
        >>> field_bounds(ServerSettings.model_fields["port"])
        {'ge': 1, 'le': 65535}
    """
    out: dict[str, float] = {}
    for meta in field.metadata:
        for name in ("ge", "gt", "le", "lt"):
            value = getattr(meta, name, None)
            if isinstance(value, int | float):
                out[name] = value
    return out


def setting_default(model: type[BaseModel] | BaseModel, name: str) -> Any:
    """The default of ``model``'s field ``name`` (an instance: that instance's value).

    Pass an instance to mirror a preset, e.g. `crowdsight.config.pipeline.live_defaults`.
    """
    if isinstance(model, BaseModel):
        return getattr(model, name)
    return model.model_fields[name].get_default(call_default_factory=True)


def _validator(model: type[BaseModel], name: str, flag: str) -> Any:
    """A typer callback validating a value as ``model``'s field ``name`` (None: not given)."""

    def check(value: Any) -> Any:
        if value is None:
            return value
        try:
            model.__pydantic_validator__.validate_assignment(model.model_construct(), name, value)
        except ValidationError as exc:
            raise typer.BadParameter(exc.errors()[0]["msg"], param_hint=flag) from None
        return value

    return check


def setting_option(
    model: type[BaseModel], name: str, *param_decls: str, help: str | None = None
) -> Any:
    """A typer option for ``model``'s field ``name``: its description as help, its bounds.

    Args:
        model: The config model that declares the setting.
        name: The field.
        *param_decls: Flag names, e.g. ``"--classes"`` (default: from the parameter name).
        help: Extra words appended to the field's description (e.g. what omitting it does).

    Returns:
        A ``typer.Option`` to put in ``Annotated[type, ...]``; give the parameter
        `setting_default` (or None for "not given") as its default.
    """
    field = model.model_fields[name]
    bounds = field_bounds(field)
    text = field.description or ""
    if help:
        text = f"{text} {help}".strip()
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    flag = param_decls[0] if param_decls else "--" + name.replace("_", "-")
    return typer.Option(
        *param_decls,
        help=text,
        min=low,
        max=high,
        callback=_validator(model, name, flag),
    )
