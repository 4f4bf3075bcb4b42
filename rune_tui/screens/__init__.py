"""The mail screens: inbox, reader, compose, help and a yes/no prompt.

Import each from its module (``from rune_tui.screens.inbox import InboxScreen``); this
package file stays light so importing one screen does not pull in the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.screen import Screen

_STYLE_DIR = Path(__file__).resolve().parent.parent / "styles"
# The stylesheets the screens share, here so that no screen imports another for them.
STYLES = _STYLE_DIR / "mail.tcss"
DAILY_STYLES = _STYLE_DIR / "daily.tcss"
MY_KEY_STYLES = _STYLE_DIR / "my_key.tcss"


def leave(screen: Screen[Any], result: Any = None) -> None:
    """Dismiss ``screen`` even if a prompt or help was opened above it meanwhile.

    ``Screen.dismiss`` pops whatever is on top; a worker that finishes while a modal is
    open would otherwise close the modal instead of its own screen.
    """
    if not screen.is_current:
        screen.pop_until_active()
    screen.dismiss(result)
