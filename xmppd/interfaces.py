"""Every seam of xmppd as a zope.interface declaration, in one file.

Storage calls return Deferreds; everything else is synchronous unless it says so.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface

# --------------------------------------------------------------------------- plugins


class IXmppdPlugin(IPlugin):
    """A server feature, loaded by name from ``[plugins] enabled``.

    Extends twisted.plugin.IPlugin so ``getPlugins`` finds it in ``xmppd.plugins`` and in
    drop-in directories.

    Optional methods: ``configure(options)`` reads the plugin's section through an
    xmppd.options.PluginOptions (``known``, ``option_int``, ``option_bool``, ``option_str``)
    before the database is opened, so a bad value stops start-up with nothing touched; what
    it returns is ``ctx.settings`` at setup. ``teardown()`` runs when the plugin stops,
    before its registrations are undone. Optional attribute: ``provides``, the interfaces it
    registers with ``ctx.provide``, so start-up can tell a config that asks for one (the
    buddies-only federation level: IServerTrust) which plugin to enable.
    """

    name = Attribute("Config name of the plugin, e.g. 'ping'; also its [plugins.NAME] section.")
    requires = Attribute("Tuple of plugin names that must be set up first.")

    def setup(ctx):
        """Register handlers, features and event listeners through ``ctx`` (IPluginContext).

        May return a Deferred. A failure stops start-up with the plugin's name in the error.
        """


class IPluginContext(Interface):
    """What a plugin sees of the server: xmppd's analogue of Prosody's ``module``.

    Every registration is recorded so ``close()`` undoes all of them.
    """

    name = Attribute("The plugin's name.")
    config = Attribute("The plugin's own config section, a dict (empty when absent).")
    storage = Attribute("The IStorage provider.")
    reactor = Attribute("The reactor.")
    server_config = Attribute("The server's validated xmppd.config.Config (read-only).")
    sessions = Attribute("The bound client sessions, read-only: get(full_jid), "
                         "resources(bare_jid), all().")
    domains = Attribute("The domains we host, a frozenset.")
    route = Attribute("route(stanza, origin): the router's own bound method, for a Stanza the "
                      "server makes for one of its accounts or domains (origin None).")
    emit = Attribute("emit(event, *args): tell every listener of an xmppd.events constant; "
                     "a Deferred that fires when they are done.")

    def iq(type, namespace, element, handler, to="host", priority=0):
        """Handle IQs of ``type`` ('get'/'set') whose payload is ``{namespace}element``.

        ``to`` is 'host' (our domain), 'bare' (an account), 'self' (an account asking about
        itself: its own bare JID, or no 'to' at all) or 'full' (a resource), or a tuple of
        them. 'self' is tried before 'bare' for an account's own IQs.
        ``handler(stanza, origin)`` returns the result payload (an Element, a list of them or
        None), or a Deferred of it, or raises StanzaError.
        """

    def stanza(kind, type, to, handler, priority=0):
        """Add a link to the delivery chain of ``kind`` ('message', 'presence' or 'iq')
        stanzas of ``type`` addressed at 'host', 'bare' or 'full' (or a tuple of them), or
        messages and presence sent by a local client ('outgoing', before routing). Highest
        priority first; message delivery is the lowest link
        (xmppd.dispatch.DELIVERY_PRIORITY).

        ``handler(stanza, origin)`` returns None/False (go on), True (consumed), a Stanza
        (go on with this one instead), or a Deferred of one of those (the chain, and the
        stream the stanza came from, wait for it). StanzaError answers the stanza.
        """

    def on(event, handler, priority=0):
        """Call ``handler(*args)`` on a server event (a constant from xmppd.events)."""

    def feature(namespace, to="host"):
        """Advertise a disco#info feature of the server ('host') or of an account asking
        about itself ('account')."""

    def identity(category, type, name=None, to="host"):
        """Advertise a disco#info identity, as ``feature``."""

    def admin_command(name, handler, help, args=()):
        """An operator's command while the plugin is loaded: ``xmppdctl NAME ARGS...`` over
        the control socket, ``admin.NAME_WITH_UNDERSCORES(...)`` in the manhole."""

    def serve_disco():
        """Answer disco#info and disco#items for the hosts and for accounts asking about
        themselves, from every plugin's declarations (the disco plugin)."""

    def disco_info(provider, to="host"):
        """``provider(stanza, node)`` returns an xmppd.caps.DiscoInfo to add to disco#info
        answers (the only answers for a node), None, or a Deferred of them."""

    def disco_items(provider, to="host"):
        """``provider(stanza, node)`` returns a list of xmppd.disco.DiscoItem, None, or a
        Deferred of them, for disco#items answers."""

    def service(name, handler=None, title=None):
        """Run a service on a subdomain of every host (a label: 'conference') or on one
        domain; returns an object with ``iq``, ``stanza``, ``feature``, ``identity``,
        ``disco_info`` and ``disco_items`` for it (targets relative to the service) and
        its ``domains``. ``handler(stanza, origin)`` gets what nothing registered takes."""

    def provide(interface, provider):
        """Offer a service to other plugins and the router, looked up by interface."""

    def query(interface):
        """The provider registered for ``interface``, or None; ask when needed."""

    def send(element):
        """Route a stanza the plugin made (its 'from' one of our addresses)."""

    def bounce(stanza, condition, text=None):
        """Answer ``stanza`` with a stanza error (never an error to an error)."""

    def send_iq(element, timeout=None):
        """Send an IQ get/set; Deferred firing the result Stanza, or failing with the
        answer's StanzaError or xmppd.iq_tracker.IQTimeout. Only the entity asked may
        answer (RFC 6120 §8.2.3). Cancelled when the plugin stops."""

    def stream_feature(builder, stage="post-auth"):
        """Add a stream feature offered to authenticated clients (after SASL), or with
        ``stage="pre-auth"`` to encrypted streams before SASL.

        ``builder(stream)`` returns a domish.Element for <stream:features/>, or None.
        """

    def open_store(name, kind):
        """The generic store ``name`` of ``kind`` ('keyval', 'map' or 'archive'): an
        IKeyValStore, IMapStore or IArchiveStore; ValueError naming an unknown kind."""

    def http_resource(path, resource, max_body=0):
        """Serve a twisted.web resource at ``/path/`` of the server's web server
        (xmppd.http: ``[http]`` listeners, opened once something is mounted); request bodies
        above ``max_body`` bytes are refused with 413; unmounted when the plugin stops."""

    def http_url(host, path):
        """The URL clients use for ``path`` below a mount on our domain ``host``."""

    def session_filters(hook, priority=0):
        """Call ``hook(session)`` for every session bound from now on, to add filters with
        ``session.filters.add(direction, fn, priority)``: ``fn(element, session)`` returns the
        element, a replacement, or None (consumed or held; held ones go on later with
        ``session.filters.pass_on``)."""

    def keep_sessions(keeper, priority=0):
        """On a connection lost without a close, ``keeper(session)`` returning True keeps the
        session bound, routable and available until ``attach_session`` or ``end_session``."""

    def claim(namespace, name, handler, states=("ready",)):
        """``handler(element, stream)`` handles the top-level non-stanza element
        {namespace}name in the given stream states (xmppd.c2s.hooks BEFORE_BIND, BOUND); one
        plugin per element; unclaimed ones stay stream errors."""

    def claim_iq_before_auth(namespace, handler):
        """``handler(element, stream)`` answers IQs whose payload is in ``namespace`` on an
        encrypted stream before authentication (XEP-0077 registration); one plugin per
        namespace; without a claim such IQs stay the stream error they are."""

    def sasl2_extension(extension, priority=0):
        """Add an xmppd.sasl2.Sasl2Extension to SASL2 (XEP-0388): an <inline/> feature,
        mechanisms of its own, work after authentication, inline resumption."""

    def bind2_feature(namespace, handler):
        """``handler(child, stream)`` enables a feature inline in Bind 2 (XEP-0386); what it
        returns goes into <bound/>; advertised in Bind 2's <inline/> while registered."""

    def close_federation(matches):
        """Close every s2s stream with a remote domain ``matches(domain)`` accepts; how many
        links ended (a domain an admin just blocked)."""

    def login_gate(gate, priority=0):
        """``gate(localpart, domain)`` after SASL proved the credentials (any mechanism):
        a reason (str) refuses the login with ``account-disabled``, None lets it in; or a
        Deferred of either."""

    def attach_session(session, stream):
        """A new stream (same account, authenticated, not bound) takes over a kept session;
        the old stream, if still open, gets <conflict/>; SESSION_RESUMED fires."""

    def end_session(session, why="hibernation ended"):
        """End a kept session for good, once: SESSION_CLOSED, then unavailable presence."""

    def carry_session_state(name, export, restore):
        """What this plugin keeps about a session, carried when it moves to another node of a
        cluster: ``export(session)`` JSON-able or None, ``restore(session, data)`` there."""

    def close():
        """Remove every registration made through this context."""


