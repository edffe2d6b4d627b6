"""Webhook setup (spec §6.1) and fan-out: KMS signing keys, subscriptions, and events → notifications.

A state change is published once; every active subscription of the
transaction's organisation whose products and event types match gets its own
notification, signed with the subscription's KMS key. The payload is built
once per event (full TSS details or id only) and shared by all of them.
"""

from __future__ import annotations

import base64
import random
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from ledgerlink.connectors.cybersource.sandbox.emitter import Notification, WebhookEmitter
from ledgerlink.connectors.cybersource.sandbox.settings import SeedSubscription
from ledgerlink.connectors.cybersource.sandbox.store import Store, Subscription, Txn, WebhookKey, utc_now_text
from ledgerlink.connectors.cybersource.sandbox.views import id_only, transaction_details
from ledgerlink.connectors.cybersource.sandbox.wire import Reader, not_found
from ledgerlink.connectors.cybersource.schemas import SecurityPolicy
from ledgerlink.connectors.cybersource.webhooks import decode_key

PRODUCTS = {
    "cardProcessing": [
        "payments.payments.accept", "payments.payments.review", "payments.payments.reject",
        "payments.payments.partial.approval", "payments.captures.accept", "payments.refunds.accept",
        "payments.refunds.reject",
        "payments.voids.accept", "payments.reversals.accept",
    ],
    "decisionManager": ["risk.profile.decision.review", "risk.profile.decision.reject",
                        "risk.casemanagement.decision.accept", "risk.casemanagement.decision.reject"],
    # tms.token.expired and tms.token.deleted are this sandbox's names (spec §6.2 lists created/updated/
    # pan_updated); see docs/connectors/cybersource.md
    "tokenManagement": ["tms.token.created", "tms.token.updated", "tms.token.pan_updated", "tms.token.expired",
                        "tms.token.deleted"],
}
TOKEN_PRODUCT = "tokenManagement"


