"""The actors that join the database and the broker, run by every service that has an
outbox: the relay (outbox → RabbitMQ) and the retention (purges what need not be kept)."""