# --------------------------------------------------------------------------- sessions and routing


class ISession(Interface):
    """One authenticated, bound client stream (or, later, an s2s link or component)."""

    jid = Attribute("The bound full JID (xmppd.jid.JID).")
    available = Attribute("True once the client sent available presence (RFC 6121 §4.2).")
    priority = Attribute("The priority of its last available presence (-128..127), else 0.")
    presence = Attribute("Its last available presence broadcast (domish.Element) or None.")
    secure = Attribute("True when the stream is encrypted with TLS.")
    authenticated_by = Attribute("The SASL mechanism name that authenticated the stream.")
    peer = Attribute("The remote address as 'host:port', for admins.")
    started = Attribute("Bind time (POSIX seconds).")
    filters = Attribute("Its SessionFilters (xmppd.c2s.filters), made on first use.")
    hibernating = Attribute("True while a plugin keeps it after its connection was lost.")
    ended = Attribute("True once SESSION_CLOSED was emitted for it.")
    moved = Attribute("True when it ended here to go on on another node of a cluster (its "
                      "SESSION_CLOSED is a clean-up: nobody is to be told of an end).")

    def send(element):
        """Write one stanza (domish.Element) to the stream."""

    def close(condition=None, text=None):
        """Close the stream politely, optionally with a stream error condition first."""


