"""Imports that must happen before the test modules are collected.

The OMEMO libraries (oldmemo, twomemo) build their XML schemas with xmlschema when they are
imported. xmlschema lists the cached properties of its classes through every base class,
``collections.abc.Sequence`` among them; once anything imports
``zope.interface.common.collections`` (``twisted.internet.testing`` does), those ABCs carry
a ``__provides__`` descriptor that raises AttributeError on subclasses, and building a schema
fails. Collection order decides who is first (the fuzz tests import the s2s unit helpers), so
the schemas are built here, before any test module.
"""

import oldmemo.etree  # noqa: F401
import twomemo.etree  # noqa: F401
