"""Governance: keys, pseudonymisation, identity vault, sharing policy, disclosure control, audit. Issue 5."""
