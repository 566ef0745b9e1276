# -*- test-case-name: tests.unit.test_server_trust -*-
"""The operators' commands of the server-trust plugins (``xmppdctl trust ...``,
``xmppdctl incident ...``; ``admin.trust_request(...)`` in the manhole), registered by the
plugins themselves, so they exist exactly while the plugin is loaded."""

from __future__ import annotations

from twisted.internet import defer

from xmppd.trust.incidents import incident_row

DOMAIN, LOCAL = "DOMAIN", "LOCAL?"  # LOCAL: the domain of ours that acts (default: the first)

TRUST_ACTIONS = (
    ("request", "ask DOMAIN's server for a trust relationship (XEP-0267)"),
    ("approve", "approve DOMAIN's pending request, and ask back"),
    ("deny", "refuse DOMAIN's pending request"),
    ("revoke", "end the relationship with DOMAIN both ways"),
)


def add_trust_commands(ctx, trust) -> None:
    """``trust request|approve|deny|revoke DOMAIN [LOCAL]`` fire the relationship rows they
    changed; ``trust list`` fires the server roster (domain, local, subscription, pending_in,
    pending_out, available, state, since); ``trust pending`` the requests waiting."""
    for action, help in TRUST_ACTIONS:
        ctx.admin_command(f"trust {action}", getattr(trust, action), help, args=(DOMAIN, LOCAL))
    ctx.admin_command("trust list", lambda: defer.succeed(trust.peers()), "the server roster")
    ctx.admin_command("trust pending", lambda: defer.succeed(
        [row for row in trust.peers() if row["pending_in"]]), "requests waiting for an answer")


def add_incident_commands(ctx, reports, store) -> None:
    """``incident report DESCRIPTION`` fires the peer domains the report went to (the
    manhole's ``admin.incident_report(description, sources, severity)`` takes the optional
    offending JIDs and severity too); ``incident list`` every report sent and received,
    oldest first."""
    ctx.admin_command("incident report", reports.report,
                      "send an incident report (XEP-0268) to every trusted buddy",
                      args=("DESCRIPTION",))
    ctx.admin_command("incident list", lambda: _incident_rows(store),
                      "incident reports sent and received")


def _incident_rows(store) -> defer.Deferred:
    d = store.list_incidents()
    return d.addCallback(lambda records: [incident_row(record) for record in records])
