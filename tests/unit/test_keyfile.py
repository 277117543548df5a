"""hostd.keyfile: NetworkManager keyfile validation, checked against NM's own test corpus."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostd import keyfile
from hostd.keyfile import MAX_KEYFILE_BYTES, Keyfile, KeyfileError, check_name, nm_ignores_name, parse_keyfile

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "nm-keyfiles"
VERDICTS = json.loads((CORPUS / "verdicts.json").read_text())["files"]
PSK = "correct-horse-battery-staple-42"
WIRED = "[connection]\nid=wired\ntype=ethernet\n"


def parse(text: str | bytes, name: str = "profile") -> Keyfile:
    return parse_keyfile(name, text.encode() if isinstance(text, str) else text)


def rejected(text: str | bytes, name: str = "profile") -> KeyfileError:
    with pytest.raises(KeyfileError) as info:
        parse(text, name)
    message = str(info.value)
    assert message.startswith(f"keyfile {name!r}"), message
    assert "\n" not in message
    return info.value


# --- NetworkManager's corpus ------------------------------------------------------------------


def test_verdict_table_covers_the_corpus_exactly() -> None:
    assert {p.name for p in CORPUS.iterdir()} - {"README.md", "verdicts.json"} == set(VERDICTS)


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_corpus_file_gets_networkmanagers_verdict(name: str) -> None:
    expected = VERDICTS[name]
    data = (CORPUS / name).read_bytes()
    assert nm_ignores_name(name) is expected["nm_ignores_name"]
    if expected["verdict"] == "reject":
        rejected(data, name)
    else:
        assert parse(data, name) == Keyfile(name, expected["uuid"], expected["id"], expected["type"])


def test_corpus_has_the_cases_the_rules_rest_on() -> None:
    # NM infers the type from a type section, with or without [connection], and uses the file
    # name and path when id and uuid are missing.
    assert parse((CORPUS / "Test_minimal_2").read_bytes()).type == "802-3-ethernet"
    assert parse((CORPUS / "Test_minimal_port_3").read_bytes()).type == "802-3-ethernet"
    missing = parse((CORPUS / "Test_Missing_ID_UUID").read_bytes())
    assert (missing.id, missing.uuid, missing.type) == (None, None, "802-3-ethernet")


def test_balena_boot_sample_parses_but_nm_ignores_its_name() -> None:
    name = "balena-sample.ignore"
    profile = parse((DATA / "boot" / name).read_bytes(), name)
    assert profile == Keyfile(name, None, "resin-sample", "802-11-wireless")
    assert nm_ignores_name(name)


# --- size, encoding, line endings ----------------------------------------------------------------


def test_size_limit_is_inclusive() -> None:
    padding = "#" * (MAX_KEYFILE_BYTES - len(WIRED) - 1) + "\n"
    assert len((WIRED + padding).encode()) == MAX_KEYFILE_BYTES
    assert parse(WIRED + padding).type == "802-3-ethernet"
    error = rejected(WIRED + padding + "#")
    assert str(MAX_KEYFILE_BYTES + 1) in str(error)


def test_bad_utf8_is_rejected_with_its_line() -> None:
    error = rejected(b"[connection]\ntype=ethernet\nid=caf\xe9\n")
    assert error.line == 3
    assert "not valid UTF-8" in str(error) and "caf\\xe9" in str(error)


def test_bad_value_of_a_key_that_is_not_secret_is_quoted() -> None:
    error = rejected(b"[connection]\ntype=wifi\n[wifi-security]\npsk-flags=1\xff\n")
    assert "'psk-flags' in [wifi-security]" in str(error) and "'1\\xff'" in str(error)


def test_bad_utf8_in_a_comment_is_rejected_too() -> None:
    # GKeyFile would skip it; hostd only imports text files.
    assert rejected(b"# caf\xe9\n" + WIRED.encode()).line == 1


def test_nul_byte_is_rejected() -> None:
    error = rejected(WIRED + "mtu=1\0\n")
    assert error.line == 4 and "NUL" in str(error)


def test_utf8_byte_order_mark_is_rejected_as_networkmanager_does() -> None:
    error = rejected(b"\xef\xbb\xbf" + WIRED.encode())
    assert "byte order mark" in str(error)


def test_crlf_line_endings_are_accepted() -> None:
    assert parse(WIRED.replace("\n", "\r\n")) == Keyfile("profile", None, "wired", "802-3-ethernet")


@pytest.mark.parametrize(
    "text",
    [
        "[ethernet]\n[connection]\r",  # GLib strips '\r' only before '\n'
        "[connection]\ntype=ethernet\r",  # ... so the type is "ethernet\r"
        "[connection]\r\r\ntype=ethernet\n",  # one '\r' is stripped, not two
        "[connection]\rtype=ethernet\r",  # a lone CR does not end a line
    ],
)
def test_carriage_returns_not_before_a_newline_stay_in_the_line(text: str) -> None:
    rejected(text)


# --- GKeyFile syntax -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("[connection]\ntype=ethernet\nnonsense\n", 3, "'nonsense' is not a [group] header"),
        ("; comment\n" + WIRED, 1, "';' does not start a comment"),
        ("[connection]\n=ethernet\n", 2, "no key name"),
        ("type=ethernet\n[connection]\n", 1, "before any [group]"),
        ("[]\n" + WIRED, 1, "group name '' is invalid"),
        ("[a[b]\n" + WIRED, 1, "group name 'a[b' is invalid"),
        ("[a\x01b]\n" + WIRED, 1, "group name 'a\\x01b' is invalid"),
        ("[connection]x\ntype=ethernet\n", 1, "is not a [group] header"),
        ("[connection] ]\ntype=ethernet\n", 1, "is not a [group] header"),
        (WIRED + "a]b=c\n", 4, "'a]b' in [connection] is not a valid key name"),
        (WIRED + "[x]=c\n", 4, "'[x]' in [connection] is not a valid key name"),
        (WIRED + "id [de]=c\n", 4, "not a valid key name"),
        (WIRED + "id[d e]=c\n", 4, "not a valid key name"),
        ("[connection]\nEncoding=latin1\ntype=ethernet\n", 2, "Encoding 'latin1' is not UTF-8"),
    ],
)
def test_syntax_errors_name_the_line(text: str, line: int, needle: str) -> None:
    error = rejected(text)
    assert error.line == line
    assert needle in str(error), str(error)


@pytest.mark.parametrize(
    "text",
    [
        "# comment\n\n   \n\t# indented comment\n" + WIRED,
        "  \t[connection] \t\n  type  =\t ethernet\n",
        "[connection]\n\x0ctype=ethernet\n",  # form feed is whitespace to GLib
        WIRED + "id[de_DE.UTF-8@euro]=localised\nid[]=odd but valid\nkey with spaces=x\n",
        WIRED + "[ipv4]\nEncoding=latin1\n",  # Encoding is only checked in the first group
        "[connection]\nEncoding=utf-8\ntype=ethernet\n",
        WIRED + "[.nmmeta]\n[unknown-setting]\nfoo=bar\n[wireguard-peer.abc]\n",
    ],
)
def test_what_gkeyfile_accepts_is_accepted(text: str) -> None:
    assert parse(text).type == "802-3-ethernet"


def test_later_duplicate_key_wins() -> None:
    assert parse("[connection]\ntype=bogus\ntype=ethernet\n").type == "802-3-ethernet"
    assert rejected("[connection]\ntype=ethernet\ntype=bogus\n").line == 3


def test_repeated_groups_merge() -> None:
    profile = parse("[connection]\ntype=wifi\n[wifi]\nssid=x\n[connection]\nid=second\n")
    assert (profile.type, profile.id) == ("802-11-wireless", "second")


def test_vertical_tab_is_not_whitespace_to_glib() -> None:
    rejected("[connection]\ntype=ethernet\x0b\n")
    # "\vtype" is another key, so the type is missing
    assert rejected("[connection]\n\x0btype=ethernet\n").key == "connection.type"


# --- connection.type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("ethernet", "802-3-ethernet"),
        ("802-3-ethernet", "802-3-ethernet"),
        ("wifi", "802-11-wireless"),
        ("802-11-wireless", "802-11-wireless"),
        ("vlan", "vlan"),
        ("bluetooth", "bluetooth"),
        ("pppoe", "pppoe"),
        ("wireguard", "wireguard"),
    ],
)
def test_type_aliases_are_normalised(given: str, canonical: str) -> None:
    assert parse(f"[connection]\ntype={given}\n").type == canonical


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("", "connection.type '' is empty"),
        ("   ", "connection.type '' is empty"),
        ("wiif", "'wiif' is not a NetworkManager connection type"),
        ("Ethernet", "is not a NetworkManager connection type"),
        ("wifi-security", "'wifi-security' is not a NetworkManager connection type"),
        ("ipv4", "is not a NetworkManager connection type"),
        ("ethernet # comment", "is not a NetworkManager connection type"),
        ("ethernet  ", "'ethernet  ' is not"),
        ("eth\\ernet", "is not a NetworkManager connection type"),
    ],
)
def test_bad_type_is_rejected(value: str, needle: str) -> None:
    error = rejected(f"[connection]\nid=x\ntype={value}\n[ethernet]\n")
    assert (error.key, error.line) == ("connection.type", 3)
    assert needle in str(error), str(error)


def test_trailing_backslash_in_type_is_dropped_as_glib_274_does() -> None:
    assert parse("[connection]\ntype=ethernet\\\n").type == "802-3-ethernet"


@pytest.mark.parametrize(
    ("text", "inferred"),
    [
        ("[802-3-ethernet]\n", "802-3-ethernet"),
        ("[connection]\nid=x\n[wifi]\nssid=a\n", "802-11-wireless"),
        ("[vlan]\nid=4\n[bridge-port]\n[ipv4]\n", "vlan"),
        ("[bluetooth]\n[gsm]\napn=x\n", "gsm"),  # bluetooth ranks below hardware types
        ("[pppoe]\n[ethernet]\n", "802-3-ethernet"),
        ("[pppoe]\n", "pppoe"),
    ],
)
def test_missing_type_is_inferred_from_the_type_section(text: str, inferred: str) -> None:
    assert parse(text).type == inferred


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "connection.type is missing"),
        ("# only a comment\n", "connection.type is missing"),
        ("[connection]\nid=x\n[ipv4]\nmethod=auto\n", "connection.type is missing"),
        ("[Connection]\ntype=ethernet\n", "connection.type is missing"),
        ("[ connection]\ntype=ethernet\n", "connection.type is missing"),
        ("[vpn-secrets]\npassword=x\n", "connection.type is missing"),
        ("[ethernet]\n[vlan]\n", "[802-3-ethernet] and [vlan] make it ambiguous"),
        ("[wifi]\n[802-11-olpc-mesh]\n", "ambiguous"),
    ],
)
def test_missing_type_that_cannot_be_inferred_is_rejected(text: str, needle: str) -> None:
    error = rejected(text)
    assert error.key == "connection.type"
    assert needle in str(error), str(error)


# --- connection.id and connection.uuid --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Home", "Home"),
        ("My\\sWifi\\\\x", "My Wifi\\x"),
        ("\\s", " "),
        ("a\\tb", "a\tb"),
        ("trailing  ", "trailing  "),
        ("a\\;b", None),  # g_key_file_get_string() fails: NM uses the file name
        ("oops\\", None),
    ],
)
def test_id_is_read_as_glib_reads_strings(value: str, expected: str | None) -> None:
    assert parse(f"[connection]\ntype=ethernet\nid={value}\n").id == expected


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_id_is_rejected(value: str) -> None:
    error = rejected(f"[connection]\ntype=ethernet\nid={value}\n")
    assert (error.key, error.line) == ("connection.id", 3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2f962388-e5f3-45af-a62c-ac220b8f7baa", "2f962388-e5f3-45af-a62c-ac220b8f7baa"),
        ("2F962388-E5F3-45AF-A62C-AC220B8F7BAA", "2f962388-e5f3-45af-a62c-ac220b8f7baa"),
        # legacy forms NM hashes into a v5 UUID; value seen from libnm 1.42
        ("0123456789ABCDEF0123456789abcdef01234567", "f6898d09-af3f-5d60-8d4f-24a67d5ebbd0"),
        ("0123456789abcdef0123456789abcdef----", "c07f508e-5593-59cd-9c04-0db101849d85"),
        ("2f962388-e5f3-45af-a62c-ac220b8f7ba\\x", None),  # unreadable: NM derives one from the path
    ],
)  # fmt: skip
def test_uuid_is_normalised_as_networkmanager_does(value: str, expected: str | None) -> None:
    assert parse(f"[connection]\ntype=ethernet\nuuid={value}\n").uuid == expected


@pytest.mark.parametrize(
    "value",
    ["", "hello", "0123456789abcdef0123456789abcdef", "{2f962388-e5f3-45af-a62c-ac220b8f7baa}",
     "2f962388-e5f3-45af-a62c-ac220b8f7baa ", "2f962388-e5f3-45af-a62c-ac220b8f7bag"],
)  # fmt: skip
def test_invalid_uuid_is_rejected(value: str) -> None:
    error = rejected(f"[connection]\ntype=ethernet\nuuid={value}\n")
    assert (error.key, error.line) == ("connection.uuid", 3)


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "/etc/passwd", "../x", "x/", ".", "..", ".hidden", "x\0y", "x" * 256, "é" * 128, "bad\udcff"],
)
def test_path_like_or_odd_names_are_rejected(name: str) -> None:
    with pytest.raises(KeyfileError) as info:
        check_name(name)
    assert "not a plain file name" in str(info.value)
    with pytest.raises(KeyfileError):
        parse_keyfile(name, WIRED.encode())


@pytest.mark.parametrize("name", ["home", "home.nmconnection", "x" * 255, "é" * 127, "Wi-Fi (5 GHz)", "a..b", "a."])
def test_plain_names_are_accepted(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        ("home", False),
        ("home.nmconnection", False),
        ("home~", True),
        ("home.pem", True),
        ("home.DER", True),
        ("home.config", True),  # a dot and six letters or digits: looks like a mkstemp() file
        ("home.abc123", True),
        ("home.abcde", False),
        ("home.abcdefg", False),
        ("a.b.cdefgh", True),
        ("home.ab-def", False),
    ],
)
def test_names_networkmanager_ignores(name: str, ignored: bool) -> None:
    assert nm_ignores_name(name) is ignored


# --- secrets never reach error messages -----------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "line"),
    [
        ("wifi-security", f"psk={PSK}\xff".encode("latin-1")),
        ("wifi-security", f"psk={PSK}\0".encode()),
        ("wifi-security", f"psk {PSK}".encode()),
        ("wifi-security", f"psk [x]={PSK}".encode()),
        ("wifi-security", PSK.encode()),
        ("wifi-security", f"wep-key0={PSK}\xff".encode("latin-1")),
        ("ipv4", f"psk: {PSK}".encode()),
        ("802-1x", f"private-key-password={PSK}\0".encode()),
        ("gsm", f"pin={PSK}\xff".encode("latin-1")),
        ("vpn-secrets", f"anything={PSK}\xff".encode("latin-1")),
    ],
)
def test_secret_values_never_appear_in_errors(group: str, line: bytes) -> None:
    data = b"[connection]\ntype=wifi\n[" + group.encode() + b"]\nkey-mgmt=wpa-psk\n" + line + b"\n"
    error = rejected(data)
    assert error.line == 5
    assert PSK not in str(error) and PSK[:8] not in str(error)


# --- properties ---------------------------------------------------------------------------------

FRAGMENTS = [
    b"[connection]", b"[ethernet]", b"[wifi]", b"[vlan]", b"[", b"]", b"=", b"#", b";", b"\\", b" ", b"\t",
    b"\n", b"\r\n", b"\r", b"\x0b", b"\x0c", b"\0", b"\xff", b"\xef\xbb\xbf", b"type=", b"ethernet", b"id=",
    b"uuid=", b"2f962388-e5f3-45af-a62c-ac220b8f7baa", b"Encoding=", b"[de]", b"psk=",
]  # fmt: skip


@given(st.one_of(st.binary(max_size=2048), st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=4)).map(b"".join)))
def test_any_bytes_parse_or_raise_keyfile_error(data: bytes) -> None:
    try:
        profile = parse_keyfile("f", data)
    except KeyfileError as error:
        assert str(error).startswith("keyfile 'f'")
    else:
        assert profile.type in keyfile._BASE_TYPES


def _is_plain(name: str) -> bool:
    try:
        size = len(name.encode())
    except UnicodeEncodeError:
        return False
    return 0 < size <= 255 and "/" not in name and "\0" not in name and not name.startswith(".")


NAME_CHARS = st.characters() | st.sampled_from(["/", ".", "\0", "\udcff", "é", "\U0001f600", "~"])


@given(st.lists(NAME_CHARS, max_size=100).map("".join))
def test_check_name_accepts_exactly_plain_names(name: str) -> None:
    try:
        check_name(name)
    except KeyfileError:
        assert not _is_plain(name)
    else:
        assert _is_plain(name)


def _escape(value: str) -> str:
    """The value as GLib's g_key_file_set_string() writes it."""
    out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return "\\s" + out[1:] if out.startswith(" ") else out


