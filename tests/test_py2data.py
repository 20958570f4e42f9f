"""mmdeb.importing.py2data on Python 2 pickles and marshal files written by tests/py2pickle.py."""

import pickletools

import pytest
from helpers.py2golden import MARSHAL, PICKLE_0, PICKLE_1, PICKLE_2
from helpers.py2pickle import Interned, Py2Instance, dumps, marshal_dumps

from mmdeb.importing.py2data import (LANGUAGE_CHARSETS, MixedString, StandIn, convert_config, convert_data, convert_requests, load_archive_database, load_pickle, loads_marshal, loads_pickle)

POLISH = "Zażółć gęślą jaźń"
GERMAN = "Grüße aus Köln, Straße"
JAPANESE = "日本語のメーリングリスト"
RUSSIAN = "Список рассылки"

GOLDEN_VALUE = {
    b"description": b"Gr\xfc\xdfe \"q\" 's\n\\", b"big": 70000,
    b"bi": Py2Instance("Mailman.Bouncer", "_BounceInfo", {b"member": b"b@y", b"score": 1.5}),
    b"members": {b"a@x": 0}, b"huge": 2**40, b"e": (), b"neg": -3, b"l": ["ä€\n\\", True, False, None],
    b"long": b"x" * 300, b"n": 5, b"t": (1, b"ab"),
}
GOLDEN_MARSHAL_VALUE = {
    (Interned(b""), b"<b@x>"): b"<b@x>", (b"1167609600.0", b"<a@x>"): b"<a@x>", Interned(b"u"): "ä",
    Interned(b"big"): 2**40, (Interned(b""), b"<c@x>"): b"Gr\xfc\xdfe", Interned(b"lng"): 2**70,
    Interned(b"l"): [1.5, None, True], Interned(b"neg"): -2, Interned(b"n"): 3,
}


def config(preferred_language: str, **attributes) -> dict:
    """A config.pck dict as 2.1 saves it, with py2 str keys."""
    return {b"preferred_language": preferred_language.encode(), b"real_name": b"test", **{
        key.encode(): value for key, value in attributes.items()}}


def saved_config(tmp_path, value: dict, protocol: int = 1):
    path = tmp_path / "lists" / "test" / "config.pck"
    path.parent.mkdir(parents=True)
    path.write_bytes(dumps(value, protocol))
    return path


def converted(tmp_path, value: dict):
    path = saved_config(tmp_path, value)
    return convert_config(load_pickle(path), str(path))


@pytest.mark.parametrize("protocol, golden", [(0, PICKLE_0), (1, PICKLE_1), (2, PICKLE_2)])
def test_helper_pickles_as_python2_cpickle(protocol, golden):
    assert dumps(GOLDEN_VALUE, protocol) == golden


def test_helper_marshals_as_python2():
    assert marshal_dumps(GOLDEN_MARSHAL_VALUE) == MARSHAL


def test_config_pck_opcodes_are_python2_protocol_1():
    # MailList.__save: cPickle.dump(dict, fp, 1): str as SHORT_BINSTRING/BINSTRING, unicode as BINUNICODE.
    opcodes = {op.name for op, _, _ in pickletools.genops(PICKLE_1)}
    assert {"SHORT_BINSTRING", "BINSTRING", "BINUNICODE", "GLOBAL", "OBJ", "BUILD"} <= opcodes


def test_py2_str_loads_as_bytes_and_unicode_as_str():
    loaded = loads_pickle(PICKLE_1)
    assert (loaded[b"description"], loaded[b"l"][0]) == (b"Gr\xfc\xdfe \"q\" 's\n\\", "ä€\n\\")


def test_marshal_reads_python2_interned_strings():
    loaded = loads_marshal(MARSHAL)
    assert loaded[(b"", b"<c@x>")] == b"Gr\xfc\xdfe" and loaded[b"lng"] == 2**70


def test_classes_are_stand_ins_and_nothing_is_imported_or_called(tmp_path):
    marker = tmp_path / "ran"
    # GLOBAL os.system with REDUCE would run the command if the class were imported.
    evil = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    loaded = loads_pickle(evil)
    assert isinstance(loaded, StandIn) and (loaded.py2_module, loaded.py2_name) == ("os", "system")
    assert not marker.exists()


def test_german_latin1_list(tmp_path):
    result, warnings = converted(tmp_path, config(
        "de", description=GERMAN.encode("iso-8859-1"), info=("Über " + GERMAN).encode("iso-8859-1"),
        members={b"hans@example.de": 0}, usernames={b"hans@example.de": "Jürgen Müller".encode("iso-8859-1")}))
    assert (result["description"], result["info"], result["usernames"], warnings) == (
        GERMAN, "Über " + GERMAN, {"hans@example.de": "Jürgen Müller"}, [])


