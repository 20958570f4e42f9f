"""Where mmdeb keeps things, and its settings file."""

from dataclasses import replace
from pathlib import Path

import pytest

from mmdeb.errors import MmdebError
from mmdeb.app.places import choose
from mmdeb.app.conf import Settings, load

PROJECT = Path(__file__).resolve().parent.parent


def test_a_directory_with_mmdeb_toml_keeps_its_places_on_an_installed_system(tmp_path):
    (tmp_path / "etc/mmdeb").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / "mmdeb.toml").write_text("")
    places = choose(work, tmp_path)
    assert (places.system, places.state, places.out, places.repo) == (False, work / "mmdeb.toml", work / "build", work / "repo")


def test_an_installed_mmdeb_uses_the_system_places(tmp_path):
    (tmp_path / "etc/mmdeb").mkdir(parents=True)
    places = choose(tmp_path / "elsewhere", tmp_path)
    assert (places.settings, places.catalogue, places.state, places.out, places.repo, places.cache) == (
        tmp_path / "etc/mmdeb/mmdeb.conf", tmp_path / "etc/mmdeb/catalogue.toml", tmp_path / "var/lib/mmdeb/mmdeb.toml",
        tmp_path / "var/lib/mmdeb/build", tmp_path / "var/lib/mmdeb/repo", tmp_path / "var/cache/mmdeb")


def test_the_signing_key_is_beside_the_repository_never_in_it(tmp_path):
    (tmp_path / "etc/mmdeb").mkdir(parents=True)
    assert choose(tmp_path / "elsewhere", tmp_path).signing_key == tmp_path / "var/lib/mmdeb/signing-key"
    work = choose(tmp_path / "work", tmp_path / "no-root")
    assert work.signing_key == tmp_path / "work/signing-key"
    assert replace(work, repo=tmp_path / "srv/apt").signing_key == tmp_path / "srv/signing-key"


def test_without_an_installed_mmdeb_the_working_directory_is_used(tmp_path):
    assert choose(tmp_path, tmp_path / "no-root").state == tmp_path / "mmdeb.toml"


def test_the_shipped_settings_file_holds_the_defaults():
    assert load(PROJECT / "etc/mmdeb.conf") == Settings()


def test_a_missing_settings_file_means_the_defaults(tmp_path):
    assert load(tmp_path / "mmdeb.conf") == Settings()


def test_a_setting_is_read(tmp_path):
    (tmp_path / "mmdeb.conf").write_text('[autorebuild]\npolicy = "build+publish"\n[chroot]\nmax_age_days = 2\n')
    assert (load(tmp_path / "mmdeb.conf").policy, load(tmp_path / "mmdeb.conf").max_age_days) == ("build+publish", 2)


@pytest.mark.parametrize("text, named", [
    ('[autorebuild]\npolicy = "publish"\n', "autorebuild.policy"),
    ('[chroot]\nmax_age_days = "7"\n', "chroot.max_age_days"),
    ('[chroot]\npolicy = "build"\n', "unknown setting chroot.policy"),
    ("[chroot\n", "not valid TOML"),
])
def test_a_bad_setting_is_refused_with_its_name(tmp_path, text, named):
    (tmp_path / "mmdeb.conf").write_text(text)
    with pytest.raises(MmdebError, match=named):
        load(tmp_path / "mmdeb.conf")