class ISessionRegistry(Interface):
    """The bound client sessions of this server."""

    def bind(session, resource):
        """Claim ``resource`` for ``session``; returns the full JID granted (may differ)."""

    def unbind(session):
        """Forget a session that has ended."""

    def restore(session):
        """Bind a session that moved here from another node under its own full JID."""

    def get(full_jid):
        """The session bound to ``full_jid``, or None."""

    def resources(bare_jid):
        """The sessions of an account, a list (empty when offline)."""

    def all():
        """Every bound session."""


class IRouter(Interface):
    """Where every stanza goes after its stream has authenticated it."""

    def route(stanza, origin):
        """Deliver ``stanza`` (xmppd.stanza.Stanza) from ``origin`` (ISession or None)."""


class IRemoteRouter(Interface):
    """The server-to-server layer as the router sees it (xmppd.s2s.manager.S2SManager)."""

    def send(stanza):
        """Send a stanza for a domain we do not host, or bounce it with an error."""


class IClusterLocks(Interface):
    """Work only one node of a cluster runs at a time under a name (xmppd.cluster.locks
    provides it; on a single node nothing does, and a plugin's own order is enough)."""

    def run(name, work):
        """Call ``work()`` (returning a Deferred) once no other node runs work under
        ``name``; Deferred firing its result."""


