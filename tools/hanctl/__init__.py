"""hanctl: host tools for the hanport firmware (decode captures, run the demo)."""
