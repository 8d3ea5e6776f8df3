"""What admins do, as services: find applications and read their whole story, retry a failed
permit, refund, disable and enable accounts, look at the runner pools. The JSON API
(`routes/admin.py`) and the admin console's pages (`web/admin.py`) both call these, so a rule
holds in both. Every action is logged by `audit.record`."""