class IClientHooks(Interface):
    """What plugins hook into client sessions beyond their stanzas (xmppd.c2s.hooks)."""

    hibernating = Attribute("The set of sessions kept after their connection was lost.")

    def add_filter_hook(hook, priority=0):
        """``hook(session)`` for every session bound from now on; returns the undo."""

    def add_keeper(keeper, priority=0):
        """``keeper(session)`` True keeps a session on a lost connection; returns the undo."""

    def claim(namespace, name, handler, states):
        """Claim a top-level non-stanza element in ``states``; returns the undo."""

    def claim_iq_before_auth(namespace, handler):
        """Claim IQs of ``namespace`` before authentication (encrypted streams); the undo."""

    def add_pre_auth_feature(builder, priority=0):
        """``builder(stream)`` adds a stream feature before authentication; the undo."""

    def attach(session, stream):
        """A new stream takes over a kept session."""

    def end(session, why):
        """End a session for good, once."""

    def end_hibernated(why):
        """End every kept session (at shutdown)."""

    def add_state_carrier(name, export, restore):
        """Carry a plugin's state about a session to another node; returns the undo."""

    def export_state(session):
        """The carriers' data about a session, by carrier name (JSON-able)."""

    def restore_state(session, state):
        """Give each carrier its data back on a session adopted here."""

    def hand_over(session, why):
        """A session goes on on another node: forgotten here, its end told to nobody."""

    def adopt(session):
        """A session from another node: bound here under its JID, hibernated."""


class IServer(Interface):
    """The running server, as plugins and the admin API see it."""

    config = Attribute("The validated xmppd.config.Config.")
    domains = Attribute("Frozenset of the domains we host.")
    sessions = Attribute("The ISessionRegistry provider.")
    router = Attribute("The IRouter provider.")
    storage = Attribute("The IStorage provider.")
    c2s_hooks = Attribute("The IClientHooks provider: session filters, keepers, claims.")

    def emit(event, *args):
        """Fire a server event to its listeners; returns a Deferred that fires when all are done."""

    def query(interface):
        """The provider a plugin registered for ``interface``, or None."""


# --------------------------------------------------------------------------- authentication


class IAuthBackend(Interface):
    """Checks credentials for SASL; backed by IUserStore in the default setup."""

    def scram_credentials(localpart, domain, hash_name):
        """Deferred firing with xmppd.sasl.credentials.ScramCredentials, or None if unknown."""

    def check_password(localpart, domain, password):
        """Deferred firing True if ``password`` (PRECIS-prepared) is right (for PLAIN)."""


class ISASLMechanism(Interface):
    """The server side of one SASL exchange (one instance per attempt)."""

    name = Attribute("Mechanism name as advertised, e.g. 'SCRAM-SHA-256-PLUS'.")

    def start(initial_response):
        """Begin with the client's initial response (bytes or None).

        Returns a Deferred firing with xmppd.sasl.Challenge or xmppd.sasl.Success;
        errbacks with xmppd.errors.SASLFailure.
        """

    def step(response):
        """Continue with the client's next response (bytes); same results as ``start``."""


# --------------------------------------------------------------------------- storage


class IUserStore(Interface):
    """Accounts and their SCRAM credentials. No plaintext password is ever stored."""

    def create_user(localpart, domain, credentials):
        """Create an account with a list of ScramCredentials; errback UserExists if taken."""

    def set_credentials(localpart, domain, credentials):
        """Replace an account's credentials; errback UserNotFound if absent."""

    def get_credentials(localpart, domain, hash_name):
        """Deferred firing with the ScramCredentials for ``hash_name``, or None."""

    def delete_user(localpart, domain):
        """Delete an account and everything it owns; errback UserNotFound if absent."""

    def user_exists(localpart, domain):
        """Deferred firing a bool."""

    def list_users(domain=None):
        """Deferred firing a sorted list of 'localpart@domain' strings."""


class IRosterStore(Interface):
    """Roster items (xmppd.storage.records.RosterItem) and pending inbound subscription requests.

    Contacts are bare JID strings. Every change bumps the account's roster version (an int).
    Deleting the account deletes all of it.
    """

    def get_roster(localpart, domain):
        """Deferred firing RosterSnapshot(version, items) (items sorted by contact)."""

    def get_item(localpart, domain, contact):
        """Deferred firing the RosterItem or None."""

    def put_item(localpart, domain, item):
        """Insert or replace an item; Deferred firing the new roster version."""

    def remove_item(localpart, domain, contact):
        """Delete an item; Deferred firing the new version, or None if there was none."""

    def add_request(localpart, domain, contact, stanza):
        """Keep an inbound subscribe (serialized XML, str) until answered; one per contact."""

    def remove_request(localpart, domain, contact):
        """Forget a pending request; Deferred firing True if there was one."""

    def get_requests(localpart, domain):
        """Deferred firing [(contact, stanza_xml)] oldest first."""

    def accounts_with_requests():
        """Deferred firing [(localpart, domain)] of every account that holds at least one
        request (read once at start: xmppd.im.holding)."""


