"""GOZON_AMQP_URL lists one node or several nodes of one cluster: each entry a full URL,
or after the first `host:port` alone, which takes the first entry's credentials and vhost."""

from __future__ import annotations

from gozon.amqp.broker import node_of, node_urls


def test_one_url_is_one_node() -> None:
    assert node_urls("amqp://guest:guest@127.0.0.1:5672/") == ["amqp://guest:guest@127.0.0.1:5672/"]


def test_full_urls_are_taken_as_they_are() -> None:
    assert node_urls("amqp://a:b@h1:5672/vh, amqp://c:d@h2:5673/other") == [
        "amqp://a:b@h1:5672/vh", "amqp://c:d@h2:5673/other"]


def test_a_short_entry_takes_the_first_entrys_credentials_vhost_and_query() -> None:
    assert node_urls("amqps://u:p%2Cq@h1:5671/gozon?heartbeat=10,h2:5672,h3") == [
        "amqps://u:p%2Cq@h1:5671/gozon?heartbeat=10",
        "amqps://u:p%2Cq@h2:5672/gozon?heartbeat=10",
        "amqps://u:p%2Cq@h3/gozon?heartbeat=10",
    ]


def test_a_short_entry_after_a_url_without_credentials_has_none() -> None:
    assert node_urls("amqp://h1/,h2:5673") == ["amqp://h1/", "amqp://h2:5673/"]


def test_empty_entries_are_ignored() -> None:
    assert node_urls("amqp://h1/, ,") == ["amqp://h1/"]


def test_a_node_is_named_in_the_logs_without_its_credentials() -> None:
    assert node_of("amqp://user:secret@rabbit-2:5673/vh") == "rabbit-2:5673"
    assert node_of("amqp://rabbit-3/") == "rabbit-3"
