"""``--help`` formatting shared by every command (and by ``asrtune train``'s parser, which
:mod:`asrtune.config` builds)."""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help unless the help already states its
    default in words ("default: 32 + 25 per second of audio")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "default:" in action.help:
            return action.help
        return super()._get_help_string(action)