TYPES = {
    "ethernet": "802-3-ethernet",
    "wifi": "802-11-wireless",
    "802-3-ethernet": "802-3-ethernet",
    "vlan": "vlan",
    "bond": "bond",
    "gsm": "gsm",
    "vpn": "vpn",
    "wireguard": "wireguard",
    "loopback": "loopback",
}
# Random names avoid these so that the expected type, id and uuid stay known.
SPECIAL = {"connection", "Encoding", "type", "id", "uuid"} | set(keyfile._BASE_TYPES) | set(keyfile._ALIASES)
TEXT_CHARS = st.characters(codec="utf-8").filter(lambda c: c not in "\0\n")
BLANKS = st.text(" \t", max_size=2)
# Group names: no brackets, no ASCII control characters (GLib's rule).
group_names = st.text(
    st.characters(codec="utf-8").filter(lambda c: c not in "[]" and not (c < " " or c == "\x7f")), min_size=1
).filter(lambda g: g not in SPECIAL)
# Key names: no '=' or brackets, not starting with whitespace or '#', not ending with whitespace
# (GLib would strip it), optionally a [locale] suffix.
key_names = st.builds(
    lambda first, rest, locale: first + rest + locale,
    st.characters(codec="utf-8").filter(lambda c: c not in " \t\n\f\r#[]=\0"),
    st.text(TEXT_CHARS.filter(lambda c: c not in "[]=\r"), max_size=8).filter(lambda k: k.rstrip(" \t\f") == k),
    st.just("") | st.text(string.ascii_letters + string.digits + "-_.@", max_size=6).map(lambda s: f"[{s}]"),
).filter(lambda k: k not in SPECIAL)
# A leading form feed is stripped by GLib and has no escape, so it cannot round-trip.
ids = st.text(TEXT_CHARS, min_size=1, max_size=20).filter(lambda s: s[0] != "\f")
noise = st.lists(
    st.one_of(BLANKS, st.builds(lambda b, t: b + "#" + t, BLANKS, st.text(TEXT_CHARS, max_size=10))),
    max_size=2,
)


