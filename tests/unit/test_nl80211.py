"""hostd's generic netlink client against this machine's kernel.

The kernel's own generic netlink controller answers the family lookups and the error replies
here; whether the kernel has nl80211 depends on the machine (none without a Wi-Fi stack).
"""

from __future__ import annotations

import errno
import os

import pytest

from hostd import nl80211


def test_attributes_are_padded_and_read_back() -> None:
    encoded = nl80211._attribute(nl80211.NL80211_ATTR_REG_ALPHA2, b"GB\0") + nl80211._attribute(1, b"\x10\x00")
    assert len(encoded) == 8 + 8  # 4-byte header + 3 bytes, padded to 8; 4 + 2, padded to 8
    assert nl80211._attributes(encoded) == {nl80211.NL80211_ATTR_REG_ALPHA2: b"GB\0", 1: b"\x10\x00"}


def test_the_kernel_resolves_its_own_controller_family() -> None:
    with nl80211.GenericNetlink() as netlink:
        assert netlink.family_id("nlctrl") == nl80211.GENL_ID_CTRL


def test_an_unknown_family_is_unavailable() -> None:
    with nl80211.GenericNetlink() as netlink, pytest.raises(nl80211.Unavailable, match="no-such-family"):
        netlink.family_id("no-such-family")


def test_an_error_reply_is_an_oserror_with_the_kernels_errno() -> None:
    with nl80211.GenericNetlink() as netlink, pytest.raises(OSError) as excinfo:
        netlink.request(nl80211.GENL_ID_CTRL, 200, ack=True)  # no such controller command
    assert excinfo.value.errno == errno.EOPNOTSUPP
    assert excinfo.value.strerror == os.strerror(errno.EOPNOTSUPP)


def test_regulatory_domain_or_no_wifi_stack() -> None:
    """With cfg80211 in the kernel the domain is two characters; without, the caller is told so."""
    try:
        domain = nl80211.regulatory_domain()
    except nl80211.Unavailable as exc:
        assert "nl80211" in str(exc)
    else:
        assert len(domain) == 2
