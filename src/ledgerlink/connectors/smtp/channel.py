"""``SMTPChannel``: customer notices as plain-text e-mail over SMTP (the stdlib ``smtplib``, on a thread).

One connection per message: notices are few (a handful per failed renewal), and a fresh connection cannot be
left half-broken by the previous one. Failures map onto the kit's error tree by what the server said:
4xx replies, timeouts and refused connections are worth retrying (``RetryableError``); 5xx replies
(recipient refused, message rejected) are not (``Rejected``); a refused login is ``AuthenticationFailed``.

Each message carries ``Message-ID`` and ``X-Ledgerlink-Notification`` derived from the notice's key, so a notice
sent twice (the sender crashed after the server accepted it) is recognisably the same message.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ledgerlink.connectors.kit.errors import (
    AuthenticationFailed,
    ConnectorError,
    Rejected,
    RetryableError,
)
from ledgerlink.model import Notification

SYSTEM = "smtp"
KEY_HEADER = "X-Ledgerlink-Notification"


class SMTPSettings(BaseModel):
    """``notifications.smtp`` in an integration file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    from_address: str = "billing@localhost"
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


def message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@ledgerlink>"


def build_message(notification: Notification, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = notification.to
    message["Subject"] = notification.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id(notification.key)
    message[KEY_HEADER] = notification.key
    message.set_content(notification.body)
    return message


class SMTPChannel:
    name = SYSTEM

    def __init__(self, settings: SMTPSettings) -> None:
        self.settings = settings

    async def send(self, notification: Notification) -> None:
        message = build_message(notification, self.settings.from_address)
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        s = self.settings
        try:
            with smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds) as client:
                client.ehlo()
                if s.starttls:
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
                if s.username:
                    client.login(s.username, s.password.get_secret_value() if s.password else "")
                client.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise AuthenticationFailed(f"smtp: login refused: {exc.smtp_code} {_text(exc.smtp_error)}",
                                       system=SYSTEM, operation="send", status=exc.smtp_code) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise _by_code(min(codes) if codes else 550, "recipient refused", exc) from exc
        except smtplib.SMTPResponseException as exc:
            raise _by_code(exc.smtp_code, _text(exc.smtp_error), exc) from exc
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, disconnected
            raise RetryableError(f"smtp: {type(exc).__name__}: {exc}", system=SYSTEM, operation="send") from exc

    async def aclose(self) -> None:
        return None


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _by_code(code: int, text: str, exc: Exception) -> ConnectorError:
    cls: type[ConnectorError] = RetryableError if 400 <= code < 500 else Rejected
    return cls(f"smtp: {code} {text}", system=SYSTEM, operation="send", status=code, provider_code=str(code))


def build_channel(settings: Mapping[str, Any] | SMTPSettings) -> SMTPChannel:
    """The registry's entry point."""
    if not isinstance(settings, SMTPSettings):
        settings = SMTPSettings.model_validate(dict(settings))
    return SMTPChannel(settings)
