"""Webhooks: subscriptions, and deliveries signed the Standard Webhooks way."""
