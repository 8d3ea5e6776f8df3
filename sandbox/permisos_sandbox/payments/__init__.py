"""A Stripe-compatible payments simulator: PaymentIntents for card and OXXO, signed webhooks, and
the browser side: a Stripe.js stand-in at `/v3/` (the card Element, confirmCardPayment with its
3-D Secure modal) whose calls use the publishable key and the intent's client_secret.

Where it differs from Stripe on purpose:
- OXXO vouchers default to 3 days (the platform's setting; Stripe's page says 5), and ordinary
  test vouchers never pay themselves (Stripe's test mode pays them after minutes): they wait for
  `/__control/oxxo/<pi>/pay` or `/expire`, so demos and tests are predictable. The emails
  `succeed_immediately@…` and `expire_immediately@…` act after a short delay, as in Stripe.
- Voucher numbers have 14 digits; refusing an OXXO refund uses `charge_not_refundable` (Stripe's
  exact wording was not found).
- Amount and payment method cannot change during `requires_action`, so an outstanding voucher or
  challenge is never silently repriced; OXXO billing names need first and last name.
- `payment_intent.processing` happens only through `/__control/payment_intents/<pi>/processing`.
- Raw card numbers are accepted from the server (Stripe refuses them without special access).
- One webhook endpoint, replaced through `/__control/webhooks`.
- The Stripe.js stand-in has only the card Element and the calls a card page makes
  (`stripejs.py`); its 3-D Secure modal shows the same test page as the redirect flow.
Missing: charge.succeeded/failed events, manual capture, Customers, Checkout, SetupIntents,
enabled_events filtering, bodies other than form-encoded.
"""

from .config import PaymentsConfig, PaymentsSettings
from .server import PaymentsSimulator
from .webhooks import sign

__all__ = ["PaymentsConfig", "PaymentsSettings", "PaymentsSimulator", "sign"]
