"""XEP-0227 (Portable Import/Export Format): moving accounts and their data between servers.

- ``model``: what one account's export holds, as plain values;
- ``reader``: XEP-0227 files (Prosody's per-account files, ejabberd's XInclude'd host files,
  our own exports) into those values, noting what it cannot use;
- ``writer``: those values back into a XEP-0227 document;
- ``transfer``: the values into and out of our stores, through the stores' own APIs;
- ``cli``: ``xmppdctl export`` and ``xmppdctl import``.
"""
