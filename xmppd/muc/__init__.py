"""Multi-user chat (XEP-0045) for the ``muc`` plugin, which runs it on ``conference.DOMAIN``.

One module a job: ``roles`` (affiliations, roles and who may change them), ``config`` (the
owner's form and the room's disco form), ``occupants`` (who is in, under which nick, with
which sessions; XEP-0421 occupant ids), ``history`` (what a joining occupant is sent),
``presence`` (the ``muc#user`` presence and status codes), ``room`` (one room's state),
``join`` (presence to a room: join, nick change, leave), ``messages`` (groupchat, private
messages, subject, invitations, voice requests), ``registration`` (reserved nicks),
``iq_relay`` (IQs between occupants, self-pings), ``admin`` (the ``muc#admin`` and
``muc#owner`` IQs), ``moderation`` (XEP-0425), ``archive`` (XEP-0313 on the room),
``vcard`` (room avatars), ``store`` (persistent rooms), ``discovery`` and ``service`` (the
rooms of the service).
"""
