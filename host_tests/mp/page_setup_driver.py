# The owner's page in setup mode on the unix port: page.mount(server, None, hal_unix, True),
# as the access point's setup would mount it, with no dongle running. Listens on
# 127.0.0.1 at HTTPD_PORT and says "listening" (host_tests/test_page.py); the files it
# reads and writes (config.json, config.next) are in the working directory.
import asyncio
import os

import hal_unix
import httpd
import page


async def main():
    server = httpd.Server()
    page.mount(server, None, hal_unix, True)
    await server.start("127.0.0.1", int(os.getenv("HTTPD_PORT")))
    print("listening")
    while True:
        await asyncio.sleep(1)


asyncio.run(main())