def test_polish_iso_8859_2_list(tmp_path):
    result, warnings = converted(tmp_path, config("pl", description=POLISH.encode("iso-8859-2")))
    assert (result["description"], warnings) == (POLISH, [])


def test_japanese_euc_jp_list(tmp_path):
    result, warnings = converted(tmp_path, config("ja", info=JAPANESE.encode("euc-jp")))
    assert (result["info"], warnings) == (JAPANESE, [])


def test_euc_jp_text_that_is_also_valid_utf8_stays_euc_jp(tmp_path):
    short = "連"  # EUC-JP CF A2, also valid UTF-8 (U+03E2)
    assert short.encode("euc-jp").decode("utf-8")
    result, _ = converted(tmp_path, config("ja", description=short.encode("euc-jp")))
    assert result["description"] == short


def test_utf8_russian_list(tmp_path):
    result, warnings = converted(tmp_path, config("ru", description=RUSSIAN.encode("utf-8")))
    assert (result["description"], warnings) == (RUSSIAN, [])


def test_utf8_string_in_latin1_list(tmp_path):
    result, warnings = converted(tmp_path, config(
        "de", description=GERMAN.encode("iso-8859-1"), info=("Привет, " + GERMAN).encode("utf-8")))
    assert (result["description"], result["info"], warnings) == (GERMAN, "Привет, " + GERMAN, [])


def test_unicode_object_needs_no_decoding(tmp_path):
    result, _ = converted(tmp_path, config("pl", description=POLISH))  # BINUNICODE
    assert result["description"] == POLISH


def test_member_language_differs_from_the_list(tmp_path):
    address = b"jan@example.pl"
    result, warnings = converted(tmp_path, config(
        "de", members={address: 0}, language={address: b"pl"},
        usernames={address: "Michał Łukasz".encode("iso-8859-2")}, passwords={address: "zółw".encode("iso-8859-2")}))
    assert (result["usernames"], result["passwords"], warnings) == (
        {"jan@example.pl": "Michał Łukasz"}, {"jan@example.pl": "zółw"}, [])


def test_string_invalid_in_its_charset_keeps_its_bytes_and_is_reported(tmp_path):
    raw = b"Liste f\xfcr \xe4\xf6\xfc"  # Latin-1 in a UTF-8 (Russian) list
    path = saved_config(tmp_path, config("ru", description=raw))
    result, warnings = convert_config(load_pickle(path), str(path))
    assert result["description"].encode("iso-8859-1") == raw
    assert warnings == [f"{path}: description: not valid utf-8: read as iso-8859-1, one character a byte"]


def test_invalid_member_name_warning_names_the_member(tmp_path):
    path = saved_config(tmp_path, config("en", usernames={b"bob@example.org": b"Bob \xff\xfe"}))
    _, warnings = convert_config(load_pickle(path), str(path))
    assert warnings == [f"{path}: usernames['bob@example.org']: not valid us-ascii nor utf-8: "
                        "read as iso-8859-1, one character a byte"]


def test_bounce_info_instance(tmp_path):
    info = Py2Instance("Mailman.Bouncer", "_BounceInfo", {
        b"member": b"hans@example.de", b"score": 2.0, b"date": (2024, 5, 17), b"noticesleft": 3,
        b"lastnotice": (1970, 1, 2), b"cookie": None})
    result, _ = converted(tmp_path, config("de", bounce_info={b"hans@example.de": info}))
    bounce = result["bounce_info"]["hans@example.de"]
    assert ((bounce.py2_module, bounce.py2_name), bounce.state) == (("Mailman.Bouncer", "_BounceInfo"), {
        "member": "hans@example.de", "score": 2.0, "date": (2024, 5, 17), "noticesleft": 3,
        "lastnotice": (1970, 1, 2), "cookie": None})


def test_pending_subscription_in_the_subscribers_language(tmp_path):
    # Pending.py saves with cPickle.dump(db, fp): protocol 0.
    desc = Py2Instance("Mailman.UserDesc", "UserDesc", {
        b"address": b"jan@example.pl", b"fullname": "Michał".encode("iso-8859-2"),
        b"password": b"secret", b"digest": 0, b"language": b"pl"})
    pending = loads_pickle(dumps({b"evictions": {b"abc": 1.0}, b"abc": (b"S", desc), b"version": 2}, 0))
    result, warnings = convert_data(pending, "de", "pending.pck")
    assert (result["abc"][1].state["fullname"], warnings) == ("Michał", [])


def test_held_subscription_in_the_subscribers_language():
    held = (2, (1700000000.0, b"jan@example.pl", "Michał".encode("iso-8859-2"), b"pw", 0, b"pl"))
    requests = loads_pickle(dumps({b"next_request_id": 2, 1: held}))
    result, warnings = convert_requests(requests, "de", "request.pck")
    assert (result[1][1][2], result["next_request_id"], warnings) == ("Michał", 2, [])