@st.composite
def entries(draw: st.DrawFn) -> list[str]:
    lines = []
    for key in draw(st.lists(key_names, max_size=4)):
        lines += draw(noise)
        value = _escape(draw(st.text(TEXT_CHARS, max_size=12)))
        lines.append(f"{draw(BLANKS)}{key}{draw(BLANKS)}={draw(BLANKS)}{value}")
    return lines


@st.composite
def keyfiles(draw: st.DrawFn) -> tuple[str, Keyfile]:
    """A valid keyfile in random layout, and what parse_keyfile() must make of it."""
    id_ = draw(st.none() | ids)
    given_uuid = draw(st.none() | st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()))
    given_type = draw(st.none() | st.sampled_from(sorted(TYPES)))
    connection = [f"type={given_type}"] if given_type else []
    connection += [f"id={_escape(id_)}"] if id_ is not None else []
    connection += [f"uuid={given_uuid}"] if given_uuid else []
    connection += draw(entries())
    groups = [(g, draw(entries())) for g in draw(st.lists(group_names, max_size=3))]
    if given_type is None:
        type_section = draw(st.sampled_from(sorted(TYPES)))
        groups.append((type_section, draw(entries())))
    split = draw(st.integers(0, len(connection)))  # [connection] may come in two parts
    if connection or draw(st.booleans()):
        groups += [
            ("connection", draw(st.permutations(connection[:split]))),
            ("connection", connection[split:]),
        ]
    lines = []
    for group, body in draw(st.permutations(groups)):
        lines += [*draw(noise), f"{draw(BLANKS)}[{group}]{draw(BLANKS)}", *body]
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(lines) + draw(st.sampled_from(["", eol]))
    expected_type = TYPES[given_type or type_section]
    return text, Keyfile("p", given_uuid.lower() if given_uuid else None, id_, expected_type)


@given(keyfiles())
def test_generated_valid_keyfiles_parse_and_round_trip(case: tuple[str, Keyfile]) -> None:
    text, expected = case
    assert parse(text, "p") == expected


@given(
    st.text(string.ascii_letters + string.digits, min_size=10, max_size=40),
    st.sampled_from(["psk={}\xff", "psk={}\0", "psk {}", "psk [x y]={}", "{}", "  psk={}\xff"]),
)
def test_psk_never_appears_in_errors(secret: str, line: str) -> None:
    data = b"[connection]\ntype=wifi\n[wifi-security]\n" + line.format(secret).encode("latin-1") + b"\n"
    with pytest.raises(KeyfileError) as info:
        parse_keyfile("p", data)
    assert secret not in str(info.value)
