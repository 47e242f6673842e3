"""What publishing needs to know per model family: its publish recipe, which the family
owns (its registration names it; the five first families' are in
:mod:`asrtune.models.recipes`). Code in :mod:`asrtune.publish` looks it up here and never
branches on a family name.
"""

from __future__ import annotations

from asrtune.errors import AsrtuneError
from asrtune.models import FAMILIES
from asrtune.models.family import FamilyRecipe, UsageContext

__all__ = ["FamilyRecipe", "UsageContext", "recipe_for"]


def recipe_for(family: str) -> FamilyRecipe:
    """The publish recipe of ``family`` (named by its registration)."""
    if family not in FAMILIES:
        raise AsrtuneError(f"publishing is not supported for {family} models yet")
    return FAMILIES[family].publish_recipe()
