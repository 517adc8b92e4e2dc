"""Settings come from the environment, with safe defaults and clear errors for malformed values."""

from __future__ import annotations

import pytest

from app.settings import Settings, SettingsError, load_settings


class TestDefaults:
    def test_empty_environment_gives_a_local_sqlite_setup_under_data(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)

        settings = load_settings({})

        assert settings.data_dir == tmp_path.resolve() / "data"
        assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'rise.db'}"
        assert settings.media_dir == tmp_path.resolve() / "data" / "media"
        assert settings.max_image_pixels == 50_000_000
        assert (settings.host, settings.port) == ("127.0.0.1", 7860)
        assert settings.is_loopback

    def test_without_an_argument_the_process_environment_is_read(self, tmp_path, monkeypatch):
        monkeypatch.setenv("RISE_DATA_DIR", str(tmp_path / "elsewhere"))
        monkeypatch.setenv("RISE_PORT", "8123")

        settings = load_settings()

        assert settings.data_dir == (tmp_path / "elsewhere").resolve()
        assert settings.port == 8123

    def test_empty_values_count_as_unset(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        settings = load_settings(
            {"RISE_DATABASE_URL": "", "RISE_PORT": "", "RISE_MAX_IMAGE_PIXELS": "", "RISE_HOST": ""}
        )

        assert settings.database_url.startswith("sqlite:///")
        assert (settings.port, settings.max_image_pixels, settings.host) == (7860, 50_000_000, "127.0.0.1")


class TestOverrides:
    def test_database_url_override_is_used_verbatim(self, tmp_path):
        url = "postgresql+psycopg://rise:p%40ss@db.example:5432/rise"
        settings = load_settings({"RISE_DATABASE_URL": url, "RISE_DATA_DIR": str(tmp_path)})

        assert settings.database_url == url
        # The data folder still holds the media even when the database lives elsewhere.
        assert settings.media_dir == tmp_path.resolve() / "media"

    def test_data_dir_moves_the_database_and_media(self, tmp_path):
        settings = load_settings({"RISE_DATA_DIR": str(tmp_path / "d")})

        assert settings.database_url == f"sqlite:///{(tmp_path / 'd' / 'rise.db').resolve()}"
        assert settings.media_dir == (tmp_path / "d" / "media").resolve()

    def test_media_dir_can_be_set_on_its_own(self, tmp_path):
        settings = load_settings({"RISE_DATA_DIR": str(tmp_path / "d"), "RISE_MEDIA_DIR": str(tmp_path / "m")})
        assert settings.media_dir == (tmp_path / "m").resolve()

    def test_home_relative_paths_are_expanded(self, tmp_path, monkeypatch):
        monkeypatch.setenv("HOME", str(tmp_path))
        settings = load_settings({"RISE_DATA_DIR": "~/rise-data"})
        assert settings.data_dir == (tmp_path / "rise-data").resolve()

    def test_integers_accept_underscores(self):
        settings = load_settings({"RISE_MAX_IMAGE_PIXELS": "1_000_000", "RISE_PORT": "8080"})
        assert (settings.max_image_pixels, settings.port) == (1_000_000, 8080)

    def test_a_public_host_is_not_loopback(self):
        assert not load_settings({"RISE_HOST": "0.0.0.0"}).is_loopback
        assert load_settings({"RISE_HOST": "localhost"}).is_loopback

    def test_the_accepted_host_names_are_loopback_the_bound_address_and_the_allowed_ones(self):
        names = " Annotate.Example.org, 10.0.0.5 ,[fd00::5]"
        team = load_settings({"RISE_HOST": "0.0.0.0", "RISE_ALLOWED_HOSTS": names})
        assert team.allowed_hosts == ("annotate.example.org", "10.0.0.5", "fd00::5")
        assert team.accepted_host_names == {"127.0.0.1", "localhost", "::1", "annotate.example.org", "10.0.0.5",
                                            "fd00::5"}  # fmt: skip
        assert "192.168.1.9" in load_settings({"RISE_HOST": "192.168.1.9"}).accepted_host_names
        assert load_settings({}).accepted_host_names == {"127.0.0.1", "localhost", "::1"}

    def test_the_upload_limit_is_read_in_megabytes(self):
        assert load_settings({}).max_upload_mb == 100
        assert load_settings({"RISE_MAX_UPLOAD_MB": "20"}).max_upload_mb == 20


class TestInvalidValues:
    @pytest.mark.parametrize("name", ["RISE_PORT", "RISE_MAX_IMAGE_PIXELS"])
    @pytest.mark.parametrize("raw", ["eighty", "80.5", "1e6", "0x50", "--1"])
    def test_a_non_integer_names_the_variable_and_shows_an_example(self, name, raw):
        with pytest.raises(SettingsError) as caught:
            load_settings({name: raw})

        message = str(caught.value)
        assert name in message
        assert repr(raw) in message
        assert f"Example: {name}=" in message

    @pytest.mark.parametrize("port", ["0", "-1", "65536", "99999"])
    def test_a_port_out_of_range_is_refused(self, port):
        with pytest.raises(SettingsError, match=r"RISE_PORT=.*1\.\.65535"):
            load_settings({"RISE_PORT": port})

    @pytest.mark.parametrize("pixels", ["0", "-5"])
    def test_a_non_positive_pixel_limit_is_refused(self, pixels):
        with pytest.raises(SettingsError, match="RISE_MAX_IMAGE_PIXELS must be positive"):
            load_settings({"RISE_MAX_IMAGE_PIXELS": pixels})

    @pytest.mark.parametrize("hosts", ["https://annotate.example.org", "annotate.example.org:443", "*", "a b.org"])
    def test_allowed_hosts_must_be_bare_host_names(self, hosts):
        with pytest.raises(SettingsError, match="RISE_ALLOWED_HOSTS holds .*not a host name.*without scheme or port"):
            load_settings({"RISE_ALLOWED_HOSTS": hosts})

    @pytest.mark.parametrize("megabytes", ["0", "-5"])
    def test_a_non_positive_upload_limit_is_refused(self, megabytes):
        with pytest.raises(SettingsError, match="RISE_MAX_UPLOAD_MB must be positive"):
            load_settings({"RISE_MAX_UPLOAD_MB": megabytes})

    def test_settings_errors_are_value_errors(self):
        # Callers that catch ValueError for bad configuration keep working.
        assert issubclass(SettingsError, ValueError)

    def test_settings_are_immutable(self, tmp_path):
        settings = Settings(data_dir=tmp_path, database_url="sqlite://", media_dir=tmp_path / "m")
        with pytest.raises(AttributeError):
            settings.port = 1  # type: ignore[misc]
