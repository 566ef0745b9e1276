# -*- test-case-name: tests.unit.test_muc_plugin -*-
"""Multi-user chat (XEP-0045) on ``conference.DOMAIN``, with XEP-0410 self-ping, XEP-0421
occupant ids, XEP-0359 stanza-ids stamped by the room, XEP-0313 archives of rooms that
enable logging, XEP-0425 moderation and room vCards (xmppd.muc has the parts).

``[plugins.muc]``: ``subdomain`` (a label, made a subdomain of every host, or one domain),
``name`` (the service's disco name), ``create`` (who may create rooms: "local" accounts,
"admins" of ``[server] admins``, or "everyone", remote users included), ``max_users`` and
``max_history`` (the most an owner may configure), ``default_history`` (new rooms' history
length), ``archive`` (whether rooms may enable logging), ``page_size`` and
``max_page_size`` (MAM queries of a room), ``max_vcard_size`` (bytes of a room's vCard),
``max_rooms_per_owner`` (rooms one account may own when it creates another; 0: no cap).
"""

from __future__ import annotations

import dataclasses

from twisted.internet import defer
from zope.interface import implementer

from xmppd import events, ns
from xmppd.interfaces import IMucRooms, IXmppdPlugin
from xmppd.mam.ids import EntryIds
from xmppd.mam.query import query_form
from xmppd.muc import archive as room_archive
from xmppd.muc import store
from xmppd.muc.admin import Limits
from xmppd.muc.config import RoomConfig
from xmppd.muc.discovery import SERVICE_FEATURES
from xmppd.muc.service import MucService
from xmppd.plugins._config import reject_unknown_keys
from xmppd.pubsub.access import admins, anyone, local_users
from xmppd.stanza import MESSAGE_TYPES, PRESENCE_TYPES

CREATE_POLICIES = ("local", "admins", "everyone")
KEYS = ("subdomain", "name", "create", "max_users", "max_history", "default_history",
        "archive", "page_size", "max_page_size", "max_vcard_size", "max_rooms_per_owner")


def read_options(options) -> dict:
    """``[plugins.muc]``, checked before the database opens; a bad value names the key."""
    reject_unknown_keys(options, KEYS)
    max_history = options.option_int("max_history", 50, minimum=0, maximum=1000)
    max_page = options.option_int("max_page_size", 250, minimum=1, maximum=10_000)
    return {
        "subdomain": options.option_str("subdomain", "conference"),
        "name": options.option_str("name", "Chatrooms"),
        "create": options.option_str("create", "local", CREATE_POLICIES),
        "max_users": options.option_int("max_users", 200, minimum=1, maximum=100_000),
        "max_history": max_history,
        "default_history": options.option_int("default_history", min(20, max_history),
                                              minimum=0, maximum=max_history),
        "archive": options.option_bool("archive", True),
        "page_size": options.option_int("page_size", 50, minimum=1, maximum=max_page),
        "max_page_size": max_page,
        "max_vcard_size": options.option_int("max_vcard_size", 65536, minimum=1),
        "max_rooms_per_owner": options.option_int("max_rooms_per_owner", 100, minimum=0),
    }


@implementer(IXmppdPlugin)
class Muc:
    name = "muc"
    requires = ()

    def configure(self, options) -> dict:
        return read_options(options)

    def setup(self, ctx) -> defer.Deferred:
        options = ctx.settings
        policy = {"local": lambda: local_users(ctx.domains),
                  "admins": lambda: admins(ctx.server_config.server.admins),
                  "everyone": lambda: anyone}[options["create"]]()
        archive = None
        if options["archive"]:
            archive = room_archive.RoomArchive(
                ctx.open_store(room_archive.STORE, "archive"), ctx.reactor.callLater,
                options["page_size"], options["max_page_size"])
            ctx.on(events.SERVER_STOPPING, archive.flush)
        limits = Limits(options["max_users"], options["max_history"])
        defaults = dataclasses.replace(RoomConfig(), history_length=options["default_history"],
                                       max_users=min(100, options["max_users"]))
        self.muc = muc = MucService(
            send=ctx.send, clock=ctx.reactor.seconds,
            rooms=store.RoomStore(ctx.open_store(store.STORE, "map")), archive=archive,
            limits=limits, may_create=policy, defaults=defaults, new_id=EntryIds(),
            max_vcard=options["max_vcard_size"],
            max_rooms_per_owner=options["max_rooms_per_owner"])
        service = ctx.service(options["subdomain"], title=options["name"])
        muc.service = service.service
        ctx.provide(IMucRooms, muc)  # for a cluster (xmppd.cluster.rooms)
        service.identity("conference", "text", options["name"])
        for feature in SERVICE_FEATURES:
            service.feature(feature)
        service.disco_items(muc.service_items)
        for type in PRESENCE_TYPES:
            service.stanza("presence", type, ("bare", "full"), muc.on_presence)
        for type in MESSAGE_TYPES:
            service.stanza("message", type, ("bare", "full"), muc.on_message)
        room_iqs = [("get", ns.DISCO_INFO, "query", muc.disco_info),
                    ("get", ns.DISCO_ITEMS, "query", muc.disco_items),
                    ("get", ns.MUC_ADMIN, "query", muc.admin_get),
                    ("set", ns.MUC_ADMIN, "query", muc.admin_set),
                    ("get", ns.MUC_OWNER, "query", muc.owner_get),
                    ("set", ns.MUC_OWNER, "query", muc.owner_set),
                    ("get", ns.VCARD, "vCard", muc.vcard_get),
                    ("set", ns.VCARD, "vCard", muc.vcard_set),
                    ("set", ns.MESSAGE_MODERATE, "moderate", muc.moderate),
                    ("get", ns.REGISTER, "query", muc.register_get),
                    ("set", ns.REGISTER, "query", muc.register_set)]
        if archive is not None:
            room_iqs += [("get", ns.MAM, "query", lambda stanza, origin: query_form()),
                         ("set", ns.MAM, "query", muc.mam_query)]
        for type, namespace, element, handler in room_iqs:
            service.iq(type, namespace, element, handler, to="bare")
        for type in ("get", "set", "result", "error"):
            service.stanza("iq", type, "full", muc.on_occupant_iq)
        return defer.ensureDeferred(muc.load(service.domains))

    def teardown(self) -> None:
        """Occupants learn that the service went (332) before its domains go; what the
        archive collected goes to the database before it closes."""
        self.muc.shutdown()
        if self.muc.archive is not None:
            self.muc.archive.flush()


muc = Muc()
