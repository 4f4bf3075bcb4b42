"""The command palette: the current screen's bindings, and the app-wide commands.

Kept apart from the app so that app.py is about what is shown when; nothing here runs
before the palette is opened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import partial
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingsMap
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

# Hidden bindings (cursor moves and the like) are not commands, except these.
ALWAYS_OFFERED = frozenset({"app.quit"})
# Screens where the app-wide mail commands (contacts, drafts) make no sense.
NOT_MAIL_SCREENS = frozenset({"WizardScreen", "ContactsScreen", "MyKeyScreen", "PassphraseScreen"})


class ScreenCommands(Provider):
    """The current screen's bindings as palette commands, so it offers only what fits here.

    Generated from the bindings rather than listed by hand, the palette can never offer a
    command the screen does not have, and a user's keymap shows up in its help text.
    """

    def _commands(self) -> Iterator[tuple[str, str, Callable[[], Any]]]:
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            name = binding.description
            if not name or binding.system or not active.enabled or name in seen:
                continue
            if not binding.show and binding.id not in ALWAYS_OFFERED:
                continue  # j/k, page up/down: keys to press, not things to look up
            seen.add(name)
            keys = self.app.get_key_display(binding)
            help_text = f"{binding.tooltip or name} ({keys})"
            yield name, help_text, partial(self.app.run_action, binding.action, active.node)

    async def discover(self) -> Hits:
        for name, help_text, command in self._commands():
            yield DiscoveryHit(name, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, command in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, help=help_text)


def system_commands(
    app: App[Any],
    screen: Screen[Any],
    *,
    signed_in: bool,
    has_accounts: bool,
    keymap: Mapping[str, str],
) -> Iterator[SystemCommand]:
    """Only the generic commands that make sense in a mail client; Quit comes from keys.

    The app says what it knows (``signed_in``, ``has_accounts``, the user's ``keymap``)
    and the commands run its actions by name, so this module never imports app.py.
    """

    def keys_of(binding_id: str) -> str:
        return app.get_key_display(binding_by_id(app, binding_id, keymap))

    def run(action: str) -> Callable[[], Awaitable[bool]]:
        return partial(app.run_action, action)

    if signed_in and type(screen).__name__ not in NOT_MAIL_SCREENS:
        yield SystemCommand(
            "Contacts",
            f"Pinned keys, first seen, how verified ({keys_of('app.contacts')})",
            run("contacts"),
        )
        yield SystemCommand(
            # Named for what people look for: "key", "fingerprint", "QR".
            "My key: fingerprint and QR code",
            f"Your address and fingerprint, to compare in person ({keys_of('app.my_key')})",
            run("my_key"),
        )
        yield SystemCommand(
            "Sent",
            f"The messages you sent, kept on this computer ({keys_of('app.sent')})",
            run("sent"),
        )
        yield SystemCommand(
            "Export / back up this account",
            "Your key, contacts, pins and settings in one passphrase-sealed file",
            run("export_backup"),
        )
        yield SystemCommand("Drafts", "Resume a message you have not sent yet", run("drafts"))
        yield SystemCommand(
            "Check the server",
            "Compare the server's certificate and key with the pinned ones",
            run("check_server"),
        )
    if has_accounts and type(screen).__name__ != "WizardScreen":
        yield SystemCommand(
            "Switch account", "Open the inbox of another account", run("switch_account")
        )
        yield SystemCommand(
            "Add account", "Register another address (runs the wizard)", run("add_account")
        )
    yield SystemCommand("Theme", "Change the colours (remembered)", run("change_theme"))
    yield SystemCommand(
        "Screenshot",
        "Save an SVG picture of this screen in the current folder",
        lambda: app.set_timer(0.1, app.deliver_screenshot),
    )


def binding_by_id(app: App[Any], binding_id: str, keymap: Mapping[str, str]) -> Binding:
    """The app's binding with this id, with the user's keymap applied (for its keys)."""
    bindings = BindingsMap(type(app).BINDINGS)
    if keymap:
        bindings.apply_keymap(dict(keymap))
    for binding_list in bindings.key_to_bindings.values():
        for binding in binding_list:
            if binding.id == binding_id:
                return binding
    raise KeyError(binding_id)
