"""country: cfg80211's module option, read by the device's kmod, and the kernel's domain set live.

This machine's kernel may have no Wi-Fi stack (no nl80211): hostd then says so in the step's
report; with one, the domain is requested over nl80211.
"""

from __future__ import annotations

import pytest

from hostd import nl80211

from .device import Hostd

pytestmark = pytest.mark.system


def regdom_options(hostd: Hostd) -> list[str]:
    """cfg80211's regulatory-domain options as kmod reads its configuration inside the device."""
    out = hostd.tb.exec(["modprobe", "-c"]).stdout
    return [line for line in out.splitlines() if "ieee80211_regdom" in line]


def kernel_has_wifi() -> bool:
    try:
        nl80211.regulatory_domain()
    except nl80211.Unavailable:
        return False
    return True


def test_country_follows_config_live(boot: Hostd) -> None:
    boot.edit_config(country="gb")
    boot.tb.wait_for(lambda: regdom_options(boot) == ["options cfg80211 ieee80211_regdom=GB"], 10, "option")
    step = boot.wait_describe(
        lambda d: any(s["name"] == "regulatory-domain" and s["report"] for s in d["steps"]), what="report"
    )
    (entry,) = next(s for s in step["steps"] if s["name"] == "regulatory-domain")["report"]
    assert entry["country"] == "GB"
    if kernel_has_wifi():
        assert entry["kernel"] in ("requested", "set"), entry
    else:
        assert entry["kernel"].startswith("no Wi-Fi stack loaded"), entry
    assert boot.step("regulatory-domain")["problems"] == []
    # a network key: probed, then kept
    kept = boot.wait_describe(lambda d: d["generations"]["transaction"] == "", 30, "the probe done")
    assert kept["generations"]["notApplied"] == ""

    boot.edit_config(country=None)
    boot.tb.wait_for(lambda: regdom_options(boot) == [], 10, "option removed")
    removed = boot.wait_describe(
        lambda d: any(
            s["name"] == "regulatory-domain" and [e["country"] for e in s["report"]] == ["00"] for s in d["steps"]
        ),
        what="back to the world domain",
    )
    assert "regulatory-domain" in [s["name"] for s in removed["steps"]]