class WebhookHub:
    def __init__(self, store: Store, emitter: WebhookEmitter, rng: random.Random) -> None:
        self._store = store
        self._emitter = emitter
        self._rng = rng
        self._decoded: dict[str, bytes] = {}

    # --- KMS ---------------------------------------------------------------------------------

    def create_key(self, doc: dict[str, Any], merchant_id: str) -> dict[str, Any]:
        reader = Reader(doc)
        organization = reader.text("keyInformation.organizationId") or reader.text("keyInformation.tenant") \
            or merchant_id
        days = reader.text("keyInformation.expiryDuration") or "365"
        if not days.isdigit():
            reader.invalid.append("keyInformation.expiryDuration")
        reader.refuse_if_any()
        created = datetime.now(UTC)
        key = WebhookKey(
            key_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            organization_id=organization,
            key=base64.b64encode(secrets.token_bytes(32)).decode("ascii"),  # never predictable, even when seeded
            created=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            expiration_date=(created + timedelta(days=int(days))).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self._store.webhook_keys[key.key_id] = key
        self._store.current_key[organization] = key.key_id  # a new key replaces the organisation's old one
        return {
            "submitTimeUtc": utc_now_text(),
            "status": "ACCEPTED",
            "keyInformation": {"provider": "nrtd", "tenant": organization, "organizationId": organization,
                               "keyId": key.key_id, "key": key.key, "keyType": "sharedSecret", "status": "ACTIVE",
                               "expirationDate": key.expiration_date},
        }

    # --- subscriptions -----------------------------------------------------------------------

    def create_subscription(self, doc: dict[str, Any], merchant_id: str) -> dict[str, Any]:
        reader = Reader(doc)
        url = reader.text("webhookUrl", required=True)
        organization = reader.text("organizationId") or merchant_id
        products_doc = reader.get("products")
        products: dict[str, list[str]] = {}
        if not isinstance(products_doc, list) or not products_doc:
            reader.missing.append("products")
        else:
            for index, item in enumerate(products_doc):
                product = item.get("productId") if isinstance(item, dict) else None
                events = item.get("eventTypes", []) if isinstance(item, dict) else None
                if not isinstance(product, str) or not isinstance(events, list):
                    reader.invalid.append(f"products[{index}]")
                    continue
                products[product] = [e for e in events if isinstance(e, str)]
        policy = reader.get("securityPolicy")
        key_id = None
        if isinstance(policy, dict):
            try:
                key_id = SecurityPolicy.model_validate(policy).kms_key_id()
            except ValidationError:
                reader.invalid.append("securityPolicy")
        if key_id is not None and key_id not in self._store.webhook_keys:
            reader.invalid.append("securityPolicy.keyId")
        reader.refuse_if_any()
        assert url is not None
        if key_id is None and organization not in self._store.current_key:
            self.create_key({"keyInformation": {"organizationId": organization}}, merchant_id)
        subscription = Subscription(
            webhook_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            organization_id=organization, url=url, products=products, key_id=key_id, document={},
        )
        subscription.document = {
            **{k: v for k, v in doc.items() if k not in ("webhookId", "status", "createdOn")},
            "webhookId": subscription.webhook_id,
            "organizationId": organization,
            "status": subscription.status,
            "createdOn": utc_now_text(),
        }
        self._store.subscriptions[subscription.webhook_id] = subscription
        return subscription.document

    def seed(self, seeds: list[SeedSubscription], default_organization: str) -> None:
        for seed in seeds:
            organization = seed.organization_id or default_organization
            decode_key(seed.key)
            self._store.webhook_keys[seed.key_id] = WebhookKey(seed.key_id, organization, seed.key,
                                                               utc_now_text(), "2099-12-31T00:00:00Z")
            self._store.current_key.setdefault(organization, seed.key_id)
            products = seed.products or {product: [] for product in PRODUCTS}
            self.create_subscription({
                "name": "seeded", "webhookUrl": seed.url, "organizationId": organization,
                "products": [{"productId": p, "eventTypes": e} for p, e in products.items()],
                "securityPolicy": {"securityType": "key", "keyId": seed.key_id},
            }, organization)

    def list_subscriptions(self, organization_id: str) -> list[dict[str, Any]]:
        return [s.document for s in self._store.subscriptions.values() if s.organization_id == organization_id]

    def get_subscription(self, webhook_id: str) -> dict[str, Any]:
        subscription = self._store.subscriptions.get(webhook_id)
        if subscription is None:
            raise not_found("pts")
        return subscription.document

    def delete_subscription(self, webhook_id: str) -> None:
        if self._store.subscriptions.pop(webhook_id, None) is None:
            raise not_found("pts")

    def products(self, organization_id: str) -> list[dict[str, Any]]:
        return [{"productId": p, "eventTypes": [{"eventName": e} for e in events]} for p, events in PRODUCTS.items()]

    # --- fan-out -----------------------------------------------------------------------------

    def _key_bytes(self, key_id: str) -> bytes | None:
        key = self._decoded.get(key_id)
        if key is None and key_id in self._store.webhook_keys:
            key = self._decoded[key_id] = decode_key(self._store.webhook_keys[key_id].key)
        return key

    def publish_token_event(self, event_type: str, organization: str, data: dict[str, Any], data_id: str) -> None:
        """A ``tokenManagement`` notification: the list-shaped payload of TMS events (spec §6.3), with a
        ``notificationId`` that stays the same across retries and subscriptions."""
        targets = [s for s in self._store.subscriptions.values() if s.wants(organization, TOKEN_PRODUCT, event_type)]
        if not targets:
            return
        payload_json = orjson.dumps([{"data": data}])
        event_date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        notification_id = str(uuid.uuid4())
        notifications = []
        for subscription in targets:
            key_id = subscription.key_id or self._store.current_key.get(organization, "")
            key = self._key_bytes(key_id)
            if key is None:
                continue
            notifications.append(Notification(
                webhook_id=subscription.webhook_id, url=subscription.url, key_id=key_id, key=key,
                organization_id=organization, product_id=TOKEN_PRODUCT, event_type=event_type,
                event_date=event_date, payload_json=payload_json, data_id=data_id, notification_id=notification_id,
            ))
        self._emitter.publish(notifications)

    def publish(self, event_type: str, product_id: str, txn: Txn, data: dict[str, Any] | None = None) -> None:
        """Queue one notification per matching subscription; never waits for delivery. ``data``: a payload of
        the event's own (Decision Manager case decisions) instead of the transaction's."""
        organization = txn.merchant_id
        targets = [s for s in self._store.subscriptions.values() if s.wants(organization, product_id, event_type)]
        if not targets:
            return
        detail = self._emitter.settings.payload_detail
        if data is None:
            data = transaction_details(txn) if detail == "full" else id_only(txn)
        payload_json = orjson.dumps({"data": data})
        event_date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        notifications = []
        for subscription in targets:
            key_id = subscription.key_id or self._store.current_key.get(organization, "")
            key = self._key_bytes(key_id)
            if key is None:  # cannot happen: a subscription is only created once its organisation has a key
                continue
            notifications.append(Notification(
                webhook_id=subscription.webhook_id, url=subscription.url, key_id=key_id, key=key,
                organization_id=organization, product_id=product_id, event_type=event_type, event_date=event_date,
                payload_json=payload_json, data_id=txn.id,
            ))
        self._emitter.publish(notifications)