def test_archive_databases(tmp_path):
    database = tmp_path / "archives" / "private" / "test" / "database"
    database.mkdir(parents=True)
    (database / "2024-May-date").write_bytes(marshal_dumps({(b"1715904000.0", b"<1@x>"): b"<1@x>"}))
    article = Py2Instance("Mailman.Archiver.HyperArch", "Article", {
        b"subject": "Grüße".encode("iso-8859-1"), b"author": "Jürgen".encode("iso-8859-1"),
        b"msgid": b"<1@x>", b"_lang": b"de", b"decoded": {b"subject": "Grüße"}})
    # pipermail stores each Article as pickle.dumps(article): protocol 0, inside the marshal file.
    (database / "2024-May-article").write_bytes(marshal_dumps({b"<1@x>": dumps(article, 0)}))
    dates, _ = convert_data(load_archive_database(database / "2024-May-date"), "de", "2024-May-date")
    articles, warnings = convert_data(load_archive_database(database / "2024-May-article"), "ru", "2024-May-article")
    assert dates == {("1715904000.0", "<1@x>"): "<1@x>"}
    assert (articles["<1@x>"].state["subject"], articles["<1@x>"].state["author"], warnings) == ("Grüße", "Jürgen", [])


def test_invalid_string_deep_in_an_archive_database_is_reported_with_its_place():
    article = Py2Instance("Mailman.Archiver.HyperArch", "Article", {
        b"_lang": b"ru", b"body": [b"ok\n", b"\xff\xfe\n"]})
    database = loads_marshal(marshal_dumps({b"<1@x>": dumps(article, 0)}))
    _, warnings = convert_data({key: loads_pickle(value) for key, value in database.items()}, "de", "2024-May-article")
    assert warnings == ["2024-May-article: ['<1@x>'].body[1]: not valid utf-8: read as iso-8859-1, one character a byte"]


def test_unknown_language_is_reported(tmp_path):
    path = saved_config(tmp_path, config("tlh", description=b"Qapla'"))
    result, warnings = convert_config(load_pickle(path), str(path))
    assert (result["description"], warnings) == (
        "Qapla'", [f"{path}: preferred_language: language 'tlh' has no charset in the table: read as us-ascii"])


def test_a_sites_own_charset_table(tmp_path):
    # Mailman before 2.1.10 had Russian in koi8-r; mm_cfg.py can say so with add_language().
    path = saved_config(tmp_path, config("ru", description=RUSSIAN.encode("koi8-r")))
    result, warnings = convert_config(load_pickle(path), str(path), {**LANGUAGE_CHARSETS, "ru": "koi8-r"})
    assert (result["description"], warnings) == (RUSSIAN, [])


@pytest.mark.parametrize("language, legacy, charset, fragment, shown", [
    ("de", "Für alle Freunde von ", "iso-8859-1", "café テスト", "…alle Freunde von café テスト Ende"),
    ("pl", POLISH + ": ", "iso-8859-2", "café テスト", "…żółć gęślą jaźń: café テスト Ende"),
    # In EUC-JP, a UTF-8 character whose bytes are EUC-JP too stays EUC-JP (é would): テスト is not.
    ("ja", JAPANESE + "、", "euc-jp", "テスト", "日本語のメーリングリスト、テスト Ende")])
def test_utf8_inside_a_legacy_string_is_read_as_utf8_and_reported(tmp_path, language, legacy, charset, fragment, shown):
    # A UTF-8 fragment pasted into a list's info: valid as a whole in neither charset.
    raw = legacy.encode(charset) + fragment.encode("utf-8") + b" Ende"
    result, warnings = converted(tmp_path, config(language, info=raw))
    assert result["info"] == legacy + fragment + " Ende"
    (warning,) = warnings
    assert (isinstance(warning, MixedString), warning.field, warning.preview) == (True, "info", shown)
    assert str(warning) == (f"{tmp_path}/lists/test/config.pck: info: mixed charsets: runs of UTF-8 read as UTF-8, "
                            f"the rest as {charset}: {shown!r}")


def test_preview_of_a_long_mixed_string_is_cut_around_the_utf8_run(tmp_path):
    raw = b"x" * 100 + "Gr\u00fc\u00dfe aus K\u00f6ln".encode("iso-8859-1") + "caf\u00e9".encode("utf-8") + b"y" * 100
    _, (warning,) = converted(tmp_path, config("de", info=raw))
    assert warning.preview == "…xxxGrüße aus Kölncafé" + "y" * 39 + "…"


def test_bytes_invalid_around_a_utf8_run_are_still_reported_as_invalid(tmp_path):
    raw = "Список ".encode("utf-8") + b"f\xfcr"  # a UTF-8 list: nothing to mix
    result, warnings = converted(tmp_path, config("ru", info=raw))
    assert result["info"] == raw.decode("iso-8859-1") and not isinstance(warnings[0], MixedString)
