from __future__ import annotations

from pathlib import Path

import pytest

from matchstream.config import Config, ConfigError
from matchstream.stack.mariadb import mask


def test_argument_beats_environment_beats_recorded_beats_default(tmp_path: Path) -> None:
    env = {"MATCHSTREAM_STATE_DIR": str(tmp_path), "MATCHSTREAM_KAFKA_PORT": "19000"}
    assert Config.from_env(environ=env).kafka_port == 19000
    assert Config.from_env(environ=env, kafka_port=19001).kafka_port == 19001
    assert Config.from_env(environ=env).db_port == 3307

    Config.from_env(environ={}, state_dir=tmp_path, db_port=13000).record()
    recorded = Config.from_env(environ=env)
    assert recorded.db_port == 13000, "what `up` recorded applies when nothing else says"
    assert recorded.kafka_port == 19000, "the environment still beats the record"
    assert Config.from_env(environ=env, db_port=13001).db_port == 13001


def test_a_bad_value_names_the_setting_and_its_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env(environ={"MATCHSTREAM_DB_PORT": "many"}, state_dir=tmp_path)
    assert caught.value.setting == "MATCHSTREAM_DB_PORT"
    assert caught.value.value == "many"
    with pytest.raises(ConfigError) as caught:
        Config.from_env(environ={}, state_dir=tmp_path, kafka_port="-1")
    assert caught.value.setting == "--kafka-port"


def test_config_is_frozen_and_its_repr_holds_no_password(tmp_path: Path) -> None:
    config = Config.from_env(environ={}, state_dir=tmp_path)
    config.db_password_file.write_text("s3cret-value\n")
    with pytest.raises(AttributeError):
        config.db_port = 1  # type: ignore[misc]
    assert config.db_password() == "s3cret-value"
    assert "s3cret" not in repr(config)


def test_setting_name_gives_flag_and_variable() -> None:
    assert Config.setting_name("db_port") == "--db-port or MATCHSTREAM_DB_PORT"


def test_mask_never_shows_the_whole_secret() -> None:
    assert mask("abcdefgh") == "ab********"
    assert "abc" not in mask("abc")
