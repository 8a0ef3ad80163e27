"""The web console of the management server (SPEC B7): server.py, auth.py, api.py, static/."""
