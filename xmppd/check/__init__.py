"""``xmppdctl check``: is this setup ready for the world? Like ``prosodyctl check``.

Four areas, each a module that returns Findings (one line each): ``config`` (every problem of
the file and of the plugins' options at once), ``dns`` (SRV, A and AAAA records for c2s and
s2s of every domain and service subdomain, through twisted.names), ``certificates`` (chain,
expiry, names per RFC 6125, key matching) and ``connectivity`` (our own ports, as configured
and as DNS advertises them). ``runner`` runs them and gives the exit status.
"""
