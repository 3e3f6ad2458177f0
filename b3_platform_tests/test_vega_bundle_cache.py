"""The dashboard's Vega bundle is built once per vl-convert release and kept in the user's cache
folder (b3_platform.dashboard.page.vega_bundle): later pages read it instead of rebuilding it."""

import pytest
import vl_convert

from b3_platform.dashboard import page, specs


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    page.vega_bundle.cache_clear()
    yield tmp_path / "cache"
    page.vega_bundle.cache_clear()


def test_the_bundle_is_built_once_then_read_from_the_cache(cache_home):
    built = page.vega_bundle()
    assert built == vl_convert.javascript_bundle(vl_version=specs.VEGA_LITE_VERSION)
    cached = page.bundle_cache_file()
    assert cached.parent == cache_home / "b3_platform"
    assert cached.read_text(encoding="utf-8") == built
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary file left
    # A new process (here: the in-process memo cleared) reads the file instead of building.
    cached.write_text("/* kept */ var vegaEmbed;", encoding="utf-8")
    page.vega_bundle.cache_clear()
    assert page.vega_bundle() == "/* kept */ var vegaEmbed;"


def test_the_cache_file_is_named_for_the_release_that_built_it(cache_home):
    name = page.bundle_cache_file().name
    assert specs.VEGA_LITE_VERSION in name
    assert vl_convert.__version__ in name


def test_an_unwritable_cache_folder_still_gives_the_bundle(cache_home):
    cache_home.mkdir(parents=True)
    (cache_home / "b3_platform").write_text("a file where the folder would go")
    assert "vegaEmbed" in page.vega_bundle()
    assert (cache_home / "b3_platform").is_file()
