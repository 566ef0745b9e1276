"""``make bench``: xmppd measured side by side with Prosody on the same machine, in the same run.

Run it as ``python -m bench.run`` from the repository root (see bench/run.py); the README's
"Performance" section explains the workloads and holds the numbers of the last real run.
"""