class IOfflineStore(Interface):
    """Messages kept for an account that was offline (XEP-0160), oldest first."""

    def store(localpart, domain, stanza, stamp, limit):
        """Keep ``stanza`` (serialized XML, str) received at ``stamp`` (POSIX seconds).

        Deferred firing True, or False when the account already holds ``limit`` messages;
        errback UserNotFound if there is no such account. Committed when it fires.
        """

    def fetch(localpart, domain):
        """Deferred firing [(id, stanza_xml, stamp)] oldest first."""

    def delete(localpart, domain, up_to_id):
        """Delete the messages with id <= ``up_to_id`` (those delivered); Deferred."""

    def count(localpart, domain):
        """Deferred firing the number of messages kept."""

    def accounts_with_messages():
        """Deferred firing [(localpart, domain)] of every account that holds at least one
        message (read once at start: xmppd.im.offline_holders)."""


class IKeyValStore(Interface):
    """One value per owner under one store name (private XML, a vCard, a blocking list).

    An owner is a bare JID string: an account ('user@domain', as prepared) or a domain or
    service ('pubsub.example.org', a MUC room). Values are what json.dumps takes (dicts,
    lists, str, numbers, bools; tuples come back as lists); None is not a value. Deleting an
    account deletes what it owns in every generic store.
    """

    def get(owner):
        """Deferred firing the owner's value, or None."""

    def set(owner, value):
        """Store or replace the owner's value; Deferred. TypeError/ValueError for a value
        that is not JSON or is None (use ``delete``)."""

    def set_many(values):
        """Store or replace the value of every owner of the mapping ``values`` (owner ->
        value) in one transaction: many small writes (logout times) cost one commit."""

    def delete(owner):
        """Forget the owner's value; Deferred firing True if there was one."""


class IMapStore(Interface):
    """Per owner, values by key (str) under one store name: node configs, push registrations,
    stream management tokens. Values as in IKeyValStore; owners too."""

    def get(owner, key):
        """Deferred firing the value, or None."""

    def set(owner, key, value):
        """Store or replace one value; Deferred."""

    def set_many(owner, values):
        """Store or replace every value of the mapping ``values`` in one transaction."""

    def delete(owner, key):
        """Forget one value; Deferred firing True if there was one."""

    def keys(owner):
        """Deferred firing the owner's keys, sorted."""

    def items(owner):
        """Deferred firing the owner's values as a dict by key."""

    def clear(owner):
        """Forget every value of the owner; Deferred firing how many there were."""


class IArchiveStore(Interface):
    """Per owner, entries (xmppd.storage.records.ArchiveEntry: id, stamp, with_jid, payload)
    in the order appended, under one store name: a MAM archive (owner = account or room),
    pubsub items (with_jid = publisher). Ids are unique per owner; appending an id that is
    there replaces that entry, which becomes the newest (pubsub's republish). Owners as in
    IKeyValStore.
    """

    def append(owner, entry):
        """Add an entry (its id None: a new one is made); Deferred firing its id."""

    def append_many(entries):
        """Add ``(owner, entry)`` pairs in one transaction, in order; Deferred firing the ids.
        For archiving off the message path: one commit (and one fsync) per batch."""

    def get(owner, id):
        """Deferred firing the entry with ``id``, or None."""

    def query(owner, query=None):
        """Deferred firing an ArchivePage for an xmppd.storage.records.ArchiveQuery (None:
        everything); errback ArchiveEntryNotFound when an id it names is not there."""

    def count(owner):
        """Deferred firing how many entries the owner has (for quotas)."""

    def remove(owner, ids):
        """Delete the owner's entries with these ids; Deferred firing how many were there."""

    def trim(owner, keep):
        """Delete all but the newest ``keep`` entries (pubsub max_items); Deferred firing how
        many went."""

    def clear(owner):
        """Delete every entry of the owner; Deferred firing how many."""

    def delete_before(stamp, owner=None):
        """Delete the entries stamped before ``stamp`` (POSIX seconds), of one owner or of
        every owner of this store (retention); Deferred firing how many."""


