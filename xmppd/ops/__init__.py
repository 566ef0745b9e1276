"""Running the server for real: reloading at run time (``reload``), checking a setup
(``check``: config, DNS, certificates, connectivity, as ``xmppdctl check`` does)."""
