# The dongle's web server and what it serves: HomeWizard's local API, the owner's page.
# Wiring only, loaded by dongle.py only when config.json turns either on: a dongle with
# neither holds none of this code (its bytecode sat in dongle.run for good, ~200 B).

import httpd


async def start(dongle, hal):
    """Listen (httpd.serve) and mount what the config turns on; the server, or None."""
    cfg = dongle.cfg
    server = await httpd.serve(hal)
    if server is None:
        return None
    if "local_api" in cfg:
        import local_api

        dongle.local_api = local_api.mount(cfg["local_api"], dongle, hal, server)
    if "page" in cfg:
        import page

        try:
            dongle.page = page.mount(server, dongle, hal, False)
        except MemoryError as e:  # the meter and the destinations run on without it
            hal.log("page: not served, no memory:", repr(e))
    return server