class IStorage(Interface):
    """One database: opened and migrated at start-up, closed at shutdown."""

    users = Attribute("The IUserStore of this database.")
    roster = Attribute("The IRosterStore of this database.")
    offline = Attribute("The IOfflineStore of this database.")
    server_roster = Attribute("The IServerRosterStore of this database (XEP-0267).")
    incidents = Attribute("The IIncidentStore of this database (XEP-0268).")

    def open_store(name, kind):
        """The generic store ``name`` (a non-empty str) of ``kind``: 'keyval' (IKeyValStore),
        'map' (IMapStore) or 'archive' (IArchiveStore); ValueError naming a bad name or kind.
        Works before ``open()``; its calls fail until then."""

    def open():
        """Connect and apply pending schema migrations; returns a Deferred."""

    def close():
        """Flush and disconnect; returns a Deferred."""

    def schema_version():
        """Deferred firing the applied schema version, an int."""


# ------------------------------------------------------------------- services plugins provide


class IRoster(Interface):
    """The roster service (the roster plugin provides it): state per (account, contact) pair,
    persisted, with roster pushes to the account's interested resources on every change."""

    def get_state(account, contact):
        """Deferred firing the xmppd.im.subscription.SubState of bare JID ``contact`` in
        bare JID ``account``'s roster (pending_in included; NONE when there is no item)."""

    def set_state(account, contact, state, request=None):
        """Persist a new SubState: creates the item if needed, pushes it to interested
        resources; ``request`` (a subscribe Element) is kept while pending_in is set.
        Deferred."""

    def items(account):
        """Deferred firing the account's RosterItems."""

    def pending_requests(account):
        """Deferred firing the stored subscribe Elements awaiting the account's answer."""

    def contacts(account):
        """Deferred firing the account's xmppd.im.contacts.Contacts (who gets its presence,
        whose presence it gets) as parsed bare JIDs; served from memory, without storage I/O,
        while the account has a bound session."""


class IOfflineDelivery(Interface):
    """Where the router puts a message for an account with no available resource."""

    def store(stanza):
        """Keep a xmppd.stanza.Stanza for later; Deferred firing True if kept, False if not
        (then the router bounces it)."""


class IArchiveWrites(Interface):
    """The message archive's batched writes (the mam plugin), for whoever promises that what
    an account sent is on disk: XEP-0198's <a/> counts stanzas as handled, and a message's
    archive copies are part of handling it."""

    def settled(account):
        """None when nothing concerning ``account`` (a bare JID str) waits to be written;
        else have it committed now (with the writes of the moment: group commit) and return
        a Deferred firing None once it is on disk (or the failure logged)."""


# --------------------------------------------------------------------------- administration


class IAdminAPI(Interface):
    """The one admin API; the manhole and xmppdctl are its two faces."""

    def add_user(jid, password):
        """Create an account; Deferred."""

    def delete_user(jid):
        """Delete an account (and end its sessions when the server runs); Deferred."""

    def set_password(jid, password):
        """Change an account's password; Deferred."""

    def list_users(domain=None):
        """Deferred firing the list of accounts."""

    def list_sessions():
        """The live sessions (needs the running server), as dicts."""

    def kick(jid):
        """Close the session(s) of a full or bare JID; returns how many were closed."""

    def list_s2s():
        """The authenticated server-to-server links (needs the running server), as dicts."""

    def close_s2s(domain):
        """Close every s2s stream with ``domain``; returns how many."""


# --------------------------------------------------------------------------- server trust


