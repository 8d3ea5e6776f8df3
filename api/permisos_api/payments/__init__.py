"""Payments by card and OXXO through Stripe's official SDK.

- `stripe_client`: the configured `StripeClient` and the deterministic idempotency keys.
- `intents`: what the app keeps of a PaymentIntent (an `IntentSnapshot`, no personal data).
- `state`: the one-way state machine, pure.
- `service`: the one transition function every path uses (the payment request's synchronous
  answer, webhooks, reconciliation), payment creation, and the expiry of abandoned applications.
- `webhooks`: verified Stripe events → deduplicated, audited, applied in one transaction.
- `mails`: the Spanish texts.
"""
