"""The governor: print protection, resource management and the control socket."""
