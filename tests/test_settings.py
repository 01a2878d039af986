"""Settings from the environment: defaults, every variable, and one-line errors naming the
variable, its value and the fix."""

from __future__ import annotations

import pytest

from ocr_resources.settings import DEFAULT_LOCAL_ROOT, Settings, SettingsError


def test_settings_defaults():
    s = Settings.from_env({})
    assert (s.environment, s.version, s.grid, s.platform) == ("qa", None, "demo", "local")
    assert s.storage_root == str(DEFAULT_LOCAL_ROOT)
    assert s.inputs_root == s.storage_root
    assert s.region_max_retries == 2
    assert (s.s3_endpoint_url, s.s3_region, s.coiled_software) == (None, "us-west-2", None)


def test_settings_from_env_reads_every_variable(tmp_path):
    s = Settings.from_env(
        {
            "OCR_ENVIRONMENT": "production",
            "OCR_VERSION": "1.2.3",
            "OCR_STORAGE_ROOT": "s3://bucket/prefix/",
            "OCR_INPUT_ROOT": str(tmp_path),
            "OCR_GRID": "conus",
            "OCR_PLATFORM": "coiled",
            "OCR_REGION_MAX_RETRIES": "4",
            "OCR_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "OCR_S3_REGION": "us-east-1",
            "COILED_SOFTWARE_ENV_NAME": "ocr-main",
        }
    )
    assert s.storage_root == "s3://bucket/prefix"
    assert s.inputs_root == str(tmp_path)
    assert (s.environment, s.version, s.grid, s.platform) == (
        "production",
        "1.2.3",
        "conus",
        "coiled",
    )
    assert (s.region_max_retries, s.s3_region, s.coiled_software) == (4, "us-east-1", "ocr-main")
    assert s.s3_endpoint_url == "http://127.0.0.1:9000"


def test_settings_blank_values_mean_unset():
    s = Settings.from_env({"OCR_ENVIRONMENT": "  ", "OCR_VERSION": "", "OCR_GRID": ""})
    assert (s.environment, s.version, s.grid) == ("qa", None, "demo")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OCR_ENVIRONMENT": "QA"}, "OCR_ENVIRONMENT"),
        ({"OCR_ENVIRONMENT": "prod"}, "OCR_ENVIRONMENT"),
        ({"OCR_ENVIRONMENT": "production"}, "OCR_VERSION"),
        ({"OCR_VERSION": "1.2"}, "OCR_VERSION"),
        ({"OCR_VERSION": "1.2.3.4"}, "OCR_VERSION"),
        ({"OCR_VERSION": "v1.2.3"}, "OCR_VERSION"),
        ({"OCR_VERSION": "01.2.3"}, "OCR_VERSION"),
        ({"OCR_GRID": "europe"}, "OCR_GRID"),
        ({"OCR_PLATFORM": "aws"}, "OCR_PLATFORM"),
        ({"OCR_REGION_MAX_RETRIES": "two"}, "OCR_REGION_MAX_RETRIES"),
        ({"OCR_REGION_MAX_RETRIES": "-1"}, "OCR_REGION_MAX_RETRIES"),
    ],
)
def test_settings_errors_name_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


@pytest.mark.parametrize("version", ["0.1.0", "1.2.3-rc.1", "1.2.3+build.5"])
def test_settings_accepts_semver(version):
    assert Settings(environment="production", version=version).version == version


def test_settings_rejects_other_url_schemes():
    with pytest.raises(SettingsError, match="gs://bucket"):
        Settings(storage_root="gs://bucket")


@pytest.mark.parametrize("variable", ["OCR_STORAGE_ROOT", "OCR_INPUT_ROOT"])
@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("s3://", "names no bucket: write it as s3://bucket[/prefix] or a local folder"),
        ("s3:///prefix", "names no bucket"),
        ("s3:/b", "is a malformed S3 URL: write it as s3://bucket[/prefix] or a local folder"),
        ("s3:b", "is a malformed S3 URL"),
        ("S3:bucket", "is a malformed S3 URL"),
        ("S3://bucket", "S3 URLs start with a lower-case s3://, so write s3://bucket"),
        ("gs://bucket", "gs:// is not supported: use a local folder or s3://bucket[/prefix]"),
        ("http://x", "http:// is not supported"),
        ("s3://My_Bucket", "'My_Bucket' is not an S3 bucket name"),
        ("s3://ab", "'ab' is not an S3 bucket name"),
        ("s3://a..b/x", "'a..b' is not an S3 bucket name"),
        ("s3://-bucket", "'-bucket' is not an S3 bucket name"),
        ("s3://192.168.1.1", "is not an S3 bucket name"),
    ],
)
def test_settings_malformed_roots_are_one_line_naming_variable_value_and_fix(
    variable, value, problem
):
    with pytest.raises(SettingsError) as err:
        Settings.from_env({variable: value})
    message = str(err.value)
    assert message.startswith(f"{variable}={value!r}") and problem in message
    assert "\n" not in message


def test_settings_malformed_root_is_refused_when_built_directly():
    with pytest.raises(SettingsError, match=r"^OCR_INPUT_ROOT='s3:/b' is a malformed S3 URL"):
        Settings(input_root="s3:/b")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://bucket", "s3://bucket"),
        ("s3://my.bucket-1/a b/[x]/", "s3://my.bucket-1/a b/[x]"),
        ("s3://bucket//", "s3://bucket"),
    ],
)
def test_settings_accepts_s3_roots(value, expected):
    s = Settings.from_env({"OCR_STORAGE_ROOT": value, "OCR_INPUT_ROOT": value})
    assert s.storage_root == s.inputs_root == expected


def test_settings_local_roots_are_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    odd = "o c r [x] it's *"
    s = Settings.from_env({"OCR_STORAGE_ROOT": odd, "OCR_INPUT_ROOT": f"file://{tmp_path}/in"})
    assert s.storage_root == str(tmp_path / odd)
    assert s.inputs_root == str(tmp_path / "in")
