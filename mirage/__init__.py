"""The Mirage proxy: the server remote viewers and printers meet at (issue 11). It runs off
the board (self-hosted, or Hydrogen's), authenticates devices and viewers, routes their
signalling, mints TURN credentials, and never carries video. Not a printer-side service:
nothing under services/ imports it. Started with ``titaniumctl mirage serve``."""
