"""Widgets and text helpers shared by the mail screens."""

from __future__ import annotations

from .message_header import MessageHeader
from .message_list import MessageList

__all__ = ["MessageHeader", "MessageList"]
