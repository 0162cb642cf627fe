"""Twilio: signed webhooks in, TwiML out, over the same interpreter and router as Asterisk."""
