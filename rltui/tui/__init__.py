"""The Textual lab. Never imports torch or gymnasium: start-up over SSH must be instant."""
