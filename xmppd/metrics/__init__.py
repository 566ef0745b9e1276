"""OpenMetrics for xmppd (the metrics plugin): what is measured and the page that shows it."""
