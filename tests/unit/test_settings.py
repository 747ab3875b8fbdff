"""Settings from the environment the template sets: each variable, each default, each refusal."""

import pytest

from pancscan.service.settings import Settings

BASE = {"BUCKET_NAME": "b", "TABLE_NAME": "t"}


def test_every_setting_is_read_from_its_own_variable():
    settings = Settings.from_env(BASE | {
        "MAX_UPLOAD_BYTES": "1234", "RESULT_TTL_DAYS": "3", "PROCESSING_LEASE_SECONDS": "90", "AUTH_MODE": "jwt",
        "TOKEN_URL": "https://auth.example/oauth2/token", "RESEARCH_TABLE_NAME": "r", "RESEARCH_RETENTION_DAYS": "30"})
    assert settings == Settings(bucket="b", table="t", max_upload_bytes=1234, result_ttl_days=3, upload_url_seconds=300,
                                processing_lease_seconds=90, auth_mode="jwt", token_url="https://auth.example/oauth2/token",
                                research_table="r", research_retention_days=30)
    assert settings.result_ttl_seconds == 3 * 86400 and settings.auth_required


def test_unset_settings_take_the_documented_defaults():
    settings = Settings.from_env(BASE)
    assert (settings.max_upload_bytes, settings.result_ttl_days, settings.upload_url_seconds) == (200 * 2**20, 7, 300)
    assert settings.result_ttl_seconds == 7 * 86400 and settings.processing_lease_seconds == 60
    assert (settings.auth_mode, settings.token_url, settings.research_table, settings.research_retention_days) == ("off", "", "", 0)
    assert not settings.auth_required
    # what the template passes when a feature is off: empty strings
    assert Settings.from_env(BASE | {"AUTH_MODE": "", "RESEARCH_RETENTION_DAYS": ""}) == settings


@pytest.mark.parametrize("env, missing", [
    ({}, "BUCKET_NAME, TABLE_NAME"),
    ({"TABLE_NAME": "t"}, "BUCKET_NAME"),
    ({"BUCKET_NAME": "b", "TABLE_NAME": ""}, "TABLE_NAME"),
])
def test_a_missing_bucket_or_table_fails_at_cold_start_naming_it(env, missing):
    with pytest.raises(RuntimeError) as failed:
        Settings.from_env(env)
    assert str(failed.value) == f"missing setting(s): {missing}"


def test_research_retention_needs_at_least_one_day_when_its_table_is_set():
    assert Settings.from_env(BASE | {"RESEARCH_TABLE_NAME": "r", "RESEARCH_RETENTION_DAYS": "1"}).research_retention_days == 1
    with pytest.raises(RuntimeError) as failed:
        Settings.from_env(BASE | {"RESEARCH_TABLE_NAME": "r", "RESEARCH_RETENTION_DAYS": "0"})
    assert str(failed.value) == "RESEARCH_RETENTION_DAYS must be at least 1 when RESEARCH_TABLE_NAME is set"


def test_an_unknown_auth_mode_is_refused_naming_it():
    with pytest.raises(RuntimeError) as failed:
        Settings.from_env(BASE | {"AUTH_MODE": "cognito"})
    assert str(failed.value) == "AUTH_MODE must be off or jwt, not 'cognito'"
