"""Compose's attachments: the Attach field, the list of files, and their size against the limit.

Files come two ways: typed as a path (read from disk only when sending, so a file edited
meanwhile goes out as it is then), or carried in memory — a forwarded message's files,
which exist nowhere on disk. Both are listed, removed and counted alike. The size line
compares the encrypted size the message would have with the server's limit, asked once
the first file is attached, so a message too large is refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from ..filenames import safe_filename
from .formatting import sentence

FORWARDED = "(forwarded)"  # shown where a file on disk shows its folder


def human_size(size: int) -> str:
    """1,536 → "1.5 KiB": binary units, as the server's limit is set in MiB."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class PathSuggester(Suggester):
    """Completes a file path as it is typed (→ accepts); folders end in ``/``."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        expanded = os.path.expanduser(value)
        folder, prefix = os.path.split(expanded)
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            return None
        for name in names:
            if not name.startswith(prefix) or name == prefix:
                continue
            if name.startswith(".") and not prefix.startswith("."):
                continue  # hidden files only when asked for
            rest = name[len(prefix) :]
            if os.path.isdir(os.path.join(folder or ".", name)):
                rest += "/"
            return value + rest
        return None


@dataclass(frozen=True, slots=True)
class AttachedFile:
    """One attached file: a path on disk, or bytes carried in memory (``data``)."""

    name: str
    size: int
    path: Path | None = None
    data: bytes | None = field(default=None, repr=False)

    @classmethod
    def carried(cls, name: str, data: bytes) -> AttachedFile:
        return cls(name, len(data), data=data)

    @property
    def where(self) -> str:
        return str(self.path.parent) if self.path is not None else FORWARDED

    @property
    def key(self) -> str | tuple[str, bytes]:
        """What a draft remembers of it: the path, or the name and the bytes themselves."""
        if self.path is not None:
            return str(self.path)
        assert self.data is not None
        return (self.name, self.data)

    def check(self) -> None:
        """ValueError if a file on disk can no longer be sent (gone, unreadable)."""
        if self.path is not None:
            check_attachment(str(self.path))

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


def check_attachment(text: str) -> AttachedFile:
    """The file at ``text`` (``~`` expanded), or ValueError saying why it cannot be sent."""
    if not text.strip():
        raise ValueError("type the path of a file to attach")
    path = Path(os.path.expanduser(text.strip())).absolute()
    if not path.exists():
        raise ValueError(f"there is no file {path}")
    if not path.is_file():
        raise ValueError(f"{path} is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path} cannot be read (permissions)")
    # The name goes out as the receiver will see it: no control characters, no blanks
    # at the ends (a name the protocol refuses would only fail later, at sending).
    return AttachedFile(safe_filename(path.name), path.stat().st_size, path=path)


class AttachmentList(OptionList):
    """The attached files with their sizes; Delete or x removes the highlighted one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete,backspace,x", "remove", "Remove attachment", id="compose.detach"),
    ]

    class Remove(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def action_remove(self) -> None:
        if self.highlighted is not None:
            self.post_message(self.Remove(self.highlighted))


Estimate = Callable[[Sequence[tuple[str, int]]], int]


class AttachmentPanel(Vertical):
    """The Attach row, the attachment list and the size line, in that order."""

    DEFAULT_CSS = "AttachmentPanel { height: auto; }"

    class Said(Message):
        """Something for the screen's status line (``error`` shows it as one)."""

        def __init__(self, text: str, error: bool = False) -> None:
            super().__init__()
            self.text = text
            self.error = error

    class Changed(Message):
        """A file was attached or removed: the draft has changed."""

    def __init__(
        self,
        *,
        estimate: Estimate,
        fetch_limit: Callable[[], Awaitable[int]],
        max_payload: int | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.estimate_for = estimate
        self.fetch_limit = fetch_limit
        self.max_payload = max_payload
        self.limit_failed = False
        self.attached: list[AttachedFile] = []

    def compose(self) -> ComposeResult:
        with Horizontal(classes="compose-field", id="compose-attach-row"):
            yield Label("Attach", classes="compose-label")
            yield Input(
                placeholder="path of a file (→ completes, Enter attaches)",
                id="compose-attach",
                compact=True,
                suggester=PathSuggester(),
            )
        yield AttachmentList(id="compose-attachments")
        yield Label("", id="compose-size", markup=False)

    def on_mount(self) -> None:
        self.show()

    def set_files(self, files: Iterable[AttachedFile]) -> None:
        """Replace what is attached (a draft resumed), without calling it a change."""
        self.attached = list(files)
        if self.is_mounted:
            self.show()

    def set_opening(self, carried: Iterable[AttachedFile], paths: Iterable[str]) -> str | None:
        """:meth:`set_files` with files carried in memory, then paths on disk checked now;
        the first problem (a path gone or unreadable), else None."""
        attached, problems = list(carried), []
        for path in paths:
            try:
                attached.append(check_attachment(path))
            except ValueError as exc:
                problems.append(str(exc))
        self.set_files(attached)
        return problems[0] if problems else None

    @property
    def estimate(self) -> int:
        """The encrypted size of the message with these files (see ``estimate_payload``)."""
        return self.estimate_for([(a.name, a.size) for a in self.attached])

    @on(Input.Submitted, "#compose-attach")
    def _attach_typed(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            attached = check_attachment(event.value)
        except ValueError as exc:
            reason = sentence(str(exc)).rstrip(".")  # check_attachment's words, as a sentence
            self.post_message(self.Said(f"Not attached: {reason}.", error=True))
            return
        if any(a.path == attached.path for a in self.attached):
            self.post_message(self.Said(f"{attached.name} is already attached.", error=True))
            return
        self.attached.append(attached)
        event.input.value = ""
        self.post_message(self.Said(f"Attached {attached.name} ({human_size(attached.size)})."))
        self.show()
        self.post_message(self.Changed())

    @on(AttachmentList.Remove)
    def _remove(self, event: AttachmentList.Remove) -> None:
        event.stop()
        if 0 <= event.index < len(self.attached):
            gone = self.attached.pop(event.index)
            self.post_message(self.Said(f"Removed {gone.name}."))
            self.show()
            if not self.attached:
                self.query_one("#compose-attach", Input).focus()
            self.post_message(self.Changed())

    def show(self) -> None:
        """List the files, ask for the limit if it is not known yet, and show the size."""
        listing = self.query_one(AttachmentList)
        previous = listing.highlighted or 0
        listing.clear_options()
        width = max((len(a.name) for a in self.attached), default=0)
        listing.add_options(
            Option(f"{a.name.ljust(width)}  {human_size(a.size):>10}  {a.where}")
            for a in self.attached
        )
        listing.display = bool(self.attached)
        if self.attached:  # something to act on as soon as the list has the focus
            listing.highlighted = min(previous, len(self.attached) - 1)
        if self.attached and self.max_payload is None and not self.limit_failed:
            self._fetch_limit()
        self.show_size()

    def show_size(self) -> bool:
        """Say how big the message is against the server's limit; False if too big."""
        label = self.query_one("#compose-size", Label)
        label.display = bool(self.attached)
        if not self.attached:
            return True
        total = sum(a.size for a in self.attached)
        noun = "file" if len(self.attached) == 1 else "files"
        text = f"{len(self.attached)} {noun}, {human_size(total)}"
        fits = True
        if self.max_payload is not None:
            estimate = self.estimate
            fits = estimate <= self.max_payload
            text += (
                f" · about {human_size(estimate)} once encrypted"
                f" · this server accepts up to {human_size(self.max_payload)}"
            )
            if not fits:
                text += " — too large: remove an attachment"
        elif self.limit_failed:
            text += " · the server's size limit is unknown (offline?)"
        else:
            text += " · asking the server for its size limit…"
        label.update(text)
        label.set_class(not fits, "-error")
        return fits

    @work(group="limit", exclusive=True, exit_on_error=False)
    async def _fetch_limit(self) -> None:
        try:
            self.max_payload = await self.fetch_limit()
        except Exception:  # offline, or the server changed: checked again when sending
            self.limit_failed = True
        self.show_size()

    async def read_all(self) -> list[tuple[str, bytes]]:
        """Name and content of every file, read off the event loop (for sending)."""
        return [(a.name, await asyncio.to_thread(a.read)) for a in self.attached]
