"""Source: the consumer thread — consume, pause, rebalance, drain and hand over to dispatch;
and the dead-letter reader in front of the same settle for ``replay-dlq``."""
