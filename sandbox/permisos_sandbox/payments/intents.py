"""PaymentIntents, PaymentMethods, Charges and Refunds: Stripe's state machine for card and OXXO.

Every method runs without awaiting, so one request's changes are atomic on the event loop.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import cards, forms, oxxo
from .cards import TestCard
from .errors import ControlError, StripeError, invalid, missing, state_error
from .events import EventLog, RequestInfo
from .forms import Params
from .store import Json, Store, Voucher, new_id, now, public

SUPPORTED_TYPES = ("card", "oxxo")
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
# Stripe's smallest charge in MXN is MX$10.00; its largest is 8 digits.
MIN_AMOUNT = {"mxn": 1_000}
MAX_AMOUNT = 99_999_999

CREATE_PARAMS = (
    "amount",
    "currency",
    "payment_method_types",
    "metadata",
    "description",
    "receipt_email",
    "payment_method",
    "confirm",
    "payment_method_options",
    "payment_method_data",
    "return_url",
    "automatic_payment_methods",
    "statement_descriptor",
    "statement_descriptor_suffix",
)
UPDATE_PARAMS = (
    "amount",
    "currency",
    "metadata",
    "description",
    "receipt_email",
    "payment_method",
    "payment_method_types",
    "payment_method_options",
    "payment_method_data",
    "statement_descriptor",
    "statement_descriptor_suffix",
)
CONFIRM_PARAMS = (
    "payment_method",
    "payment_method_data",
    "payment_method_options",
    "receipt_email",
    "return_url",
)
AUTH_FAILURE = (
    "The provided PaymentMethod has failed authentication. You can provide payment_method_data "
    "or a new PaymentMethod to attempt to fulfill this PaymentIntent again."
)
EXPIRED_ATTEMPT = (
    "The latest attempt to pay this PaymentIntent has expired. Provide a new payment method to "
    "attempt to fulfill this PaymentIntent again."
)


class Payments:
    def __init__(
        self,
        store: Store,
        events: EventLog,
        *,
        base_url: Callable[[], str],
        default_oxxo_days: Callable[[], int],
        schedule: Callable[[float, Callable[[], object]], None],
        oxxo_test_delay: Callable[[], float],
    ) -> None:
        self.store = store
        self.events = events
        self.base_url = base_url
        self.default_oxxo_days = default_oxxo_days
        self.schedule = schedule
        self.oxxo_test_delay = oxxo_test_delay

    # ---- lookups -----------------------------------------------------------------------------

    def intent(self, intent_id: str) -> Json:
        pi = self.store.intents.get(intent_id)
        if pi is None:
            raise missing("payment_intent", intent_id, "intent")
        return pi

    def charge(self, charge_id: str) -> Json:
        ch = self.store.charges.get(charge_id)
        if ch is None:
            raise missing("charge", charge_id, "charge")
        return ch

    def refund(self, refund_id: str) -> Json:
        re_ = self.store.refunds.get(refund_id)
        if re_ is None:
            raise missing("refund", refund_id, "refund")
        return re_

    def payment_method(self, pm_id: str) -> Json:
        pm = self.store.payment_methods.get(pm_id)
        if pm is None:
            raise missing("payment_method", pm_id, "payment_method")
        return pm

    # ---- PaymentMethods ----------------------------------------------------------------------

    def create_payment_method(self, params: Params, param: str = "") -> Json:
        """POST /v1/payment_methods, or `payment_method_data` on an intent (param prefix)."""
        where = (lambda name: f"{param}[{name}]") if param else (lambda name: name)
        forms.reject_unknown(params, ("type", "card", "billing_details", "metadata"))
        kind = forms.get_str(params, "type", required=True)
        billing = forms.get_dict(params, "billing_details")
        name, email = billing.get("name"), billing.get("email")
        pm: Json = {
            "id": new_id("pm"),
            "object": "payment_method",
            "billing_details": {
                "address": {
                    "city": None,
                    "country": None,
                    "line1": None,
                    "line2": None,
                    "postal_code": None,
                    "state": None,
                },
                "email": email if isinstance(email, str) else None,
                "name": name if isinstance(name, str) else None,
                "phone": billing.get("phone") if isinstance(billing.get("phone"), str) else None,
            },
            "created": now(),
            "customer": None,
            "livemode": False,
            "metadata": forms.metadata(params),
            "type": kind,
        }
        if kind == "card":
            card = forms.get_dict(params, "card")
            number = str(card.get("number", "")).replace(" ", "")
            if not number:
                raise invalid(
                    f"Missing required param: {where('card')}[number].",
                    code="parameter_missing",
                    param=f"{where('card')}[number]",
                )
            test = cards.BY_NUMBER.get(number)
            if test is None:
                raise StripeError(
                    402,
                    "Your card number is incorrect.",
                    type="card_error",
                    code="incorrect_number",
                    param="number",
                )
            pm["card"] = cards.card_details(test)
            pm["_card"] = test
        elif kind == "oxxo":
            oxxo.check_billing_details(
                pm["billing_details"]["name"],
                pm["billing_details"]["email"],
                where("billing_details"),
            )
            pm["oxxo"] = {}
        else:
            raise invalid(
                f"Invalid {where('type')}: must be one of card, oxxo",
                code="parameter_invalid_string",
                param=where("type"),
            )
        self.store.payment_methods[pm["id"]] = pm
        return pm

    def _resolve_payment_method(self, pm_id: str) -> Json:
        test = cards.BY_ID.get(pm_id)
        if test is not None:
            # Like Stripe, each use of a test id makes a fresh PaymentMethod.
            pm: Json = {
                "id": new_id("pm"),
                "object": "payment_method",
                "billing_details": {"address": None, "email": None, "name": None, "phone": None},
                "card": cards.card_details(test),
                "created": now(),
                "customer": None,
                "livemode": False,
                "metadata": {},
                "type": "card",
                "_card": test,
            }
            self.store.payment_methods[pm["id"]] = pm
            return pm
        found = self.store.payment_methods.get(pm_id)
        if found is None:
            raise invalid(
                f"No such PaymentMethod: '{pm_id}'", code="resource_missing", param="payment_method"
            )
        return found

    def _attach_method(self, pi: Json, params: Params) -> None:
        """Apply `payment_method` or `payment_method_data` from create/update/confirm params."""
        pm_id = forms.get_str(params, "payment_method")
        data = params.get("payment_method_data")
        if pm_id and data:
            raise invalid(
                "You cannot specify both payment_method and payment_method_data.",
                param="payment_method_data",
            )
        if pm_id:
            pm = self._resolve_payment_method(pm_id)
        elif data:
            if not isinstance(data, dict):
                raise invalid(
                    "Invalid object: payment_method_data",
                    code="parameter_invalid_object",
                    param="payment_method_data",
                )
            pm = self.create_payment_method(data, "payment_method_data")
        else:
            return
        if pm["type"] not in pi["payment_method_types"]:
            raise invalid(
                f"The PaymentMethod provided ({pm['type']}) is not allowed for this "
                "PaymentIntent. Please attach a PaymentMethod of one of the following types: "
                + ", ".join(pi["payment_method_types"]),
                code="payment_intent_incompatible_payment_method",
                param="payment_method",
            )
        pi["payment_method"] = pm["id"]

    # ---- PaymentIntents ----------------------------------------------------------------------

    def _check_amount(self, amount: int, currency: str, types: list[str]) -> None:
        if amount < MIN_AMOUNT.get(currency, 50):
            minimum = MIN_AMOUNT.get(currency, 50)
            raise invalid(
                f"Amount must be at least ${minimum // 100}.{minimum % 100:02d} {currency}",
                code="amount_too_small",
                param="amount",
            )
        if amount > MAX_AMOUNT:
            raise invalid(
                "Amount must be no more than $999,999.99", code="amount_too_large", param="amount"
            )
        if types == ["oxxo"]:
            oxxo.check_amount(amount)

    def _options(self, params: Params, types: list[str], current: Json | None = None) -> Json:
        raw = forms.get_dict(params, "payment_method_options")
        options: Json = copy.deepcopy(current) if current else {}
        if "card" in types:
            options.setdefault(
                "card",
                {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                },
            )
        if "oxxo" in types:
            days = self.default_oxxo_days()
            given = raw.get("oxxo", {}) if isinstance(raw.get("oxxo"), dict) else {}
            param = "payment_method_options[oxxo][expires_after_days]"
            if "expires_after_days" in given:
                days = forms.get_int(given, "expires_after_days") or 0
                oxxo.check_expires_after_days(days, param)
            elif "oxxo" in options:
                days = options["oxxo"]["expires_after_days"]
            options["oxxo"] = {"expires_after_days": days}
        return options

    def create_intent(self, params: Params, request: RequestInfo) -> Json:
        forms.reject_unknown(params, CREATE_PARAMS)
        amount = forms.get_int(params, "amount", required=True)
        assert amount is not None
        currency = (forms.get_str(params, "currency", required=True) or "").lower()
        if len(currency) != 3 or not currency.isalpha():
            raise invalid(f"Invalid currency: {currency}", param="currency")
        types = forms.get_list(params, "payment_method_types")
        automatic = forms.get_dict(params, "automatic_payment_methods")
        if types is None:
            types = list(SUPPORTED_TYPES) if automatic.get("enabled") == "true" else ["card"]
        for i, kind in enumerate(types):
            if kind not in SUPPORTED_TYPES:
                raise invalid(
                    f"The payment method type {kind!r} is invalid. Please ensure the "
                    "provided type is activated in your dashboard.",
                    param=f"payment_method_types[{i}]",
                )
        if "oxxo" in types and currency != "mxn":
            raise invalid(
                "The currency provided (" + currency + ") is invalid. OXXO only supports mxn.",
                param="currency",
            )
        self._check_amount(amount, currency, types)
        confirm = forms.get_bool(params, "confirm")
        created = now()
        pi: Json = {
            "id": "",
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": 0,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": {"enabled": True} if automatic else None,
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": "",
            "confirmation_method": "automatic",
            "created": created,
            "currency": currency,
            "customer": None,
            "description": forms.get_str(params, "description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": forms.metadata(params),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": None,
            "payment_method_options": self._options(params, types),
            "payment_method_types": types,
            "processing": None,
            "receipt_email": forms.get_str(params, "receipt_email"),
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": forms.get_str(params, "statement_descriptor"),
            "statement_descriptor_suffix": forms.get_str(params, "statement_descriptor_suffix"),
            "status": "requires_payment_method",
            "transfer_data": None,
            "transfer_group": None,
        }
        return_url = forms.get_str(params, "return_url")
        if return_url and not confirm:
            raise invalid("return_url can only be passed when confirm=true.", param="return_url")
        self._attach_method(pi, params)
        pi["id"] = new_id("pi")
        pi["client_secret"] = f"{pi['id']}_secret_{new_id('s', 25)[2:]}"
        if pi["payment_method"]:
            pi["status"] = "requires_confirmation"
        self.store.intents[pi["id"]] = pi
        self.events.emit("payment_intent.created", pi, request)
        if confirm:
            self._confirm(pi, return_url, request)
        return pi

    def update_intent(self, intent_id: str, params: Params) -> Json:
        pi = self.intent(intent_id)
        forms.reject_unknown(params, UPDATE_PARAMS)
        if pi["status"] in ("processing", "succeeded", "canceled"):
            raise state_error(
                f"You cannot update this PaymentIntent because it has a status of {pi['status']}."
            )
        changes_payment = any(
            k in params
            for k in (
                "amount",
                "currency",
                "payment_method",
                "payment_method_data",
                "payment_method_types",
            )
        )
        if changes_payment and pi["status"] == "requires_action":
            # Deliberate: an outstanding voucher or challenge is never silently repriced.
            raise state_error(
                "You cannot change the amount or payment method of this "
                "PaymentIntent while it has a status of requires_action. Cancel it "
                "and create a new one."
            )
        amount = forms.get_int(params, "amount")
        currency = (forms.get_str(params, "currency") or pi["currency"]).lower()
        types = forms.get_list(params, "payment_method_types") or pi["payment_method_types"]
        for i, kind in enumerate(types):
            if kind not in SUPPORTED_TYPES:
                raise invalid(
                    f"The payment method type {kind!r} is invalid.",
                    param=f"payment_method_types[{i}]",
                )
        new_amount = pi["amount"] if amount is None else amount
        self._check_amount(new_amount, currency, types)
        options = self._options(params, types, pi["payment_method_options"])
        draft = {**pi, "payment_method_types": types}
        self._attach_method(draft, params)
        pi.update(
            amount=new_amount,
            currency=currency,
            payment_method_types=types,
            payment_method_options=options,
            payment_method=draft["payment_method"],
            metadata=forms.metadata(params, pi["metadata"]),
        )
        for key in (
            "description",
            "receipt_email",
            "statement_descriptor",
            "statement_descriptor_suffix",
        ):
            if key in params:
                pi[key] = forms.get_str(params, key) or None
        if pi["payment_method"] and pi["status"] == "requires_payment_method":
            pi["status"] = "requires_confirmation"
        return pi

    def confirm_intent(self, intent_id: str, params: Params, request: RequestInfo) -> Json:
        pi = self.intent(intent_id)
        forms.reject_unknown(params, CONFIRM_PARAMS)
        status = pi["status"]
        if status == "succeeded":
            raise state_error(
                "You cannot confirm this PaymentIntent because it has already "
                "succeeded after being previously confirmed."
            )
        if status not in ("requires_payment_method", "requires_confirmation"):
            raise state_error(
                f"You cannot confirm this PaymentIntent because it has a status of {status}. "
                "Only a PaymentIntent with one of the following statuses may be confirmed: "
                "requires_confirmation, requires_payment_method."
            )
        self._attach_method(pi, params)
        if "payment_method_options" in params:
            pi["payment_method_options"] = self._options(
                params, pi["payment_method_types"], pi["payment_method_options"]
            )
        if "receipt_email" in params:
            pi["receipt_email"] = forms.get_str(params, "receipt_email")
        self._confirm(pi, forms.get_str(params, "return_url"), request)
        return pi

    def _confirm(self, pi: Json, return_url: str | None, request: RequestInfo) -> None:
        if not pi["payment_method"]:
            raise state_error(
                "You cannot confirm this PaymentIntent because it's missing a payment method. "
                "You can either update the PaymentIntent with a payment method and then confirm "
                "it again, or confirm it again directly with a payment method.",
            )
        pm = self.store.payment_methods[pi["payment_method"]]
        if pm["type"] == "oxxo":
            self._issue_voucher(pi, pm, request)
            return
        test: TestCard = pm["_card"]
        if test.outcome == "succeed":
            self._succeed(pi, pm, request)
        elif test.outcome == "authenticate":
            pi["status"] = "requires_action"
            pi["last_payment_error"] = None
            challenge = f"{self.base_url()}/3ds/{pi['id']}"
            if return_url:
                pi["next_action"] = {
                    "type": "redirect_to_url",
                    "redirect_to_url": {"return_url": return_url, "url": challenge},
                }
            else:
                pi["next_action"] = {
                    "type": "use_stripe_sdk",
                    "use_stripe_sdk": {
                        "type": "three_d_secure_redirect",
                        "stripe_js": challenge,
                        "source": new_id("src"),
                    },
                }
            pi["_return_url"] = return_url
            self.store.challenges.add(pi["id"])
            self.events.emit("payment_intent.requires_action", pi, request)
        else:
            self._decline(pi, pm, test, request)

    def _succeed(self, pi: Json, pm: Json, request: RequestInfo | None) -> None:
        charge = self._charge(pi, pm, succeeded=True)
        pi.update(
            status="succeeded",
            amount_received=pi["amount"],
            latest_charge=charge["id"],
            last_payment_error=None,
            next_action=None,
            payment_method=pm["id"],
        )
        self.store.challenges.discard(pi["id"])
        self.events.emit("payment_intent.succeeded", pi, request)

    def _decline(self, pi: Json, pm: Json, test: TestCard, request: RequestInfo) -> None:
        charge = self._charge(pi, pm, succeeded=False, test=test)
        error = {
            "charge": charge["id"],
            "code": test.code,
            "decline_code": test.decline_code,
            "doc_url": "https://stripe.com/docs/error-codes/" + test.code.replace("_", "-"),
            "message": test.message,
            "payment_method": public(pm),
            "type": "card_error",
        }
        pi.update(
            status="requires_payment_method",
            latest_charge=charge["id"],
            last_payment_error=error,
            payment_method=None,
            next_action=None,
        )
        self.events.emit("payment_intent.payment_failed", pi, request)
        # The 402 carries the intent, as Stripe's does; the idempotency key remembers it.
        raise StripeError(
            402,
            test.message,
            type="card_error",
            code=test.code,
            decline_code=test.decline_code,
            saved=True,
            extra={
                "charge": charge["id"],
                "payment_intent": public(copy.deepcopy(pi)),
                "payment_method": public(pm),
            },
        )

    def _charge(self, pi: Json, pm: Json, *, succeeded: bool, test: TestCard | None = None) -> Json:
        if pm["type"] == "card":
            details: Json = {
                "type": "card",
                "card": {
                    k: pm["card"][k]
                    for k in (
                        "brand",
                        "country",
                        "exp_month",
                        "exp_year",
                        "fingerprint",
                        "funding",
                        "last4",
                    )
                },
            }
        else:
            voucher = self.store.vouchers.get(pi["id"])
            details = {"type": "oxxo", "oxxo": {"number": voucher.number if voucher else None}}
        outcome: Json
        if succeeded:
            outcome = {
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "normal",
                "seller_message": "Payment complete.",
                "type": "authorized",
            }
        else:
            outcome = {
                "network_status": "declined_by_network",
                "reason": test.decline_code if test else None,
                "risk_level": "normal",
                "seller_message": "The bank did not return any further details with this decline.",
                "type": "issuer_declined",
            }
        charge: Json = {
            "id": new_id("ch"),
            "object": "charge",
            "amount": pi["amount"],
            "amount_captured": pi["amount"] if succeeded else 0,
            "amount_refunded": 0,
            "balance_transaction": new_id("txn") if succeeded else None,
            "billing_details": pm["billing_details"],
            "captured": succeeded,
            "created": now(),
            "currency": pi["currency"],
            "description": pi["description"],
            "failure_code": None if succeeded else (test.code if test else None),
            "failure_message": None if succeeded else (test.message if test else None),
            "livemode": False,
            "metadata": dict(pi["metadata"]),
            "outcome": outcome,
            "paid": succeeded,
            "payment_intent": pi["id"],
            "payment_method": pm["id"],
            "payment_method_details": details,
            "receipt_email": pi["receipt_email"],
            "refunded": False,
            "status": "succeeded" if succeeded else "failed",
        }
        self.store.charges[charge["id"]] = charge
        return charge

    def cancel_intent(self, intent_id: str, params: Params, request: RequestInfo) -> Json:
        pi = self.intent(intent_id)
        forms.reject_unknown(params, ("cancellation_reason",))
        reason = forms.get_str(params, "cancellation_reason")
        if reason is not None and reason not in CANCELLATION_REASONS:
            raise invalid(
                f"Invalid cancellation_reason: must be one of {', '.join(CANCELLATION_REASONS)}",
                param="cancellation_reason",
            )
        if pi["status"] not in CANCELABLE:
            raise state_error(
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{pi['status']}. Only a PaymentIntent with one of the following statuses may be "
                f"canceled: {', '.join(CANCELABLE)}."
            )
        pi.update(
            status="canceled", canceled_at=now(), cancellation_reason=reason, next_action=None
        )
        self.store.challenges.discard(pi["id"])
        voucher = self.store.vouchers.get(pi["id"])
        if voucher is not None and voucher.state == "issued":
            voucher.state = "void"
        self.events.emit("payment_intent.canceled", pi, request)
        return pi

    # ---- OXXO --------------------------------------------------------------------------------

    def _issue_voucher(self, pi: Json, pm: Json, request: RequestInfo) -> None:
        if pi["currency"] != "mxn":
            raise invalid("OXXO only supports mxn.", param="currency")
        oxxo.check_amount(pi["amount"])
        days = (
            pi["payment_method_options"]
            .get("oxxo", {})
            .get("expires_after_days", self.default_oxxo_days())
        )
        voucher = Voucher(
            pi["id"], oxxo.voucher_number(), oxxo.expires_after(datetime.now(UTC), days)
        )
        self.store.vouchers[pi["id"]] = voucher
        pi.update(
            status="requires_action",
            last_payment_error=None,
            next_action={
                "type": "oxxo_display_details",
                "oxxo_display_details": {
                    "expires_after": voucher.expires_after,
                    "hosted_voucher_url": f"{self.base_url()}/vouchers/{pi['id']}",
                    "number": voucher.number,
                },
            },
        )
        self.events.emit("payment_intent.requires_action", pi, request)
        # Stripe's test-mode emails: succeed_immediately@… pays, expire_immediately@… expires.
        email = (pm["billing_details"].get("email") or "").lower()
        local = email.partition("@")[0]
        if local.endswith("succeed_immediately"):
            self.schedule(self.oxxo_test_delay(), lambda: self._quietly(self.pay_oxxo, pi["id"]))
        elif local.endswith("expire_immediately"):
            self.schedule(self.oxxo_test_delay(), lambda: self._quietly(self.expire_oxxo, pi["id"]))

    @staticmethod
    def _quietly(action: Callable[[str], Json], intent_id: str) -> None:
        # The intent may have moved on (paid, canceled) before the timer fired.
        with contextlib.suppress(ControlError, StripeError):
            action(intent_id)

    def _voucher(self, intent_id: str) -> tuple[Json, Voucher]:
        pi = self.intent(intent_id)
        voucher = self.store.vouchers.get(intent_id)
        if (
            voucher is None
            or voucher.state != "issued"
            or pi["status"] not in ("requires_action", "processing")
        ):
            raise ControlError(
                f"{intent_id} has no outstanding OXXO voucher (status {pi['status']})"
            )
        return pi, voucher

    def pay_oxxo(self, intent_id: str) -> Json:
        pi, voucher = self._voucher(intent_id)
        voucher.state = "paid"
        self._succeed(pi, self.store.payment_methods[pi["payment_method"]], None)
        return pi

    def expire_oxxo(self, intent_id: str) -> Json:
        pi, voucher = self._voucher(intent_id)
        voucher.state = "expired"
        pm = self.store.payment_methods.get(pi["payment_method"] or "")
        pi.update(
            status="requires_payment_method",
            next_action=None,
            payment_method=None,
            last_payment_error={
                "code": "payment_intent_payment_attempt_expired",
                "doc_url": "https://stripe.com/docs/error-codes/"
                "payment-intent-payment-attempt-expired",
                "message": EXPIRED_ATTEMPT,
                "payment_method": public(pm) if pm else None,
                "type": "invalid_request_error",
            },
        )
        self.events.emit("payment_intent.payment_failed", pi)
        return pi

    def expire_due_vouchers(self) -> None:
        moment = now()
        for voucher in list(self.store.vouchers.values()):
            if voucher.state == "issued" and voucher.expires_after < moment:
                self._quietly(self.expire_oxxo, voucher.intent_id)

    def mark_processing(self, intent_id: str) -> Json:
        """Control: accepted by the network but not settled yet (payment_intent.processing)."""
        pi = self.intent(intent_id)
        if pi["status"] != "requires_action":
            raise ControlError(f"{intent_id} is {pi['status']}, not requires_action")
        pi.update(status="processing", next_action=None)
        self.events.emit("payment_intent.processing", pi)
        return pi

    # ---- 3-D Secure --------------------------------------------------------------------------

    def complete_3ds(self, intent_id: str, ok: bool = True) -> Json:
        pi = self.intent(intent_id)
        if intent_id not in self.store.challenges or pi["status"] not in (
            "requires_action",
            "processing",
        ):
            raise ControlError(
                f"{intent_id} has no pending 3-D Secure challenge (status {pi['status']})"
            )
        pm = self.store.payment_methods[pi["payment_method"]]
        if ok:
            self._succeed(pi, pm, None)
            return pi
        self.store.challenges.discard(intent_id)
        pi.update(
            status="requires_payment_method",
            next_action=None,
            payment_method=None,
            last_payment_error={
                "code": "payment_intent_authentication_failure",
                "doc_url": "https://stripe.com/docs/error-codes/"
                "payment-intent-authentication-failure",
                "message": AUTH_FAILURE,
                "payment_method": public(pm),
                "type": "invalid_request_error",
            },
        )
        self.events.emit("payment_intent.payment_failed", pi)
        return pi

    # ---- Refunds -----------------------------------------------------------------------------

    def create_refund(self, params: Params, request: RequestInfo) -> Json:
        forms.reject_unknown(params, ("payment_intent", "charge", "amount", "reason", "metadata"))
        pi_id = forms.get_str(params, "payment_intent")
        ch_id = forms.get_str(params, "charge")
        if not pi_id and not ch_id:
            raise invalid(
                "One of the following params should be provided for this request: "
                "payment_intent or charge.",
                code="parameter_missing",
            )
        if pi_id:
            pi = self.store.intents.get(pi_id)
            if pi is None:
                raise invalid(
                    f"No such payment_intent: '{pi_id}'",
                    code="resource_missing",
                    param="payment_intent",
                )
            if pi["status"] != "succeeded" or not pi["latest_charge"]:
                raise state_error(
                    f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                    param="payment_intent",
                )
            charge = self.store.charges[pi["latest_charge"]]
        else:
            assert ch_id is not None
            found = self.store.charges.get(ch_id)
            if found is None:
                raise invalid(f"No such charge: '{ch_id}'", code="resource_missing", param="charge")
            charge = found
        reason = forms.get_str(params, "reason")
        if reason is not None and reason not in (
            "duplicate",
            "fraudulent",
            "requested_by_customer",
        ):
            raise invalid(
                "Invalid reason: must be one of duplicate, fraudulent or requested_by_customer",
                param="reason",
            )
        if charge["payment_method_details"]["type"] == "oxxo":
            # Stripe: OXXO payments cannot be refunded through the API.
            raise StripeError(
                400,
                "This charge cannot be refunded because OXXO payments do not "
                "support refunds. Refund the customer outside of Stripe.",
                code="charge_not_refundable",
                saved=True,
            )
        if charge["status"] != "succeeded":
            raise StripeError(
                400,
                f"Charge {charge['id']} has not succeeded and cannot be refunded.",
                code="charge_not_refundable",
                saved=True,
            )
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise StripeError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
                saved=True,
            )
        amount = forms.get_int(params, "amount")
        if amount is None:
            amount = remaining
        if amount <= 0:
            raise invalid("Amount must be a positive integer.", param="amount")
        if amount > remaining:
            raise StripeError(
                400,
                f"Refund amount ({_money(amount)}) is greater than unrefunded amount on "
                f"charge ({_money(remaining)})",
                code="amount_too_large",
                param="amount",
                saved=True,
            )
        refund: Json = {
            "id": new_id("re"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": new_id("txn"),
            "charge": charge["id"],
            "created": now(),
            "currency": charge["currency"],
            "metadata": forms.metadata(params),
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "receipt_number": None,
            "status": "succeeded",
        }
        self.store.refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self.events.emit("refund.created", refund, request)
        self.events.emit("charge.refunded", charge, request)
        return refund


def _money(centavos: int) -> str:
    return f"${centavos // 100:,}.{centavos % 100:02d}"


def expandable(obj: Json, store: Store, expand: Any) -> Json:
    """Honour `expand[]` for the fields an integrator expands (latest_charge, payment_method)."""
    result = public(obj)
    fields = expand if isinstance(expand, list) else ([expand] if isinstance(expand, str) else [])
    for name in fields:
        value = result.get(name)
        if name == "latest_charge" and isinstance(value, str) and value in store.charges:
            result[name] = public(store.charges[value])
        elif name == "payment_method" and isinstance(value, str) and value in store.payment_methods:
            result[name] = public(store.payment_methods[value])
    return result
