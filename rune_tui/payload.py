"""How big a message will be once sealed, from sizes alone: compose shows it as you type."""

from __future__ import annotations

from collections.abc import Iterable


def estimate_payload(
    sender: str,
    receiver: str,
    subject: str,
    body: str,
    attachments: Iterable[tuple[str, int]] = (),
    in_reply_to: str | None = None,
) -> int:
    """The size in bytes of the CLIENT MESSAGE that sending this would make.

    Computed from sizes alone (attachment contents are not read), following the layout of
    ``envelope.seal_message`` and ``seal_client_message``: content JSON with base64url
    attachments, length-prefixed fields and a signature, padded, sealed, then wrapped.
    """
    import json

    from rune_proto.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
    from rune_proto.padding import MAX_PLAINTEXT, padded_size
    from rune_proto.suite import HPKE_OVERHEAD

    doc: dict[str, object] = {"subject": subject, "body": body, "attachments": []}
    if in_reply_to is not None:
        doc["in_reply_to"] = in_reply_to
    size = len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    for index, (name, length) in enumerate(attachments):
        entry = json.dumps(
            {"filename": name, "data": ""}, ensure_ascii=False, separators=(",", ":")
        )
        size += len(entry.encode("utf-8")) + (length * 4 + 2) // 3 + (1 if index else 0)
    fields = (len(sender.encode()), PUBLIC_KEY_SIZE, len(receiver.encode()), 16, 8, size)
    inner = sum(fields) + 4 * len(fields) + SIGNATURE_SIZE
    sealed = padded_size(min(inner, MAX_PLAINTEXT)) + HPKE_OVERHEAD
    if inner > MAX_PLAINTEXT:
        sealed += inner - MAX_PLAINTEXT  # too big to send at all; keep the number honest
    return 4 + sealed + SIGNATURE_SIZE + HPKE_OVERHEAD
