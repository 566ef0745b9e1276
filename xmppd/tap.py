"""``twistd xmppd``: options and makeService. Everything that can be checked before the reactor
runs (config, certificate, plugin names) is checked here, so a bad setup exits at once."""

from __future__ import annotations

from twisted.internet import reactor as default_reactor
from twisted.python import usage

from xmppd.config import ConfigError, load_config
from xmppd.logs import set_level
from xmppd.stream.certstore import CertificateStore
from xmppd.stream.tls import ServerTLS, TLSConfigError


class Options(usage.Options):
    optParameters = [["config", "c", "etc/xmppd.toml", "The TOML configuration file."]]

    def postOptions(self) -> None:
        try:
            self["config_object"] = load_config(self["config"])
        except ConfigError as error:  # every problem in the file, one line each
            raise usage.UsageError("\n".join(error.problems)) from None


def makeService(options: Options, reactor=None):
    from xmppd.service import XmppdService
    from xmppd.storage import open_storage

    reactor = reactor or default_reactor
    config = options["config_object"]
    set_level(config.log.level)
    try:
        certificates = CertificateStore.from_config(config.tls, config.server.domains)
        tls_context = ServerTLS(certificates, config.tls.min_version)
    except TLSConfigError as error:
        raise SystemExit(f"{options['config']}: [tls] {error}") from None
    config.server.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        storage = open_storage(config)
    except (RuntimeError, ConfigError) as error:
        raise SystemExit(f"{options['config']}: [storage] {error}") from None
    return XmppdService(config, storage, tls_context, reactor, manhole_factory=_manhole(config))


def _manhole(config):
    """Build the manhole once the server is up, with the live server in its namespace."""
    if not config.manhole.listen:
        return None

    def make(xmppd_service):
        from xmppd.admin.api import AdminAPI
        from xmppd.admin.commands import AdminShell
        from xmppd.admin.manhole import make_manhole_service

        server = xmppd_service.server
        admin = AdminShell(AdminAPI(server.storage, server.domains, server),
                           server.admin_commands)  # with the loaded plugins' commands
        namespace = {"server": server, "admin": admin, "service": xmppd_service,
                     "help": lambda: print(_MANHOLE_HELP)}
        return make_manhole_service(config.manhole, namespace, reactor=server.reactor)

    return make


_MANHOLE_HELP = """\
xmppd manhole. Names: server (the running server), admin (the admin API), service (the tree).
  admin.list_sessions()            the bound client sessions
  admin.kick("user@host[/res]")    close a session (or all of an account's)
  admin.add_user(jid, password)    Deferred; also delete_user, set_password, list_users
  admin.list_s2s()                 the authenticated server-to-server links
  admin.close_s2s("example.net")   close the links with a domain (the next stanza reconnects)
  admin.trust_request("b.example") the loaded plugins' commands too, as in `xmppdctl commands`
  admin.cluster()                  with [cluster]: the nodes (alive, last heartbeat, sessions,
                                   links); admin.cluster_sessions(), admin.cluster_links()
  service.plugins.reload("roster") stop a plugin and start it again
  service.reload()                 read the config and certificates again, as SIGHUP does
"""
