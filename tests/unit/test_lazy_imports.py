"""What a server does not use, it does not import (idle memory, issue 18)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def test_the_service_imports_no_web_server_nor_federation_until_needed():
    """twisted.web (the web server, made at a plugin's first mount) and the s2s streams with
    twisted.names (imported when [s2s] has a listener) cost a server without them nothing."""
    code = textwrap.dedent('''
        import sys
        import xmppd.service, xmppd.server, xmppd.tap
        heavy = [name for name in ("twisted.web.server", "xmppd.http.server",
                                   "xmppd.s2s.manager", "twisted.names.client")
                 if name in sys.modules]
        assert not heavy, heavy
    ''')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
