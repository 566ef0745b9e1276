"""XEP-0050 ad-hoc commands: what a client can run on the server, found through disco.

``commands`` holds the command model (a form shown, then a run that completes), ``sessions``
the half-done executions, ``protocol`` the ``<command/>`` exchange and its disco, and
``admin`` XEP-0133's service administration set built on the one admin API.
"""
