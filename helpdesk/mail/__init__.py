"""E-mail: composing, sending through the outbox, receiving and decoding Japanese mail."""