class IServerRosterStore(Interface):
    """The server roster of XEP-0267: xmppd.storage.records.ServerPeer rows, one per
    (our domain, peer domain) relationship; a relationship with nothing left has no row.
    The storage offers it as ``storage.server_roster``."""

    def get_peers():
        """Deferred firing every ServerPeer, sorted by (local, peer)."""

    def put_peer(peer):
        """Insert or replace the row of ``peer.local`` and ``peer.peer``; Deferred."""

    def remove_peer(local, peer):
        """Delete a relationship; Deferred firing True if there was one."""


class IIncidentStore(Interface):
    """Incident reports (XEP-0268) received from or sent to trusted peers, kept for admins.
    The storage offers it as ``storage.incidents``."""

    def add_incident(record):
        """Keep an xmppd.storage.records.IncidentRecord (its ``id`` is ignored); Deferred
        firing the id given to it, larger than any given before."""

    def list_incidents():
        """Deferred firing every IncidentRecord, oldest first, ids filled in."""


class IServerTrust(Interface):
    """The server roster as the rest of the server sees it (the server_trust plugin provides it).

    Queries answer synchronously, from memory. Actions are for administrators only; they
    return Deferreds that fail with xmppd.trust.TrustError (a ValueError) when the action does
    not apply, and take ``local`` (one of our domains) to pick one relationship when a peer
    has several; None means the first configured domain for ``request`` and every
    relationship with the peer otherwise.
    """

    def is_trusted_buddy(domain):
        """True when ``domain`` and one of our domains are subscribed to each other ('both')."""

    def buddies():
        """The trusted buddies as sorted (our domain, peer domain) pairs."""

    def is_available(domain):
        """True while an authenticated s2s link with ``domain`` is up (its server presence)."""

    def peers():
        """Every relationship as a dict: domain, local, subscription, pending_in, pending_out,
        available, state (its RFC 6121 name), since."""

    def pending():
        """The relationships with a request waiting for an admin's answer, as ``peers()``."""

    def request(domain, local=None):
        """Send a subscription request to ``domain`` (the only way one is ever sent)."""

    def approve(domain, local=None):
        """Grant ``domain``'s pending request and ask for its presence in return."""

    def deny(domain, local=None):
        """Refuse ``domain``'s pending request."""

    def revoke(domain, local=None):
        """End the relationship with ``domain`` in both directions."""


class IDomainBlocklist(Interface):
    """Remote domains this server will not federate with (the domain_block plugin provides
    it): the admin's own list and what trusted buddies shared, each entry covering its
    subdomains. The federation policy asks it for every link and every stanza."""

    def blocked(domain):
        """Why the prepared ``domain`` is refused, in words for the log ('spam.example is
        blocked by the admin'), or None when it is not."""


class IIncidentReports(Interface):
    """Files incident reports (XEP-0268) with the trusted buddies (the incident plugin
    provides it)."""

    def report(description, sources=(), severity=None):
        """Send a report to every trusted buddy; ``sources`` are the offending JIDs and
        ``severity`` is 'low', 'medium' or 'high' (None: not assessed). Deferred firing the
        sorted peer domains it was sent to; ValueError for bad arguments."""


class IPep(Interface):
    """Work on an account's PEP nodes (XEP-0163) on its behalf (the pep plugin provides
    it): conversions between old and new protocols (bookmarks, avatars) keep nodes in step
    with other storage. What a client changes is told as ``xmppd.events.PEP_CHANGED``;
    what is done here is not, so conversions cannot loop."""

    def publish(account, node, item_id, payload, options=None):
        """Publish ``payload`` (an element, or None) as ``item_id`` (None: the service makes
        one up) on the account's ``node``, made if missing; ``options`` are publish-options
        by name without 'pubsub#' ({"access_model": "whitelist", "max_items": "max"}).
        Notifications go out as for the account's own publish. Deferred firing the item
        id; a PubSubError (for instance precondition-not-met) in it when refused."""

    def retract(account, node, item_ids):
        """Retract the items and notify as the node says; Deferred."""

    def items(account, node):
        """Deferred firing the node's items as (id, payload element or None), oldest first;
        [] when the account has no such node."""


