"""CONFIG and CREDENTIALS: an allowlist of librdkafka properties, nothing silently ignored."""

from __future__ import annotations

import pytest

from matchstream.engine.errors import EngineError, UnsupportedOption
from matchstream.engine.extractor import Extractor, KafkaUnreachable, client_options


def test_allowed_keys_become_consumer_properties() -> None:
    options = client_options(
        "p", {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"},
        {"sasl.username": "u", "sasl.password": "secret"})
    assert options == {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
                       "sasl.username": "u", "sasl.password": "secret"}


@pytest.mark.parametrize(("config", "credentials", "clause"), [
    ({"group.id": "g"}, {}, "CONFIG key 'group.id'"),
    ({"sasl.password": "x"}, {}, "CONFIG key 'sasl.password'"),
    ({}, {"security.protocol": "SSL"}, "CREDENTIALS key 'security.protocol'"),
])
def test_other_keys_are_rejected_naming_the_key(
    config: dict[str, object], credentials: dict[str, object], clause: str
) -> None:
    with pytest.raises(UnsupportedOption) as info:
        client_options("p", config, credentials)
    assert info.value.pipeline == "p" and info.value.clause == clause
    assert "not supported by the local engine" in str(info.value)


def test_a_value_that_is_not_scalar_is_rejected() -> None:
    with pytest.raises(EngineError, match="'client.id' needs a string"):
        client_options("p", {"client.id": ["a"]}, {})


def test_options_reach_the_consumer_and_secrets_stay_out_of_errors() -> None:
    """librdkafka validates the properties when the consumer is created: a bad value proves
    the option was passed; the credential's value never appears in the error."""
    with pytest.raises(KafkaUnreachable) as info:
        Extractor(["127.0.0.1:1"], "t", client_id="test",
                  options={"security.protocol": "bogus", "sasl.password": "pw-123"})
    assert "security.protocol" in str(info.value)
    assert "pw-123" not in str(info.value) and info.value.__cause__ is None
