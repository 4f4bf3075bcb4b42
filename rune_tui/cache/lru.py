"""The few messages kept decrypted in memory, bounded by count and by blob bytes."""

from __future__ import annotations

from collections import OrderedDict

from rune_proto.client import ReceivedMessage

OPENED_ENTRIES = 32  # full messages kept decrypted in memory
OPENED_BYTES = 32 * 1024 * 1024  # ... and at most this many blob bytes of them


class OpenedMessages:
    """Least recently used first; the cache's lock guards it."""

    def __init__(self) -> None:
        self._messages: OrderedDict[str, ReceivedMessage] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._messages)

    def get(self, message_id: str) -> ReceivedMessage | None:
        message = self._messages.get(message_id)
        if message is not None:
            self._messages.move_to_end(message_id)
        return message

    def remember(self, message_id: str, message: ReceivedMessage) -> None:
        self.forget(message_id)
        self._messages[message_id] = message
        self._bytes += message.size
        while self._messages and (
            len(self._messages) > OPENED_ENTRIES or self._bytes > OPENED_BYTES
        ):
            _, old = self._messages.popitem(last=False)
            self._bytes -= old.size

    def forget(self, message_id: str) -> None:
        old = self._messages.pop(message_id, None)
        if old is not None:
            self._bytes -= old.size

    def clear(self) -> None:
        self._messages.clear()
        self._bytes = 0