class IVCards(Interface):
    """The accounts' stored vCards (XEP-0054), by bare JID."""

    max_size = Attribute("The largest vCard accepted, in bytes of its XML.")

    def get(account):
        """Deferred firing the account's vCard (a fresh domish.Element) or None."""

    def set(account, vcard):
        """Store (or, for an empty <vCard/>, remove) the account's vCard; Deferred.
        StanzaError not-acceptable (raised in the Deferred) when it is over max_size, or
        bad-request when its PHOTO's BINVAL is not base64."""

    def photo_hash(account):
        """Deferred firing the XEP-0153 hash of the account's vCard photo (lower-case hex
        SHA-1 of the image bytes), or None when it has no BINVAL photo."""


class IPrivateXml(Interface):
    """The accounts' private XML (XEP-0049), for plugins that keep it in step with other
    storage (XEP-0048 bookmarks). Writes here are not told as events.PRIVATE_STORED."""

    def element(account, namespace, name):
        """Deferred firing the stored element (a fresh domish.Element) or None."""

    def store(account, element):
        """Store ``element`` as the account's, replacing what it had under its name, within
        the same size limit as a client's set; Deferred."""


class IAdHocCommands(Interface):
    """XEP-0050 commands the server offers to clients (the adhoc plugin): other plugins
    add theirs (an ``xmppd.adhoc.commands.Command``) and undo it when they stop."""

    def add(command):
        """Offer ``command`` at its node; returns the undo. ValueError if the node is taken."""


class IDisabledAccounts(Interface):
    """Accounts refused at login by an administrator (the account_status plugin)."""

    def disable(account):
        """Mark the bare JID ``account`` disabled (its sessions are not ended here); Deferred."""

    def enable(account):
        """Deferred firing True when the account was disabled and is enabled now."""

    def listed(domain):
        """Deferred firing the sorted disabled accounts of ``domain`` (bare JID strings)."""


class IMucRooms(Interface):
    """The rooms of the MUC service (the muc plugin provides it), for a cluster that runs
    each room on one node (xmppd.cluster.rooms): the stanzas for a room are carried to its
    node, rooms move between nodes whole, and the room list covers every node."""

    domains = Attribute("The service's domains (frozenset of str).")
    dispatcher = Attribute("The service's chain (xmppd.dispatch.Dispatcher).")
    rooms = Attribute("The rooms run here: bare room JID -> xmppd.muc.room.Room.")
    elsewhere = Attribute("None, or ``elsewhere(domain)``: a Deferred list of DiscoItem of "
                          "the public rooms run by other processes, added to the room list.")

    def route(stanza, origin):
        """Handle a stanza for the service here, as if it had just arrived."""

    def load(domains, wanted=None):
        """Deferred (a coroutine's) count: the persistent rooms of ``domains`` that are not in
        memory, and for which ``wanted(room_jid)`` is true (all without it), loaded."""

    def export(jid):
        """The room's whole state (JSON-able, xmppd.muc.handoff) and the room forgotten
        here, its occupants told nothing; None when it is not here."""

    def adopt(state):
        """A room exported elsewhere, run here from now on (replacing a copy here)."""

    def close(jid):
        """The room stops here: its occupants get unavailable presence with status 332, it
        is forgotten (its stored state is kept)."""

    def leave_sessions(gone):
        """Every occupant session for which ``gone(full_jid)`` is true leaves its room, the
        others told as if it had left; returns how many left."""


class IResumableSessions(Interface):
    """Stream management's resumable sessions, as another node of a cluster asks for them
    (provided by the smacks plugin, xmppd.sm.manager)."""

    def hand_over(previd, account):
        """The session ``previd`` of ``account`` leaves this node: its state (JSON-able,
        xmppd.sm.handover) with it forgotten here, or None when there is no such session
        (unknown, ended, or another account's: the same answer)."""

    def adopt(state):
        """A session handed over by another node, made here, hibernated and resumable."""


class IRemoteResumption(Interface):
    """Resumption of a session held by another node of the cluster (provided by
    xmppd.cluster.resumption)."""

    def fetch(previd, account):
        """Ask the other nodes for the session ``previd`` of ``account``: a Deferred of True
        once it was adopted here (resume it locally), False when no node has it or none
        answered in time."""
