"""RabbitMQ: the only package that imports aio-pika."""
