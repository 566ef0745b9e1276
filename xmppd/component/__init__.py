"""XEP-0114 external components: a stream (jabber:component:accept) per component, whose
domain becomes one of our services while it is connected. See xmppd.component.stream."""
