"""SMTP: where customer notices go (``channel.py``), and a sink that stands in for a mail server (``sandbox/``)."""

from ledgerlink.connectors.smtp.channel import SMTPChannel, SMTPSettings, build_channel

__all__ = ["SMTPChannel", "SMTPSettings", "build_channel"]
