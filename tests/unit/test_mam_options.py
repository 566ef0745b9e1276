"""[plugins.mam] read by configure(), before the database opens: defaults, and a bad value
or an unknown key stops start-up with a line naming the key."""

from __future__ import annotations

from xmppd.options import PluginOptions
from xmppd.plugins.mam import Mam


def test_options_are_checked_before_start():
    defaults = Mam().configure(PluginOptions("mam", {}))
    assert defaults == {"default_prefs": "always", "retention_days": 0, "batch_ms": 50,
                        "batch_size": 5000, "page_size": 50, "max_page_size": 250}
    for section, message in (
        ({"batch_ms": -1}, "[plugins.mam] batch_ms: expected an integer >= 0"),
        ({"default_prefs": "sometimes"}, "[plugins.mam] default_prefs: expected one of"),
        ({"page_size": 300}, "[plugins.mam] page_size: expected an integer >= 1 and <= 250"),
        ({"archive": True}, "[plugins.mam] archive: unknown key"),
    ):
        try:
            Mam().configure(PluginOptions("mam", section))
        except ValueError as error:
            assert str(error).startswith(message), error
        else:
            raise AssertionError(section)
